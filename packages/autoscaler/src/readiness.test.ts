import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { parseMonitorState } from './monitor-state.js';
import { events, flush, harness, useFakeTime } from './testing/index.js';

/*
 * Issue 16, probes: a member whose readiness probe fails is out of service,
 * shown and not faulted; its agent's readiness events may come late, twice
 * or out of order, and the newest (life, seq) of each member wins.
 */
const service = events.service;

describe('readiness', () => {
  beforeEach(useFakeTime);
  afterEach(() => vi.useRealTimers());

  const outOf = (h: ReturnType<typeof harness>, memberId: string) =>
    h.core.status().clusters[0]?.members.find((m) => m.memberId === memberId)?.outOfService;

  it('a member out of service is shown, not faulted; the newest event of its agent wins', async () => {
    const h = harness();
    await h.startActive();
    await h.report(61_000);
    const before = h.actions().length;
    await h.core.handle(service('InstanceOutOfServiceEvent', 'php-2', 100, 1));
    expect(outOf(h, 'php-2')).toMatchObject({ reason: 'GET /ready answered 503' });
    // Back in service (seq 2), then the out-of-service event again, late: stays in service.
    await h.core.handle(service('InstanceInServiceEvent', 'php-2', 100, 2));
    await h.core.handle(service('InstanceOutOfServiceEvent', 'php-2', 100, 1));
    expect(outOf(h, 'php-2')).toBeNull();
    // A new agent life starts its numbering again: its first event is newer than the old life's last.
    await h.core.handle(service('InstanceOutOfServiceEvent', 'php-2', 200, 1));
    expect(outOf(h, 'php-2')).not.toBeNull();
    await h.report(120_000);
    expect(h.actions().slice(before)).toEqual([]);
    expect(h.logger.events()).toContain('autoscaler.member_out_of_service');
    await h.core.close();
  });

  it('a restart (or the other node after a takeover) still shows it out of service, and refuses an older event', async () => {
    const h = harness();
    await h.startActive();
    await h.core.handle(service('InstanceOutOfServiceEvent', 'php-2', 100, 3));
    await flush();
    await h.core.close();
    const stored = await h.registry.clusterStates();
    expect(stored.get('php')).toMatchObject({
      service: [{ memberId: 'php-2', life: 100, seq: 3, out: true, reason: 'GET /ready answered 503' }],
    });

    const again = harness({ registry: h.registry, iaas: h.iaas });
    await again.core.start();
    expect(outOf(again, 'php-2')).toMatchObject({ reason: 'GET /ready answered 503' });
    // Late from a broker: an in-service event older than the one kept changes nothing.
    await again.core.handle(service('InstanceInServiceEvent', 'php-2', 100, 2));
    expect(outOf(again, 'php-2')).not.toBeNull();
    await again.core.handle(service('InstanceInServiceEvent', 'php-2', 100, 4));
    expect(outOf(again, 'php-2')).toBeNull();
    await again.core.close();
  });

  it('a stored readiness entry that does not parse is left out, not the whole state', () => {
    const good = { memberId: 'php-2', life: 1, seq: 2, out: true, reason: null, since: 5 };
    const parsed = parseMonitorState({
      backoff: { failures: 0, notBefore: null, lastFailureAt: null },
      faults: { stormHeldSince: null, held: [] },
      service: [good, { ...good, seq: -1 }, { ...good, out: 'yes' }, { ...good, reason: 'x'.repeat(5_000) }, 7],
    });
    expect(parsed).toMatchObject({ service: [good] });
  });
});
