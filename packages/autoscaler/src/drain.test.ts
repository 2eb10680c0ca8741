import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  clusterConfig,
  events,
  FakeIaas,
  flush,
  harness,
  MemoryRegistry,
  memberRow,
  T0,
  useFakeTime,
} from './testing/index.js';

/*
 * Graceful drain (README "Autoscaler → Graceful drain") on fake time: a
 * member terminated while it still serves (here the max rule's victim after
 * a restart with a lowered max) is Terminating and draining, announced by
 * MemberReadyToShutdownEvent, its Iaas terminate asked for the drain after
 * the drain delay; it is removed once idle or at its drain timeout. A
 * faulted member is stopped without one; a restart during a drain waits
 * only for what is left of it (its persisted drainUntil); a close leaves it
 * draining for the next owner.
 */

const DRAIN = { drainTimeoutMs: 30_000, drainDelayMs: 2_000 };

describe('graceful drain', () => {
  beforeEach(useFakeTime);
  afterEach(() => vi.useRealTimers());

  /** Two Active members in the registry, a policy of max 1: the max rule scales one down at start. */
  const overMax = (iaas: FakeIaas, cluster: Record<string, unknown> = DRAIN) => {
    const registry = new MemoryRegistry([memberRow('php-a', 'Active'), memberRow('php-b', 'Active')]);
    const h = harness({ registry, iaas, clusters: [clusterConfig({ min: 1, max: 1, ...cluster })] });
    return h;
  };
  const victimOf = (h: ReturnType<typeof harness>) =>
    h.decisions().find((d) => d.fields.action === 'ScaleDownAction')?.fields.memberId as string;
  const removedOf = (h: ReturnType<typeof harness>, memberId: string) =>
    h.decisions().find((d) => d.fields.action === 'MemberRemoved' && d.fields.memberId === memberId);

  it('the victim drains: Terminating with drainingUntil, MemberReadyToShutdownEvent, terminated at the drain timeout at the latest', async () => {
    const iaas = new FakeIaas();
    iaas.drainIdleAfterMs = undefined; // its requests never end
    const h = overMax(iaas);
    await h.core.start();
    await flush();
    const victim = victimOf(h);
    expect(['php-a', 'php-b']).toContain(victim);
    expect(h.stateOf(victim)).toBe('Terminating');
    const status = h.core.status().clusters[0]?.members.find((m) => m.memberId === victim);
    expect(status?.drainingUntil).toBe(T0 + 30_000);
    expect(h.registry.members.get(victim)).toMatchObject({ state: 'Terminating', drainUntil: T0 + 30_000 });
    expect(h.messages()).toContain(`topology/MemberReadyToShutdownEvent ${victim}`);
    expect(h.logger.records.some((r) => r.event === 'autoscaler.member_draining' && r.fields.memberId === victim)).toBe(
      true,
    );
    // The drain delay first: load balancers read the mark while the member still takes requests.
    expect(iaas.callsOf('terminate', victim)).toEqual([]);
    await vi.advanceTimersByTimeAsync(2_000);
    await flush();
    expect(iaas.callsOf('terminate', victim)).toEqual([
      { op: 'terminate', memberId: victim, at: T0 + 2_000, drainMs: 28_000 },
    ]);
    await vi.advanceTimersByTimeAsync(27_000);
    await flush();
    expect(removedOf(h, victim)).toBeUndefined();
    expect(h.stateOf(victim)).toBe('Terminating');
    await vi.advanceTimersByTimeAsync(1_000);
    await flush();
    expect(removedOf(h, victim)?.fields.reason).toBe(
      'above max: 2 members > max 1; drain timed out; terminated in 0 ms',
    );
    expect(h.stateOf(victim)).toBeUndefined();
    // Ticks meanwhile did not start a second terminate.
    expect(iaas.callsOf('terminate', victim)).toHaveLength(1);
    await h.core.close();
  });

  it('an idle workload ends the drain early', async () => {
    const iaas = new FakeIaas();
    iaas.drainIdleAfterMs = 5_000;
    const h = overMax(iaas);
    await h.core.start();
    await flush();
    const victim = victimOf(h);
    await vi.advanceTimersByTimeAsync(7_000);
    await flush();
    expect(removedOf(h, victim)?.fields.reason).toBe('above max: 2 members > max 1; drained; terminated in 0 ms');
    expect(h.messages().filter((m) => m.endsWith(victim))).toEqual([
      `autoscaler/ScaleDownAction ${victim}`,
      `topology/MemberReadyToShutdownEvent ${victim}`,
      `topology/MemberTerminatedEvent ${victim}`,
    ]);
    await h.core.close();
  });

  it('drainTimeoutMs 0: no drain, stopped at once as before', async () => {
    const iaas = new FakeIaas();
    iaas.drainIdleAfterMs = undefined;
    const h = overMax(iaas, { drainTimeoutMs: 0 });
    await h.core.start();
    await flush();
    const victim = victimOf(h);
    expect(removedOf(h, victim)).toBeDefined();
    expect(iaas.callsOf('terminate', victim)).toEqual([{ op: 'terminate', memberId: victim, at: T0 }]);
    expect(h.messages()).not.toContain(`topology/MemberReadyToShutdownEvent ${victim}`);
    await h.core.close();
  });

  it('a faulted member skips the drain', async () => {
    const iaas = new FakeIaas();
    iaas.drainIdleAfterMs = undefined;
    const h = harness({ iaas, clusters: [clusterConfig({ min: 2, max: 2, ...DRAIN })] });
    await h.startActive();
    await h.report(61_000); // a working detector, members serving longer than a fault timeout
    const [faulted] = h.memberIds();
    const at = Date.now();
    await h.core.handle(events.fault(faulted as string, { epoch: 4 }));
    await flush();
    expect(h.actions()).toContain(`MemberTerminateAction ${faulted}`);
    expect(removedOf(h, faulted as string)).toBeDefined();
    expect(iaas.callsOf('terminate', faulted)).toEqual([{ op: 'terminate', memberId: faulted, at }]);
    expect(h.messages()).not.toContain(`topology/MemberReadyToShutdownEvent ${faulted}`);
    await h.core.close();
  });

  it('a restart during a drain waits only for what is left of it (its persisted drainUntil), never a second full drain', async () => {
    const iaas = new FakeIaas();
    iaas.drainIdleAfterMs = undefined;
    const terminating = { reason: 'scale down', activatedAt: T0 - 50_000 };
    const registry = new MemoryRegistry([
      memberRow('php-a', 'Active'),
      // Draining when the last life died: 10 s of its drain are left.
      memberRow('php-b', 'Terminating', { ...terminating, drainUntil: T0 + 10_000 }),
      // Its drain ended while nobody owned it: stopped at once.
      memberRow('php-c', 'Terminating', { ...terminating, drainUntil: T0 - 1 }),
    ]);
    const h = harness({ registry, iaas, clusters: [clusterConfig({ min: 1, max: 3, ...DRAIN })] });
    await h.core.start();
    await vi.advanceTimersByTimeAsync(1_000);
    await flush();
    expect(iaas.callsOf('terminate', 'php-c')).toEqual([
      { op: 'terminate', memberId: 'php-c', at: expect.any(Number) },
    ]);
    expect(removedOf(h, 'php-c')).toBeDefined();
    expect(h.core.status().clusters[0]?.members.find((m) => m.memberId === 'php-b')?.drainingUntil).toBe(T0 + 10_000);
    await vi.advanceTimersByTimeAsync(2_000);
    await flush();
    const [call] = iaas.callsOf('terminate', 'php-b');
    expect(call?.drainMs).toBeLessThanOrEqual(10_000 - (call?.at ?? 0) + T0);
    expect(call?.drainMs).toBeGreaterThan(0);
    await vi.advanceTimersByTimeAsync(8_000);
    await flush();
    expect(removedOf(h, 'php-b')?.fields.reason).toMatch(/^scale down; drain timed out; terminated/);
    expect(Date.now()).toBeLessThanOrEqual(T0 + 12_000);
    expect(iaas.callsOf('terminate', 'php-b')).toHaveLength(1);
    await h.core.close();
  });

  it('closing during a drain leaves the member draining for the next owner, at once', async () => {
    const iaas = new FakeIaas();
    iaas.drainIdleAfterMs = undefined;
    const h = overMax(iaas);
    await h.core.start();
    await vi.advanceTimersByTimeAsync(3_000);
    await flush();
    const victim = victimOf(h);
    expect(iaas.callsOf('terminate', victim)).toHaveLength(1);
    let closed = false;
    const closing = h.core.close().then(() => {
      closed = true;
    });
    await flush();
    expect(closed).toBe(true);
    await closing;
    expect(iaas.running).toContain(victim);
    expect(h.registry.members.get(victim)).toMatchObject({ state: 'Terminating', drainUntil: T0 + 30_000 });
    expect(removedOf(h, victim)).toBeUndefined();
    expect(h.logger.records.some((r) => r.event === 'autoscaler.drain_handed_over')).toBe(true);
  });

  it('a faulted member is replaced at once while another drains: a draining member does not count toward min', async () => {
    const iaas = new FakeIaas();
    iaas.drainIdleAfterMs = undefined;
    const h = overMax(iaas, { drainTimeoutMs: 300_000, drainDelayMs: 2_000 });
    await h.core.start();
    await flush();
    const victim = victimOf(h);
    const survivor = victim === 'php-a' ? 'php-b' : 'php-a';
    await h.report(61_000); // a working detector; the victim drains on (300 s)
    expect(h.stateOf(victim)).toBe('Terminating');
    await h.core.handle(events.fault(survivor, { epoch: 4 }));
    await flush();
    expect(removedOf(h, survivor)).toBeDefined();
    // Its replacement now, not once the drain has ended: min 1 of serving members.
    const spawn = h.decisions().find((d) => d.fields.action === 'MemberSpawnAction');
    expect(spawn?.fields.reason).toBe('minimum rule: 0 < min 1');
    expect(h.stateOf(victim)).toBe('Terminating');
    await h.core.close();
  });

  it('a persisted drainUntil past the drain timeout (a clock ahead, a row edited) waits the drain timeout at most', async () => {
    const iaas = new FakeIaas();
    iaas.drainIdleAfterMs = undefined;
    const terminating = { reason: 'scale down', activatedAt: T0 - 50_000 };
    const registry = new MemoryRegistry([
      memberRow('php-a', 'Active'),
      memberRow('php-b', 'Terminating', { ...terminating, drainUntil: T0 + 10 * 3_600_000 }),
    ]);
    const h = harness({ registry, iaas, clusters: [clusterConfig({ min: 1, max: 3, ...DRAIN })] });
    await h.core.start();
    await vi.advanceTimersByTimeAsync(2_000);
    await flush();
    const [call] = iaas.callsOf('terminate', 'php-b');
    expect(call?.drainMs).toBe(30_000);
    await vi.advanceTimersByTimeAsync(30_000);
    await flush();
    expect(removedOf(h, 'php-b')?.fields.reason).toMatch(/^scale down; drain timed out; terminated/);
    await h.core.close();
  });
});
