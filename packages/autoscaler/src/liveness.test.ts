import type { MemberInstance } from '@faultline/cloud-controller';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MAX_PROBES_PER_TICK } from './cluster-faults.js';
import { clusterConfig, events, flush, harness, MemoryRegistry, useFakeTime } from './testing/index.js';

/*
 * "No fault is ever lost": decisions re-derived from state every monitor
 * interval, so a lost, late or duplicated message costs time, never
 * correctness. Fake time; the harness's fault timeout is 60 s and the SP's
 * summary tick 15 s, so a member no summary listed for 75 s is absent.
 */
const actionsOf = (h: ReturnType<typeof harness>, since: number) => h.actions().slice(since);

describe('liveness from state', () => {
  beforeEach(useFakeTime);
  afterEach(() => vi.useRealTimers());

  it('a fresh stack is not a silent detector: the first listing of a partition whose members just started is no resumption', async () => {
    const h = harness();
    await h.core.start();
    await flush();
    // The members take a while to start; the SP lists them from its first summary after.
    await vi.advanceTimersByTimeAsync(30_000);
    for (const id of h.iaas.running) await h.core.handle(events.activated(id));
    await h.report(35_000, { stepMs: 35_000 });
    await h.report(45_000);
    expect(h.actions()).not.toContain('DetectorSilent');
    expect(h.core.status().clusters[0]?.members.every((m) => m.heldFault === null)).toBe(true);
    await h.core.close();
  });

  it('an Active member the summaries stop listing is faulted `absent` and replaced: its MemberFault was lost', async () => {
    const h = harness();
    await h.startActive();
    await h.report(60_000);
    const before = h.actions().length;
    // php-2's agent died; the SP's MemberFault never arrived (lost, or published into a broker nobody read).
    await h.report(75_000, { except: ['php-2'] });
    expect(actionsOf(h, before)).toEqual([]);
    await h.report(15_000, { except: ['php-2'] });
    expect(actionsOf(h, before)).toEqual([
      'MemberTerminateAction php-2',
      'MemberRemoved php-2',
      'MemberSpawnAction php-4',
    ]);
    expect(h.decisions()[before]?.fields.reason).toMatch(
      /^absent: no member summary listed it for \d+ ms; instance still running$/,
    );
    expect(h.core.counters).toMatchObject({ faults: 1, faultsAbsent: 1 });
    await h.core.close();
  });

  it('a silent detector holds every fault-driven action, says so once, and verifies each held member (small clusters too)', async () => {
    const h = harness({ clusters: [clusterConfig({ min: 2, max: 2 })] });
    await h.startActive();
    await h.report(60_000);
    const before = h.actions().length;
    // The SP pair (or both brokers) stops: no summary at all for five minutes.
    await vi.advanceTimersByTimeAsync(300_000);
    await flush();
    expect(actionsOf(h, before)).toEqual(['DetectorSilent']);
    expect(h.core.status().clusters[0]?.detectorSilent.map((s) => s.networkPartitionId)).toEqual(['np-1']);
    // A deposed or confused SP says both members of the 2-member cluster faulted: held, not acted upon.
    await h.core.handle(events.fault('php-1'));
    await h.core.handle(events.fault('php-2'));
    await vi.advanceTimersByTimeAsync(5_000);
    await flush();
    expect(actionsOf(h, before)).toEqual(['DetectorSilent']);
    expect(h.iaas.running).toEqual(['php-1', 'php-2']);
    // php-2 really hangs: its probe fails, so it is acted upon even while the detector is silent.
    h.iaas.hung.add('php-2');
    await vi.advanceTimersByTimeAsync(1_000);
    await flush();
    expect(actionsOf(h, before)).toEqual([
      'DetectorSilent',
      'MemberTerminateAction php-2',
      'MemberRemoved php-2',
      'MemberSpawnAction php-3',
    ]);
    expect(h.decisions().at(-3)?.fields.reason).toMatch(
      /held in a detector silence and verified: its workload does not answer/,
    );
    // Summaries come back: the detector settles for one fault timeout (agents find the new active), then
    // it says so once, and php-1's held fault is cleared (it reports).
    await h.core.handle(events.activated('php-3'));
    await h.report(16_000);
    expect(h.actions()).not.toContain('DetectorResumed');
    await h.report(60_000);
    expect(h.actions().at(-1)).toBe('DetectorResumed');
    expect(h.core.status().clusters[0]?.members.find((m) => m.memberId === 'php-1')?.heldFault).toBeNull();
    expect(h.iaas.running).toContain('php-1');
    await h.core.close();
  });

  it('after a silence the detector settles: one member reporting again does not vouch for the others', async () => {
    // Found by the nemesis: after an SP outage one fresh member reported to the new active, the gate
    // opened, and the new active's faults of members whose agents were still backing off were acted upon.
    const h = harness({ clusters: [clusterConfig({ min: 3, max: 3 })] });
    await h.startActive();
    await h.report(61_000);
    await vi.advanceTimersByTimeAsync(70_000); // the SP pair is down
    await flush();
    expect(h.actions().at(-1)).toBe('DetectorSilent');
    await h.report(2_000, { stepMs: 1_000, except: ['php-1', 'php-2'] }); // only php-3 reached the new active
    await h.core.handle(events.fault('php-1', { lastStatAt: Date.now() - 70_000 }));
    await flush();
    expect(h.actions()).not.toContain('MemberTerminateAction php-1');
    expect(h.core.status().clusters[0]?.members.find((m) => m.memberId === 'php-1')?.heldFault).toMatch(
      /held: detector silent/,
    );
    // php-1's agent finds the new active: its fault is cleared once the detector has settled.
    await h.report(61_000, { except: ['php-2'] });
    expect(h.actions()).not.toContain('MemberTerminateAction php-1');
    // php-2 never reports again: the absence rule takes it once the detector is trusted again.
    await h.report(20_000, { except: ['php-2'] });
    expect(h.actions()).toContain('MemberTerminateAction php-2');
    await h.core.close();
  });

  it('a restarted autoscaler holds and verifies the faults it gets in its first fault timeout: they may have queued while it was away', async () => {
    // Found by the nemesis (20 min run): a fault of an SP that had woken from a pause was queued in the
    // autoscaler's persistent session while it was down, and its next life acted on it at once.
    const registry = new MemoryRegistry();
    const h = harness({ registry });
    await h.startActive();
    await h.report(61_000);
    await h.core.close();
    const again = harness({ registry, iaas: h.iaas });
    await again.core.start();
    await flush();
    await again.core.handle(events.fault('php-2', { lastStatAt: Date.now() - 65_000 }));
    await flush();
    expect(again.actions()).not.toContain('MemberTerminateAction php-2');
    expect(again.core.status().clusters[0]?.members.find((m) => m.memberId === 'php-2')?.heldFault).toMatch(/held/);
    // It answers its probe and is listed once the autoscaler has a view: the stale fault is cleared, the member kept.
    await again.report(75_000);
    expect(again.actions().filter((a) => a.startsWith('MemberTerminateAction'))).toEqual([]);
    expect(again.actions()).not.toContain('DetectorSilent');
    await again.core.close();
  });

  it('the storm guard counts a cluster of min members while faulted ones are being replaced: 1 of 3 goes, not 2', async () => {
    // Found by the nemesis: a member terminating is not live and its replacement was not spawned yet,
    // so at the second fault the cluster looked like 2 members and the guard (≥ 3) stayed off.
    const h = harness({ clusters: [clusterConfig({ min: 3, max: 3 })] });
    await h.startActive();
    await h.report(61_000);
    h.iaas.terminateDelayMs = 5_000;
    await h.core.handle(events.fault('php-1'));
    await h.core.handle(events.fault('php-2'));
    await flush();
    expect(h.actions().filter((a) => a.startsWith('MemberTerminateAction'))).toEqual(['MemberTerminateAction php-1']);
    expect(h.actions()).toContain('FaultStormHeld');
    await vi.advanceTimersByTimeAsync(6_000);
    await h.core.close();
  });

  it('a fault storm whose members really hang ends: each is verified and replaced', async () => {
    const h = harness({ clusters: [clusterConfig({ min: 4, max: 4 })] });
    await h.startActive();
    await h.report(61_000);
    // The whole cluster hangs at once: it sends no summary any more, so no cluster stat can release the storm.
    for (const id of ['php-1', 'php-2', 'php-3', 'php-4']) h.iaas.hung.add(id);
    await h.core.handle(events.fault('php-1'));
    await h.core.handle(events.fault('php-2'));
    await flush();
    await h.core.handle(events.fault('php-3'));
    await h.core.handle(events.fault('php-4'));
    await flush();
    expect(h.actions()).toContain('FaultStormHeld');
    await vi.advanceTimersByTimeAsync(2_000);
    await flush();
    const terminated = h.actions().filter((a) => a.startsWith('MemberTerminateAction'));
    expect(terminated).toEqual([
      'MemberTerminateAction php-1',
      'MemberTerminateAction php-2',
      'MemberTerminateAction php-3',
      'MemberTerminateAction php-4',
    ]);
    // php-1 and php-2 went at once (2 of min 4 is half, not more); php-3 tipped the storm, php-4 was held with it.
    expect(h.core.counters.heldConfirmed).toBe(2);
    expect(
      h.decisions().find((d) => d.fields.memberId === 'php-3' && d.fields.action === 'MemberTerminateAction')?.fields
        .reason,
    ).toMatch(/held in a fault storm and verified: its workload does not answer/);
    await h.core.close();
  });

  it('a storm of answering members is bounded: released after stormMaxHoldMs with an event, and held faults survive a restart', async () => {
    const registry = new MemoryRegistry();
    const h = harness({ registry, clusters: [clusterConfig({ min: 4, max: 4 })], stormMaxHoldMs: 120_000 });
    await h.startActive();
    await h.report(61_000);
    for (const id of ['php-1', 'php-2', 'php-3']) await h.core.handle(events.fault(id));
    await flush();
    expect(h.actions().filter((a) => a === 'FaultStormHeld')).toHaveLength(1);
    await h.core.close();

    // A restart keeps the hold and the held faults (persisted), and keeps verifying them.
    const again = harness({
      registry,
      iaas: h.iaas,
      clusters: [clusterConfig({ min: 4, max: 4 })],
      stormMaxHoldMs: 120_000,
    });
    await again.core.start();
    await flush();
    const cluster = again.core.status().clusters[0];
    expect(cluster?.faultStormHeldSince).not.toBeNull();
    expect(cluster?.members.filter((m) => m.heldFault !== null).map((m) => m.memberId)).toEqual(['php-3']);
    await again.report(125_000, { except: ['php-3'] });
    expect(again.actions()).toContain('FaultStormReleased');
    const released = again.decisions().find((d) => d.fields.action === 'FaultStormReleased');
    expect(released?.fields.reason).toMatch(/the hold reached its bound of 120000 ms; 1 held faults dropped/);
    await again.core.close();
  });

  it('a member whose InstanceActivatedEvent was lost is activated by the autoscaler’s own probe, not killed by the pending timeout', async () => {
    // Found by the nemesis: the autoscaler consumed the event, died before the registry had the Active row
    // (PostgreSQL paused), and its next life resumed the member as Starting; no event ever comes again.
    const h = harness({ pendingTimeoutMs: 120_000 });
    await h.core.start();
    await flush();
    for (const id of h.iaas.running) await h.core.handle(events.started(id));
    await h.report(60_000);
    expect(h.stateOf('php-1')).toBe('Starting');
    await h.report(2_000, { stepMs: 1_000 });
    expect(h.stateOf('php-1')).toBe('Active');
    expect(h.logger.records.some((r) => r.event === 'autoscaler.member_active_by_probe')).toBe(true);
    // A pending member that does not answer is left to the pending timeout.
    await h.core.close();
  });

  it('a cluster with its own startup probe is activated by its agent alone: the autoscaler’s probe is not that check', async () => {
    const h = harness({
      pendingTimeoutMs: 120_000,
      clusters: [clusterConfig({ probes: { startup: { type: 'exec', command: ['/usr/bin/check-db'] } } })],
    });
    await h.core.start();
    await flush();
    for (const id of h.iaas.running) await h.core.handle(events.started(id));
    await h.report(62_000, { stepMs: 1_000 });
    // Its workload answers GET /healthz, but its own startup check has not passed: still Starting.
    expect(h.stateOf('php-1')).toBe('Starting');
    expect(h.logger.events()).not.toContain('autoscaler.member_active_by_probe');
    await h.core.close();
  });

  it('verifies at most MAX_PROBES_PER_TICK held members a tick, rotating through them', async () => {
    const h = harness({ clusters: [clusterConfig({ min: 250, max: 250 })] });
    await h.startActive();
    await h.report(61_000);
    await vi.advanceTimersByTimeAsync(70_000); // the detector goes silent
    await flush();
    for (const id of h.iaas.running) await h.core.handle(events.fault(id));
    const probesBefore = h.iaas.callsOf('probe').length;
    await vi.advanceTimersByTimeAsync(1_000);
    await flush();
    expect(h.iaas.callsOf('probe').length - probesBefore).toBe(MAX_PROBES_PER_TICK);
    await vi.advanceTimersByTimeAsync(1_000);
    await flush();
    // The second tick starts with the 50 not yet verified.
    const probed = new Set(
      h.iaas
        .callsOf('probe')
        .slice(probesBefore)
        .map((c) => c.memberId),
    );
    expect(probed.size).toBe(250);
    await h.core.close();
  });

  it('ports_not_open before activation is no fault: the pending timeout covers it', async () => {
    const h = harness();
    await h.core.start();
    await flush();
    await h.core.handle(events.fault('php-1', { reason: 'ports_not_open' }));
    await flush();
    expect(h.actions()).not.toContain('MemberTerminateAction php-1');
    expect(h.logger.records.find((r) => r.event === 'autoscaler.fault_ignored')?.fields.why).toMatch(
      /^ports_not_open before activation/,
    );
    await h.core.close();
  });

  it('a member faulted before it activated backs its replacement off, and the backoff survives a restart', async () => {
    const registry = new MemoryRegistry();
    const h = harness({ registry, clusters: [clusterConfig({ min: 1, max: 1 })] });
    await h.core.start();
    await flush();
    await h.core.handle(events.started('php-1'));
    await h.core.handle(events.fault('php-1'));
    await flush();
    expect(h.actions()).toEqual(['MemberSpawnAction php-1', 'MemberTerminateAction php-1', 'MemberRemoved php-1']);
    expect(h.core.status().clusters[0]?.backoff.failures).toBe(1);
    await h.core.close();
    // The autoscaler restarts at once: the backoff (10 s) still holds the spawn.
    const again = harness({ registry, iaas: h.iaas, clusters: [clusterConfig({ min: 1, max: 1 })] });
    await again.core.start();
    await flush();
    expect(again.iaas.callsOf('spawn')).toHaveLength(1);
    expect(again.core.status().clusters[0]?.backoff.failures).toBe(1);
    await vi.advanceTimersByTimeAsync(10_000);
    await flush();
    expect(again.iaas.callsOf('spawn')).toHaveLength(2);
    await again.core.close();
  });
});

describe('registry and infrastructure reconciled', () => {
  beforeEach(useFakeTime);
  afterEach(() => vi.useRealTimers());

  const instance = (memberId: string): MemberInstance => ({
    memberId,
    clusterId: 'php',
    clusterInstanceId: 'php-1',
    networkPartitionId: 'np-1',
    partitionId: 'p-1',
    cartridgeType: 'php',
    driver: 'fake',
    spawnedAt: Date.now(),
    address: { host: '127.0.0.1', port: 9 },
    handle: {},
  });

  it('terminates an instance no registry member owns once the orphan grace period is over', async () => {
    const h = harness({ orphanGraceMs: 30_000 });
    await h.startActive();
    h.iaas.plant(instance('php-orphan'));
    await h.report(15_000);
    expect(h.iaas.running).toContain('php-orphan');
    await h.report(16_000);
    expect(h.actions()).toContain('OrphanTerminated php-orphan');
    expect(h.iaas.running).not.toContain('php-orphan');
    expect(h.core.counters.orphansTerminated).toBe(1);
    await h.core.close();
  });

  it('a member whose instance is gone is removed and replaced without any message about it', async () => {
    const h = harness();
    await h.startActive();
    await h.report(61_000);
    const before = h.actions().length;
    h.iaas.kill('php-3');
    await vi.advanceTimersByTimeAsync(1_000);
    await flush();
    expect(actionsOf(h, before)).toEqual(['MemberRemoved php-3', 'MemberSpawnAction php-4']);
    expect(h.decisions()[before]?.fields.reason).toMatch(/not running on the infrastructure/);
    // Its causal chain starts at the reconciliation: no MemberFault stated a last stat.
    expect(h.registry.actions.find((a) => a.memberId === 'php-3' && a.action === 'MemberRemoved')?.fault).toEqual({
      kind: 'gone',
      lastStatAt: null,
      declaredAt: Date.now(),
    });
    await h.core.close();
  });

  it('a spawn recorded but not yet returned when the autoscaler died is adopted, not orphaned or removed', async () => {
    const registry = new MemoryRegistry();
    const h = harness({ registry, clusters: [clusterConfig({ min: 1, max: 1 })] });
    h.iaas.spawnDelayMs = 5_000;
    await h.core.start();
    await flush();
    // The Created row is written before the spawn starts: the intent.
    expect(registry.members.get('php-1')).toMatchObject({ state: 'Created', instance: null });
    expect(h.iaas.callsOf('spawn')).toHaveLength(1);
    // The autoscaler dies here: the spawn completes on the infrastructure, its row is never written again.
    registry.down = true;
    await vi.advanceTimersByTimeAsync(5_000);
    const rows = new MemoryRegistry([...registry.members.values()]);
    const again = harness({ registry: rows, iaas: h.iaas, clusters: [clusterConfig({ min: 1, max: 1 })] });
    await again.core.start();
    await flush();
    expect(again.memberIds()).toEqual(['php-1']);
    expect(again.iaas.callsOf('spawn')).toHaveLength(1);
    expect(rows.members.get('php-1')?.instance).toMatchObject({ memberId: 'php-1' });
    await again.core.close();
    await h.core.close();
  });
});
