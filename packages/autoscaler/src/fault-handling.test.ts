import type { Envelope } from '@faultline/protocol';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { events, flush, harness, T0, useFakeTime } from './testing/index.js';

/*
 * The seed's chain, on fake time with a fake Iaas: "If the instance is still
 * running, Auto-scaler will terminate the instance and remove all the
 * in-memory content related to that member. Thereafter, based on the
 * Auto-scaler rules, Auto-scaler will decide whether another instance should
 * be spawned."
 */
describe('MemberFault handling', () => {
  beforeEach(useFakeTime);
  afterEach(() => vi.useRealTimers());

  it('starts a min=3 cluster: three spawns, each announced, each row in the registry', async () => {
    const h = harness();
    await h.core.start();
    await flush();
    expect(h.actions()).toEqual(['MemberSpawnAction php-1', 'MemberSpawnAction php-2', 'MemberSpawnAction php-3']);
    expect(h.iaas.running).toEqual(['php-1', 'php-2', 'php-3']);
    expect(h.messages()).toEqual([
      'autoscaler/MemberSpawnAction php-1',
      'autoscaler/MemberSpawnAction php-2',
      'autoscaler/MemberSpawnAction php-3',
      'topology/MemberCreatedEvent php-1',
      'topology/MemberCreatedEvent php-2',
      'topology/MemberCreatedEvent php-3',
    ]);
    expect(h.decisions()[0]?.fields).toEqual({
      event: 'autoscaler.action',
      action: 'MemberSpawnAction',
      memberId: 'php-1',
      clusterId: 'php',
      reason: 'minimum rule: 0 < min 3',
      epoch: null,
    });
    const row = h.registry.members.get('php-1');
    expect(row).toMatchObject({ state: 'Created', createdAt: T0, instance: { driver: 'fake', memberId: 'php-1' } });
    await h.core.close();
  });

  it('Created → Starting → Active from the agent events, recorded in the registry', async () => {
    const h = harness();
    await h.core.start();
    await flush();
    await h.core.handle(events.started('php-1'));
    expect(h.stateOf('php-1')).toBe('Starting');
    vi.setSystemTime(T0 + 4_000);
    await h.core.handle(events.activated('php-1'));
    // Activated may overtake Started (two brokers): Created goes straight to Active.
    await h.core.handle(events.activated('php-2'));
    await h.core.handle(events.started('php-2'));
    await flush();
    expect([h.stateOf('php-1'), h.stateOf('php-2'), h.stateOf('php-3')]).toEqual(['Active', 'Active', 'Created']);
    expect(h.registry.members.get('php-1')).toMatchObject({ state: 'Active', activatedAt: T0 + 4_000 });
    await h.core.close();
  });

  it('a running member: terminate, then remove, then spawn — in that order, even with a tick in between', async () => {
    const h = harness();
    await h.startActive();
    await h.report(61_000); // served longer than one fault timeout: its fault is no failed replacement (no backoff)
    const t = Date.now();
    h.iaas.terminateDelayMs = 2_500; // longer than the 1 s monitor interval
    const before = h.actions().length;
    await h.core.handle(events.fault('php-2', { epoch: 4 }));
    expect(h.stateOf('php-2')).toBe('Terminating');
    await vi.advanceTimersByTimeAsync(1_500); // a tick while it terminates: no replacement yet
    expect(h.actions().slice(before)).toEqual(['MemberTerminateAction php-2']);
    await vi.advanceTimersByTimeAsync(1_000);
    await flush();
    expect(h.actions().slice(before)).toEqual([
      'MemberTerminateAction php-2',
      'MemberRemoved php-2',
      'MemberSpawnAction php-4',
    ]);
    const [terminate, removed, spawn] = h.decisions().slice(before);
    expect(terminate?.fields).toEqual({
      event: 'autoscaler.action',
      action: 'MemberTerminateAction',
      memberId: 'php-2',
      clusterId: 'php',
      reason: 'MemberFault (timeout, silent 60000 ms); instance still running',
      epoch: 4,
    });
    expect(removed?.fields.reason).toBe('MemberFault (timeout, silent 60000 ms); terminated in 2500 ms');
    expect(spawn?.fields).toMatchObject({ reason: 'minimum rule: 2 < min 3', epoch: 4 });
    expect(h.iaas.calls.filter((c) => c.memberId === 'php-2' || c.op === 'spawn').slice(-3)).toMatchObject([
      { op: 'isRunning', memberId: 'php-2' },
      { op: 'terminate', memberId: 'php-2' },
      { op: 'spawn', memberId: 'php-4' },
    ]);
    expect(h.messages().slice(-4)).toEqual([
      'autoscaler/MemberTerminateAction php-2',
      'topology/MemberTerminatedEvent php-2',
      'autoscaler/MemberSpawnAction php-4',
      'topology/MemberCreatedEvent php-4',
    ]);
    expect(h.registry.members.get('php-2')).toMatchObject({ state: 'Terminated', terminatedAt: t + 2_500 });
    // The causal chain's facts: the first decision on the fault records when it was declared and the last stat.
    const recorded = h.registry.actions.filter((a) => a.memberId === 'php-2' && a.action !== 'MemberSpawnAction');
    expect(recorded.map((a) => [a.action, a.fault])).toEqual([
      ['MemberTerminateAction', { kind: 'timeout', lastStatAt: T0, declaredAt: t }],
      ['MemberRemoved', null],
    ]);
    // The spawn that refills the cluster names the member it replaces.
    expect(h.registry.actions.find((a) => a.memberId === 'php-4')).toMatchObject({
      action: 'MemberSpawnAction',
      replaces: 'php-2',
    });
    expect(h.memberIds()).toEqual(['php-1', 'php-3', 'php-4']);
    expect(h.core.counters).toMatchObject({ faults: 1, terminated: 1, spawned: 4 });
    await h.core.close();
  });

  it('a dead member: remove, then spawn, no terminate action — its leftovers are still reaped', async () => {
    const h = harness();
    await h.startActive();
    await h.report(61_000);
    h.iaas.kill('php-1');
    const before = h.actions().length;
    await h.core.handle(events.fault('php-1', { reason: 'ports_not_open' }));
    await flush();
    expect(h.actions().slice(before)).toEqual(['MemberRemoved php-1', 'MemberSpawnAction php-4']);
    expect(h.decisions()[before]?.fields.reason).toBe('MemberFault (ports_not_open); instance not running');
    expect(h.registry.actions.find((a) => a.memberId === 'php-1' && a.action === 'MemberRemoved')?.fault).toMatchObject(
      {
        kind: 'ports_not_open',
        lastStatAt: T0,
      },
    );
    // Quietly: the Iaas is told to terminate (a lingering agent), without a MemberTerminateAction.
    expect(h.iaas.callsOf('terminate', 'php-1')).toHaveLength(1);
    expect(h.messages()).not.toContain('autoscaler/MemberTerminateAction php-1');
    expect(h.messages()).toContain('topology/MemberTerminatedEvent php-1');
    await h.core.close();
  });

  it('is idempotent: a second fault of the member, a fault of a terminating or unknown member, are ignored', async () => {
    const h = harness();
    await h.startActive();
    await h.report(61_000);
    h.iaas.terminateDelayMs = 1_000;
    const before = h.actions().length;
    await h.core.handle(events.fault('php-1', { id: 'f-1' }));
    // Another fault id for the same member (the other SP node, a later lastStatAt): it is already terminating.
    await h.core.handle(events.fault('php-1', { id: 'f-2', lastStatAt: T0 + 1 }));
    await vi.advanceTimersByTimeAsync(1_000);
    await flush();
    // And after it is gone: unknown.
    await h.core.handle(events.fault('php-1', { id: 'f-3', lastStatAt: T0 + 2 }));
    await h.core.handle(events.fault('never-existed'));
    await flush();
    expect(h.actions().slice(before)).toEqual([
      'MemberTerminateAction php-1',
      'MemberRemoved php-1',
      'MemberSpawnAction php-4',
    ]);
    expect(h.iaas.callsOf('terminate', 'php-1')).toHaveLength(1);
    expect(h.core.counters).toMatchObject({ faults: 1, faultsIgnored: 3 });
    const ignored = h.logger.records.filter((r) => r.event === 'autoscaler.fault_ignored').map((r) => r.fields.why);
    expect(ignored).toEqual([
      'already terminating',
      'unknown or already terminated member',
      'unknown or already terminated member',
    ]);
    await h.core.close();
  });

  it('fences commands, not facts: a summary under an older SP epoch is dropped, a MemberFault is acted upon', async () => {
    const h = harness();
    await h.startActive();
    await h.core.handle(events.clusterStat('AverageLoadAverageEvent', 20, T0, 7));
    await h.core.handle(events.clusterStat('AverageLoadAverageEvent', 95, T0 + 1, 6));
    expect(h.core.counters.staleEpochDropped).toBe(1);
    expect(h.logger.records.find((r) => r.event === 'autoscaler.stale_epoch_dropped')?.fields).toMatchObject({
      type: 'AverageLoadAverageEvent',
      epoch: 6,
      newestEpoch: 7,
    });
    // A deposed leader's MemberFault states what happened to the member: acted upon while it is live.
    await h.core.handle(events.fault('php-1', { epoch: 6 }));
    await flush();
    expect(h.actions()).toContain('MemberTerminateAction php-1');
    expect(h.core.counters).toMatchObject({ staleEpochDropped: 1, staleEpochFacts: 1 });
    expect(h.registry.epoch).toBe(7);
    expect(h.core.status().newestEpoch).toBe(7);
    await h.core.close();

    // A restarted autoscaler fences from the first event on.
    const again = harness({ registry: h.registry, iaas: h.iaas });
    await again.core.start();
    await again.core.handle(events.clusterStat('AverageLoadAverageEvent', 20, T0 + 2, 5));
    expect(again.core.counters.staleEpochDropped).toBe(1);
    await again.core.close();
  });

  it('the lease table raises the fence every tick: a deposed leader is fenced before the new one speaks', async () => {
    const h = harness();
    await h.startActive();
    await h.core.handle(events.clusterStat('AverageLoadAverageEvent', 20, T0, 3));
    h.registry.leader = 4; // the passive took over; nothing of epoch 4 has arrived yet
    await vi.advanceTimersByTimeAsync(1_000);
    await flush();
    expect(h.core.status().newestEpoch).toBe(4);
    await h.core.handle(events.clusterStat('AverageLoadAverageEvent', 95, T0 + 15_000, 3));
    expect(h.core.counters.staleEpochDropped).toBe(1);
    await h.core.close();
  });

  it('follows the lease table down after a database restore: a reset epoch is not fenced for good', async () => {
    const h = harness();
    await h.startActive();
    h.registry.leader = 9;
    await h.core.handle(events.clusterStat('AverageLoadAverageEvent', 20, T0, 9));
    expect(h.core.status().newestEpoch).toBe(9);
    // The database is restored from a backup taken before the last acquires: the lease restarts at epoch 2.
    h.registry.leader = 2;
    await vi.advanceTimersByTimeAsync(1_000);
    await flush();
    expect(h.core.status().newestEpoch).toBe(2);
    await h.core.handle(events.clusterStat('AverageLoadAverageEvent', 30, T0 + 15_000, 2));
    expect(h.core.counters.staleEpochDropped).toBe(0);
    // A summary of the leader before the restore (epoch 9, late from a broker) is ahead of the lease
    // table: it does not raise the fence again, or every event of the real leader would be dropped.
    await h.core.handle(events.clusterStat('AverageLoadAverageEvent', 40, T0 + 16_000, 9));
    expect(h.core.counters.staleEpochDropped).toBe(1);
    expect(h.core.status().newestEpoch).toBe(2);
    await h.core.handle(events.clusterStat('AverageLoadAverageEvent', 50, T0 + 17_000, 2));
    expect(h.core.counters.staleEpochDropped).toBe(1);
    await flush();
    expect(h.registry.epoch).toBe(2);
    await h.core.close();
  });

  it('an epoch on anything but an SP event never moves the fence', async () => {
    // Issue 12: an agent's InstanceStartedEvent with epoch MAX_SAFE_INTEGER raised the
    // persisted fence for good. The subscriber refuses it at decode; the core does not trust it either.
    const h = harness();
    await h.startActive();
    await h.core.handle(events.clusterStat('AverageLoadAverageEvent', 20, T0, 3));
    const forged = { ...events.started('php-1'), epoch: Number.MAX_SAFE_INTEGER } as Envelope;
    await h.core.handle(forged);
    await flush();
    expect(h.core.status().newestEpoch).toBe(3);
    expect(h.registry.epoch).toBe(3);
    await h.core.handle(events.fault('php-1', { epoch: 3 }));
    await flush();
    expect(h.core.counters.staleEpochDropped).toBe(0);
    expect(h.actions()).toContain('MemberTerminateAction php-1');
    await h.core.close();
  });

  it('ignores events of clusters it does not manage', async () => {
    const h = harness();
    await h.startActive();
    const other = events.fault('x-1');
    (other.data as { clusterId: string }).clusterId = 'other';
    await h.core.handle(other);
    expect(h.core.counters.unknownCluster).toBe(1);
    expect(h.logger.records.some((r) => r.event === 'autoscaler.unmanaged_cluster_ignored')).toBe(true);
    await h.core.close();
  });
});
