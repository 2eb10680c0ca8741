import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { clusterConfig, events, flush, harness, MemoryRegistry, T0, useFakeTime } from './testing/index.js';

/*
 * Issue 16, a second witness before a kill: a member whose agent is silent
 * but whose workload still answers the cloud controller's own probe keeps its
 * instance and gets a new agent, when its cluster turns the witness on. Fake
 * time, the fake Iaas; the harness's fault timeout is 60 s.
 */
const witnessOn = (secondWitness: Record<string, unknown> = {}) =>
  harness({
    clusters: [
      clusterConfig({ secondWitness: { enabled: true, maxRestarts: 2, withinMs: 600_000, ...secondWitness } }),
    ],
  });

const since = (h: ReturnType<typeof harness>, before: number) => h.actions().slice(before);
const reasonOf = (h: ReturnType<typeof harness>, action: string, memberId: string) =>
  h.decisions().find((d) => d.fields.action === action && d.fields.memberId === memberId)?.fields.reason;

describe('second witness', () => {
  beforeEach(useFakeTime);
  afterEach(() => vi.useRealTimers());

  it('off (the default): a silent agent of a running instance is terminated and replaced, as without it', async () => {
    const h = harness();
    await h.startActive();
    await h.report(61_000);
    const before = h.actions().length;
    await h.core.handle(events.fault('php-2'));
    await flush();
    expect(since(h, before)).toEqual(['MemberTerminateAction php-2', 'MemberRemoved php-2', 'MemberSpawnAction php-4']);
    expect(h.iaas.callsOf('probe', 'php-2')).toEqual([]);
    expect(h.iaas.callsOf('restartAgent')).toEqual([]);
    await h.core.close();
  });

  it('on, the workload answering: its agent is restarted, the member kept with its new instance, no failed replacement', async () => {
    const h = witnessOn();
    await h.startActive();
    // Faulted soon after its activation: without the witness it would count as a failed replacement (backoff).
    await h.report(15_000);
    const before = h.actions().length;
    await h.core.handle(events.fault('php-2', { epoch: 3 }));
    await flush();
    expect(since(h, before)).toEqual(['AgentRestarted php-2']);
    expect(h.iaas.calls.filter((c) => c.memberId === 'php-2').map((c) => c.op)).toEqual([
      'spawn',
      'probe',
      'restartAgent',
    ]);
    expect(reasonOf(h, 'AgentRestarted', 'php-2')).toBe(
      "MemberFault (timeout, silent 60000 ms); second witness: its workload answers the cloud controller's probe, only its agent was silent: a new agent runs; the instance is kept",
    );
    expect(h.decisions().at(-1)?.fields.epoch).toBe(3);
    // Kept, Active, with the instance naming its new agent: in the context and in the registry.
    expect(h.stateOf('php-2')).toBe('Active');
    expect(h.iaas.running).toEqual(['php-1', 'php-2', 'php-3']);
    expect(h.registry.members.get('php-2')).toMatchObject({ state: 'Active', instance: { handle: { agent: 1 } } });
    expect(h.registry.actions.find((a) => a.action === 'AgentRestarted')).toMatchObject({
      memberId: 'php-2',
      clusterId: 'php',
      epoch: 3,
    });
    // No event of its own on the brokers; no backoff; the storm guard saw one fault.
    expect(h.messages().some((m) => m.includes('AgentRestarted'))).toBe(false);
    expect(h.core.status().clusters[0]?.backoff.failures).toBe(0);
    expect(h.core.counters).toMatchObject({ faults: 1, terminated: 0, spawned: 3 });
    // Its new agent reports: it is listed and stays, past another fault timeout; the CEP's repeats of the
    // repaired fault (same id, same last stat) until then are no news.
    await h.core.handle(events.fault('php-2', { epoch: 3 }));
    await h.report(150_000);
    expect(since(h, before)).toEqual(['AgentRestarted php-2']);
    expect(h.iaas.callsOf('restartAgent')).toHaveLength(1);
    expect(h.logger.records.filter((r) => r.event === 'autoscaler.fault_ignored').map((r) => r.fields.why)).toEqual([
      'it is a fault of the agent that was replaced (its last stat is not after the restart)',
    ]);
    await h.core.close();
  });

  it.each([
    [
      'its workload hangs',
      (h: ReturnType<typeof harness>) => h.iaas.hung.add('php-2'),
      /second witness: its workload does not answer the probe either; instance still running$/,
    ],
    [
      'the restart fails',
      (h: ReturnType<typeof harness>) => h.iaas.failAgentRestarts.add('php-2'),
      /second witness: its workload answers, but its agent was not restarted: the fake was told to fail; instance still running$/,
    ],
    [
      'its agent still runs',
      (h: ReturnType<typeof harness>) => h.iaas.agentRunning.add('php-2'),
      /second witness: its workload answers, but its agent still runs: none was started; a silent agent that runs is not restarted; instance still running$/,
    ],
  ])('on, %s: terminated and replaced as without it, saying what the witness saw', async (_what, arrange, reason) => {
    const h = witnessOn();
    await h.startActive();
    await h.report(61_000);
    arrange(h);
    const before = h.actions().length;
    await h.core.handle(events.fault('php-2'));
    await flush();
    expect(since(h, before)).toEqual(['MemberTerminateAction php-2', 'MemberRemoved php-2', 'MemberSpawnAction php-4']);
    expect(reasonOf(h, 'MemberTerminateAction', 'php-2')).toMatch(reason);
    // The causal chain's fault is on the terminate, as without the witness.
    expect(h.registry.actions.find((a) => a.action === 'MemberTerminateAction')?.fault).toMatchObject({
      kind: 'timeout',
    });
    await h.core.close();
  });

  it('a member out of service gets a new agent in service: what the old agent last said is over, its late events refused', async () => {
    const h = witnessOn();
    await h.startActive();
    await h.report(15_000);
    const readiness = (type: 'InstanceOutOfServiceEvent' | 'InstanceInServiceEvent', seq: number) =>
      events.service(type, 'php-2', 7, seq);
    const outOfService = () => h.core.status().clusters[0]?.members.find((m) => m.memberId === 'php-2')?.outOfService;
    await h.core.handle(readiness('InstanceOutOfServiceEvent', 2));
    expect(outOfService()).not.toBeNull();
    await h.core.handle(events.fault('php-2', { epoch: 3 }));
    await flush();
    expect(h.actions().at(-1)).toBe('AgentRestarted php-2');
    // The new agent starts in service and says so only on a change: the member is not left out for good.
    expect(outOfService()).toBeNull();
    expect((await h.registry.clusterStates()).get('php')).toMatchObject({
      service: [{ memberId: 'php-2', life: 7, seq: 2, out: false }],
    });
    // The old agent's events, late: refused.
    await h.core.handle(readiness('InstanceOutOfServiceEvent', 1));
    expect(outOfService()).toBeNull();
    await h.core.close();
  });

  it('a verdict that comes after its member went into maintenance is held, not carried out', async () => {
    const h = witnessOn();
    await h.startActive();
    await h.report(61_000);
    h.iaas.failAgentRestarts.add('php-2');
    h.iaas.restartAgentDelayMs = 5_000;
    const before = h.actions().length;
    await h.core.handle(events.fault('php-2'));
    await flush();
    // The operator puts the cluster in maintenance while the witness is at work.
    h.registry.maintenanceRows.push({ clusterId: 'php', memberId: null, reason: 'r', by: 'ops', since: Date.now() });
    await h.report(6_000, { stepMs: 1_000, except: ['php-2'] });
    expect(since(h, before)).toEqual(['MaintenanceOn']);
    expect(h.core.status().clusters[0]?.members.find((m) => m.memberId === 'php-2')?.heldFault).toMatch(
      /second witness: its workload answers, but its agent was not restarted/,
    );
    expect(h.logger.events()).toContain('autoscaler.fault_held');
    await h.core.close();
  });

  it('on, the instance gone: removed and replaced, no terminate action', async () => {
    const h = witnessOn();
    await h.startActive();
    await h.report(61_000);
    h.iaas.kill('php-2');
    const before = h.actions().length;
    await h.core.handle(events.fault('php-2'));
    await flush();
    expect(since(h, before)).toEqual(['MemberRemoved php-2', 'MemberSpawnAction php-4']);
    expect(reasonOf(h, 'MemberRemoved', 'php-2')).toBe(
      'MemberFault (timeout, silent 60000 ms); second witness: its instance is gone; instance not running',
    );
    expect(h.iaas.callsOf('restartAgent')).toEqual([]);
    await h.core.close();
  });

  it('bounded: past maxRestarts restarts within withinMs the repair did not hold, and the member goes', async () => {
    const h = witnessOn({ maxRestarts: 2, withinMs: 600_000 });
    await h.startActive();
    await h.report(61_000);
    const before = h.actions().length;
    for (const lastStatAt of [T0 + 10_000, T0 + 70_000]) {
      // Each a new silence of a new agent's life: its last stat is later than the repaired one's.
      await h.core.handle(events.fault('php-2', { lastStatAt }));
      await h.report(30_000);
    }
    expect(since(h, before)).toEqual(['AgentRestarted php-2', 'AgentRestarted php-2']);
    await h.core.handle(events.fault('php-2', { lastStatAt: T0 + 130_000 }));
    await flush();
    expect(since(h, before)).toEqual([
      'AgentRestarted php-2',
      'AgentRestarted php-2',
      'MemberTerminateAction php-2',
      'MemberRemoved php-2',
      'MemberSpawnAction php-4',
    ]);
    expect(reasonOf(h, 'MemberTerminateAction', 'php-2')).toBe(
      'MemberFault (timeout, silent 60000 ms); second witness: its agent was restarted 2 times within 600000 ms (secondWitness.maxRestarts 2): the repair did not hold; instance still running',
    );
    expect(h.iaas.callsOf('restartAgent', 'php-2')).toHaveLength(2);
    await h.core.close();
  });

  it('restarts older than withinMs no longer count', async () => {
    // The shortest window allowed: (maxRestarts + 1) × (fault timeout 60 s + summary interval 15 s).
    const h = witnessOn({ maxRestarts: 1, withinMs: 150_000 });
    await h.startActive();
    await h.report(61_000);
    await h.core.handle(events.fault('php-2', { lastStatAt: T0 + 10_000 }));
    await h.report(151_000);
    await h.core.handle(events.fault('php-2', { lastStatAt: T0 + 180_000 }));
    await flush();
    expect(h.actions().filter((a) => a.endsWith('php-2'))).toEqual([
      'MemberSpawnAction php-2',
      'AgentRestarted php-2',
      'AgentRestarted php-2',
    ]);
    await h.core.close();
  });

  it('a duplicate MemberFault during the restart does not terminate; nor does a tick', async () => {
    const h = witnessOn();
    await h.startActive();
    await h.report(61_000);
    h.iaas.restartAgentDelayMs = 4_000;
    const before = h.actions().length;
    await h.core.handle(events.fault('php-2', { id: 'f-1' }));
    await vi.advanceTimersByTimeAsync(1_000);
    // The other SP node's copy, a re-announce, and a fault with a later last stat: the witness is looking.
    await h.core.handle(events.fault('php-2', { id: 'f-2' }));
    await h.core.handle(events.fault('php-2', { id: 'f-1' }));
    await h.core.handle(events.fault('php-2', { id: 'f-3', lastStatAt: T0 + 1 }));
    await vi.advanceTimersByTimeAsync(1_000); // a tick while it restarts
    expect(since(h, before)).toEqual([]);
    expect(h.stateOf('php-2')).toBe('Active');
    await vi.advanceTimersByTimeAsync(3_000);
    await flush();
    expect(since(h, before)).toEqual(['AgentRestarted php-2']);
    expect(h.iaas.callsOf('restartAgent', 'php-2')).toHaveLength(1);
    expect(h.iaas.callsOf('terminate', 'php-2')).toEqual([]);
    expect(
      h.logger.records
        .filter((r) => r.event === 'autoscaler.fault_ignored' && r.fields.memberId === 'php-2')
        .map((r) => r.fields.why),
    ).toEqual(Array(3).fill('the second witness is looking at it (its agent may be restarting)'));
    await h.core.close();
  });

  it('an absence is witnessed too: its lost MemberFault does not cost the instance', async () => {
    const h = witnessOn();
    await h.startActive();
    await h.report(60_000);
    const before = h.actions().length;
    await h.report(90_000, { except: ['php-2'] });
    expect(since(h, before)).toEqual(['AgentRestarted php-2']);
    expect(reasonOf(h, 'AgentRestarted', 'php-2')).toMatch(
      /^absent: no member summary listed it for \d+ ms; second witness: /,
    );
    // The MemberFault of the replaced agent, late (lost on the way, re-announced): no news.
    await h.core.handle(events.fault('php-2', { lastStatAt: T0 + 60_000 }));
    await flush();
    expect(since(h, before)).toEqual(['AgentRestarted php-2']);
    // Listed again once its new agent reports: kept.
    await h.report(120_000);
    expect(since(h, before)).toEqual(['AgentRestarted php-2']);
    await h.core.close();
  });

  it('what it repaired survives a restart of the autoscaler: the bound and the repeats of the repaired fault', async () => {
    const registry = new MemoryRegistry();
    const config = clusterConfig({ secondWitness: { enabled: true, maxRestarts: 1, withinMs: 600_000 } });
    const h = harness({ registry, clusters: [config] });
    await h.startActive();
    await h.report(61_000);
    await h.core.handle(events.fault('php-2', { lastStatAt: T0 + 10_000 }));
    await h.report(15_000);
    expect(h.actions().at(-1)).toBe('AgentRestarted php-2');
    await h.core.close();

    const again = harness({ registry, iaas: h.iaas, clusters: [config] });
    await again.core.start();
    await again.report(61_000); // past its first fault timeout, when faults are held and verified
    // A repeat of the repaired fault, queued while it was away: no news.
    await again.core.handle(events.fault('php-2', { lastStatAt: T0 + 10_000 }));
    await flush();
    expect(again.actions()).toEqual([]);
    // A new silence: one restart within the window already, so the bound is reached.
    await again.core.handle(events.fault('php-2', { lastStatAt: T0 + 100_000 }));
    await flush();
    expect(again.actions().slice(0, 1)).toEqual(['MemberTerminateAction php-2']);
    expect(reasonOf(again, 'MemberTerminateAction', 'php-2')).toMatch(/the repair did not hold/);
    await again.core.close();
  });
});
