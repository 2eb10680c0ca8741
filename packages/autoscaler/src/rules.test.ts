import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { clusterConfig, events, flush, harness, T0, useFakeTime } from './testing/index.js';

describe('pending timeout and backoff', () => {
  beforeEach(useFakeTime);
  afterEach(() => vi.useRealTimers());

  it('terminates a member not active within the pending timeout and replaces it after the backoff', async () => {
    const h = harness({ clusters: [clusterConfig({ min: 1, max: 2 })] });
    await h.core.start();
    await flush();
    expect(h.actions()).toEqual(['MemberSpawnAction php-1']);
    await vi.advanceTimersByTimeAsync(59_000);
    expect(h.stateOf('php-1')).toBe('Created');
    await vi.advanceTimersByTimeAsync(1_000); // the tick at T0 + 60 s
    await flush();
    expect(h.actions()).toEqual(['MemberSpawnAction php-1', 'MemberTerminateAction php-1', 'MemberRemoved php-1']);
    expect(h.decisions()[1]?.fields.reason).toBe(
      'not active within 60000 ms (pending timeout); instance still running',
    );
    // Backing off 10 s: the replacement comes at T0 + 70 s, not at the next tick.
    await vi.advanceTimersByTimeAsync(9_000);
    expect(h.iaas.callsOf('spawn')).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1_000);
    await flush();
    expect(h.iaas.callsOf('spawn').map((c) => c.at - T0)).toEqual([0, 70_000]);
    expect(h.core.counters.pendingTimeouts).toBe(1);
    expect(h.core.status().clusters[0]?.backoff).toEqual({ failures: 1, retryAt: T0 + 70_000 });
    await h.core.close();
  });

  it('a cluster whose spawns keep failing backs off 10 s, 20 s, 40 s …; only a quiet period resets it', async () => {
    const h = harness({ clusters: [clusterConfig({ min: 1, max: 2 })] });
    h.iaas.failSpawns = 4;
    await h.core.start();
    await vi.advanceTimersByTimeAsync(200_000);
    await flush();
    // Attempts at 0, then +10, +20, +40, +80 s after each failure.
    expect(h.iaas.callsOf('spawn').map((c) => (c.at - T0) / 1_000)).toEqual([0, 10, 30, 70, 150]);
    expect(h.core.counters.spawnFailed).toBe(4);
    expect(h.actions().filter((a) => a.startsWith('MemberRemoved'))).toHaveLength(4);
    const last = h.iaas.running[0] as string;
    await h.core.handle(events.activated(last));
    // An activation does not reset it (a member that dies at once would respawn in a loop): failures stay.
    expect(h.core.status().clusters[0]?.backoff.failures).toBe(4);
    await h.core.close();
  });

  it('caps the backoff at backoffMaxMs', async () => {
    const h = harness({
      clusters: [clusterConfig({ min: 1, max: 1 })],
      backoffInitialMs: 10_000,
      backoffMaxMs: 30_000,
    });
    h.iaas.failSpawns = 5;
    await h.core.start();
    await vi.advanceTimersByTimeAsync(200_000);
    await flush();
    expect(h.iaas.callsOf('spawn').map((c) => (c.at - T0) / 1_000)).toEqual([0, 10, 30, 60, 90, 120]);
    await h.core.close();
  });
});

describe('fault storm', () => {
  beforeEach(useFakeTime);
  afterEach(() => vi.useRealTimers());

  /** Four members that have served longer than one fault timeout (a fault then is no failed start); `t` is now. */
  const fourActive = async () => {
    const h = harness({ clusters: [clusterConfig({ min: 4, max: 6 })] });
    await h.startActive();
    await h.report(61_000);
    return Object.assign(h, { t: Date.now() });
  };

  it('holds terminations once more than half of the cluster faulted within the fault timeout', async () => {
    const h = await fourActive();
    const before = h.actions().length;
    await h.core.handle(events.fault('php-1'));
    await flush();
    await h.core.handle(events.activated('php-5'));
    await h.core.handle(events.fault('php-2'));
    await flush();
    await h.core.handle(events.activated('php-6'));
    await h.core.handle(events.fault('php-3', { epoch: 2 }));
    await h.core.handle(events.fault('php-4', { epoch: 2 }));
    await flush();
    expect(h.actions().slice(before)).toEqual([
      'MemberTerminateAction php-1',
      'MemberRemoved php-1',
      'MemberSpawnAction php-5',
      'MemberTerminateAction php-2', // 2 of 4: half, not more
      'MemberRemoved php-2',
      'MemberSpawnAction php-6',
      'FaultStormHeld', // php-3: 3 of 4
    ]);
    const held = h.published.filter((e) => e.type === 'FaultStormHeld');
    expect(held).toHaveLength(1);
    expect(held[0]?.data).toEqual({
      clusterId: 'php',
      faultedMemberIds: ['php-1', 'php-2', 'php-3'],
      clusterSize: 4,
      windowMs: 60_000,
    });
    expect(h.iaas.running).toEqual(['php-3', 'php-4', 'php-5', 'php-6']);
    expect(h.core.counters.faultsHeld).toBe(2);
    expect(h.core.status().clusters[0]?.faultStormHeldSince).toBe(h.t);
    expect(h.core.status().clusters[0]?.members.find((m) => m.memberId === 'php-4')?.heldFault).toBe(
      'MemberFault (timeout, silent 60000 ms) (held: fault storm)',
    );
    // While held: no pending timeout, no scaling; the held members answer their probes, so they stay.
    await h.report(120_000, { except: ['php-3', 'php-4'] });
    expect(h.actions().slice(before), h.actions().join(',')).toHaveLength(7);
    expect(h.core.counters.heldVerified).toBeGreaterThan(0);
    await h.core.close();
  });

  it('releases when the cluster stats resume; a member that reports is kept, a silent one is replaced after one window', async () => {
    const h = await fourActive();
    await h.core.handle(events.fault('php-1'));
    await flush();
    await h.core.handle(events.fault('php-2'));
    await flush();
    for (const id of ['php-3', 'php-4']) await h.core.handle(events.fault(id, { lastStatAt: h.t - 60_000 }));
    for (const id of ['php-5', 'php-6']) await h.core.handle(events.activated(id));
    await flush();
    expect(h.actions()).toContain('FaultStormHeld');
    // A summary computed before the hold (delivered late) does not release it.
    await h.core.handle(events.clusterStat('AverageLoadAverageEvent', 20, h.t - 1_000));
    expect(h.core.status().clusters[0]?.faultStormHeldSince).toBe(h.t);
    await vi.advanceTimersByTimeAsync(15_000);
    await h.core.handle(events.clusterStat('AverageLoadAverageEvent', 20, h.t + 15_000));
    await flush();
    expect(h.actions().at(-1)).toBe('FaultStormReleased');
    expect(h.core.status().clusters[0]?.faultStormHeldSince).toBeNull();
    // php-3 reports again: a member window starting after its last stat before the fault.
    await h.core.handle(
      events.memberStats('MemberAverageLoadAverageEvent', { 'php-3': 10 }, h.t - 45_000, h.t + 15_000),
    );
    await flush();
    expect(h.core.status().clusters[0]?.members.find((m) => m.memberId === 'php-3')?.heldFault).toBeNull();
    // php-4 stays silent: carried out once the re-check window (60 s) is over.
    await h.report(59_000, { except: ['php-4'] });
    expect(h.iaas.running).toContain('php-4');
    await h.report(1_000, { except: ['php-4'] });
    expect(h.actions().slice(-3), h.actions().join()).toEqual([
      'MemberTerminateAction php-4',
      'MemberRemoved php-4',
      'MemberSpawnAction php-7',
    ]);
    expect(h.decisions().at(-3)?.fields.reason).toBe(
      'MemberFault (timeout, silent 60000 ms), held in a fault storm and confirmed: no stats in 60000 ms after it; instance still running',
    );
    // Held, then carried out: its decision keeps the fault's times (its causal chain), and its replacement names it.
    const terminate = h.registry.actions.find((x) => x.memberId === 'php-4' && x.action === 'MemberTerminateAction');
    expect(terminate?.fault).toMatchObject({ kind: 'timeout', lastStatAt: expect.any(Number) });
    expect(h.registry.actions.find((x) => x.memberId === 'php-7')?.replaces).toBe('php-4');
    expect(h.iaas.running).toContain('php-3');
    await h.core.close();
  });

  it('an InstanceActivated of a held member clears its fault', async () => {
    const h = await fourActive();
    for (const id of ['php-1', 'php-2']) {
      await h.core.handle(events.fault(id));
      await flush();
    }
    await h.core.handle(events.fault('php-3'));
    await h.core.handle(events.activated('php-3'));
    expect(h.core.status().clusters[0]?.members.find((m) => m.memberId === 'php-3')?.heldFault).toBeNull();
    await h.core.close();
  });

  it('a cluster of two never storms: both faults are carried out', async () => {
    const h = harness({ clusters: [clusterConfig({ min: 2, max: 2 })] });
    await h.startActive();
    await h.core.handle(events.fault('php-1'));
    await h.core.handle(events.fault('php-2'));
    await flush();
    expect(h.actions().filter((a) => a.startsWith('MemberTerminateAction'))).toEqual([
      'MemberTerminateAction php-1',
      'MemberTerminateAction php-2',
    ]);
    expect(h.actions()).not.toContain('FaultStormHeld');
    await h.core.close();
  });
});

describe('scaling rule', () => {
  beforeEach(useFakeTime);
  afterEach(() => vi.useRealTimers());

  const minute = (n: number) => T0 + n * 60_000;

  it('scales up on a predicted metric over 0.8 × threshold, one member at a time, never over max', async () => {
    const h = harness({ clusters: [clusterConfig({ min: 3, max: 4 })] });
    await h.startActive();
    // requests in flight: 30 + 0.2·60 + ½·0.001·60² = 30 + 12 + 1.8 = 43.8 > 0.8 × 50 = 40
    await h.core.handle(events.clusterStat('AverageRequestsInFlightEvent', 30, minute(1), 3));
    await h.core.handle(events.clusterStat('GradientOfRequestsInFlightEvent', 0.2, minute(1), 3));
    await h.core.handle(events.clusterStat('SecondDerivativeOfRequestsInFlightEvent', 0.001, minute(1), 3));
    await vi.advanceTimersByTimeAsync(1_000);
    await flush();
    expect(h.actions().at(-1)).toBe('ScaleUpAction php-4');
    expect(h.decisions().at(-1)?.fields).toEqual({
      event: 'autoscaler.action',
      action: 'ScaleUpAction',
      memberId: 'php-4',
      clusterId: 'php',
      reason: 'predicted requestsInFlight 43.8 > 40 (0.8 × threshold); 3 → 4 members',
      epoch: 3,
    });
    expect(h.messages()).toContain('autoscaler/ScaleUpAction php-4');
    // Still high, but at max: no fifth member.
    await h.core.handle(events.activated('php-4'));
    await h.core.handle(events.clusterStat('AverageRequestsInFlightEvent', 45, minute(2), 3));
    await vi.advanceTimersByTimeAsync(1_000);
    await flush();
    expect(h.actions().filter((a) => a.startsWith('ScaleUpAction'))).toHaveLength(1);
    await h.core.close();
  });

  it('waits for a pending member before scaling up again', async () => {
    const h = harness({ clusters: [clusterConfig({ min: 1, max: 5 })] });
    await h.startActive();
    await h.core.handle(events.clusterStat('AverageLoadAverageEvent', 80, minute(1)));
    await vi.advanceTimersByTimeAsync(1_000);
    await h.core.handle(events.clusterStat('AverageLoadAverageEvent', 85, minute(2)));
    await vi.advanceTimersByTimeAsync(1_000);
    await flush();
    expect(h.actions().filter((a) => a.startsWith('ScaleUpAction'))).toEqual(['ScaleUpAction php-2']);
    await h.core.handle(events.activated('php-2'));
    await h.core.handle(events.clusterStat('AverageLoadAverageEvent', 85, minute(3)));
    await vi.advanceTimersByTimeAsync(1_000);
    await flush();
    expect(h.actions().filter((a) => a.startsWith('ScaleUpAction'))).toEqual([
      'ScaleUpAction php-2',
      'ScaleUpAction php-3',
    ]);
    await h.core.close();
  });

  const low = async (h: ReturnType<typeof harness>, n: number) => {
    await h.core.handle(events.clusterStat('AverageLoadAverageEvent', 5, minute(n)));
    await h.core.handle(events.clusterStat('AverageMemoryConsumptionEvent', 8, minute(n)));
    await h.core.handle(events.clusterStat('AverageRequestsInFlightEvent', 1, minute(n)));
    await vi.advanceTimersByTimeAsync(1_000);
    await flush();
  };

  it('scales down after 3 consecutive low decisions, terminating the least loaded member', async () => {
    const h = harness({ clusters: [clusterConfig({ min: 2, max: 5 })] });
    await h.startActive();
    await h.core.handle(events.clusterStat('AverageLoadAverageEvent', 80, minute(0)));
    await vi.advanceTimersByTimeAsync(1_000);
    await h.core.handle(events.activated('php-3'));
    // Member loads: php-1 load 20 + memory 45 → 0.22 + 0.5; php-2 load 2 + memory 9 → 0.02 + 0.1 (least); php-3 none.
    const loads = { 'php-1': 20, 'php-2': 2 };
    const memory = { 'php-1': 45, 'php-2': 9 };
    await h.core.handle(events.memberStats('MemberAverageLoadAverageEvent', loads, minute(0), minute(1)));
    await h.core.handle(events.memberStats('MemberAverageMemoryConsumptionEvent', memory, minute(0), minute(1)));
    await low(h, 1);
    await low(h, 2);
    expect(h.actions().filter((a) => a.startsWith('ScaleDown'))).toEqual([]);
    // A tick without new summaries is not a decision.
    await vi.advanceTimersByTimeAsync(5_000);
    expect(h.core.status().clusters[0]?.scaling.consecutiveBelow).toBe(2);
    await low(h, 3);
    // The victim serves: it drains first (drain.test.ts), removed after the drain delay once idle.
    await vi.advanceTimersByTimeAsync(2_000);
    await flush();
    expect(h.actions().slice(-2)).toEqual(['ScaleDownAction php-2', 'MemberRemoved php-2']);
    expect(h.decisions().at(-2)?.fields.reason).toBe(
      'every predicted metric below 0.1 × threshold in 3 consecutive decisions (loadAverage 5 < 9, memoryConsumption 8 < 9, requestsInFlight 1 < 5); least loaded member; 3 → 2 members',
    );
    // At min now: three more low decisions change nothing.
    for (const n of [4, 5, 6]) await low(h, n);
    expect(h.actions().filter((a) => a.startsWith('ScaleDown'))).toHaveLength(1);
    expect(h.memberIds()).toEqual(['php-1', 'php-3']);
    await h.core.close();
  });

  it('without member figures, scale down picks the newest member', async () => {
    const h = harness({ clusters: [clusterConfig({ min: 1, max: 5 })] });
    await h.startActive();
    await h.core.handle(events.clusterStat('AverageLoadAverageEvent', 80, minute(0)));
    await vi.advanceTimersByTimeAsync(1_000);
    await h.core.handle(events.activated('php-2'));
    for (const n of [1, 2, 3]) await low(h, n);
    expect(h.actions().filter((a) => a.startsWith('ScaleDown'))).toEqual(['ScaleDownAction php-2']);
    await h.core.close();
  });
});
