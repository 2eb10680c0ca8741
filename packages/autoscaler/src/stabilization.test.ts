import { type Clock, systemClock } from '@faultline/core';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { parseMonitorState } from './monitor-state.js';
import { membersFor, recommendedMembers, ScaleStabilizer } from './scaling-rule.js';
import { clusterConfig, events, flush, harness, MemoryRegistry, useFakeTime } from './testing/index.js';

/*
 * Scale stabilization (README "Autoscaler", rule 5): the scale-down window,
 * the cooldown after each scale action, steps of several members, and what
 * of it survives a restart. Thresholds of the test cluster: requests in
 * flight 50, memory 90, load 90 (lines at 0.8 ×: 40 / 72 / 72; at 0.1 ×: 5 / 9 / 9).
 */

const thresholds = { requestsInFlight: 50, memoryConsumption: 90, loadAverage: 90 };
const iso = (ms: number) => new Date(ms).toISOString();

describe('what a decision recommends', () => {
  it('enough members to bring the predicted load to 0.8 × threshold, at least one more', () => {
    // 3 members at 43.8 requests in flight: 131.4 in all, 40 a member → 4.
    expect(recommendedMembers({ requestsInFlight: 43.8 }, thresholds, 3, { min: 1, max: 10 })).toBe(4);
    // 1 member at load 280: 280 ÷ 72 → 4.
    expect(recommendedMembers({ loadAverage: 280, memoryConsumption: 10 }, thresholds, 1, { min: 1, max: 10 })).toBe(4);
    // Just over the line: one more, never the same count.
    expect(recommendedMembers({ loadAverage: 72.01 }, thresholds, 2, { min: 1, max: 10 })).toBe(3);
    // Never above max.
    expect(recommendedMembers({ loadAverage: 280 }, thresholds, 1, { min: 1, max: 3 })).toBe(3);
    // Exactly on a whole count: 3 × 40 ÷ 40 is 3, not 4 (floating point).
    expect(membersFor({ requestsInFlight: 40 }, thresholds, 3, 0.8)).toBe(3);
  });

  it('under 0.1 × threshold everywhere: the fewest members that keep it so, at least one fewer, never below min', () => {
    // 6 members, load 2 / memory 3 / requests 0.5: 12 ÷ 9 → 2, 18 ÷ 9 → 2, 3 ÷ 5 → 1.
    const low = { loadAverage: 2, memoryConsumption: 3, requestsInFlight: 0.5 };
    expect(recommendedMembers(low, thresholds, 6, { min: 1, max: 10 })).toBe(2);
    // 3 members just under the line: the load needs all 3, Stratos still removes one.
    expect(recommendedMembers({ loadAverage: 8.9 }, thresholds, 3, { min: 1, max: 10 })).toBe(2);
    expect(recommendedMembers(low, thresholds, 6, { min: 4, max: 10 })).toBe(4);
    // Between the lines: the members there are.
    expect(recommendedMembers({ loadAverage: 50 }, thresholds, 3, { min: 1, max: 10 })).toBe(3);
  });
});

describe('ScaleStabilizer', () => {
  it('the window holds the highest recommendation until it leaves the window', () => {
    const s = new ScaleStabilizer({ scaleDownWindowMs: 100, cooldownMs: 0 });
    s.recommend(5, 0, 1_000);
    s.recommend(3, 10, 1_010);
    s.recommend(4, 20, 1_020);
    expect(s.floor(99)).toBe(5);
    // 5 leaves at 100; 3 can never be the highest again (4 came after it).
    expect(s.floor(100)).toBe(4);
    expect(s.state().recommendations).toEqual([{ at: 1_020, members: 4 }]);
    expect(s.floor(120)).toBeUndefined();
  });

  it('off: records nothing, holds nothing', () => {
    const s = new ScaleStabilizer({ scaleDownWindowMs: 0, cooldownMs: 0 });
    expect(s.recommend(5, 0, 1_000)).toBe(false);
    expect(s.floor(0)).toBeUndefined();
    s.acted('ScaleUpAction', 5, 0, 1_000);
    expect(s.coolingDownUntil(0)).toBeUndefined();
    expect(s.state()).toEqual({
      lastScale: { action: 'ScaleUpAction', at: 1_000, members: 5 },
      cooldownUntil: null,
      recommendations: [],
    });
  });

  it('restores wall times as monotonic marks of the same age; a time ahead of this clock holds no longer than from now', () => {
    const s = new ScaleStabilizer({ scaleDownWindowMs: 1_000, cooldownMs: 500 });
    s.restore(
      {
        lastScale: { action: 'ScaleDownAction', at: 10_000, members: 2 },
        cooldownUntil: 10_500,
        recommendations: [
          { at: 9_800, members: 4 },
          { at: 8_000, members: 9 }, // out of order, and older than the window: dropped
          { at: 10_100, members: 3 },
        ],
      },
      5_000_000, // another process: another monotonic origin
      10_200,
    );
    expect(s.coolingDownUntil(5_000_000)).toBe(5_000_300);
    expect(s.floor(5_000_000)).toBe(4);
    expect(s.status(5_000_000, 10_200)).toEqual({
      cooldownUntil: 10_500,
      lastScale: { action: 'ScaleDownAction', at: 10_000, members: 2 },
      scaleDownFloor: { members: 4, until: 10_800 },
    });
    // The peer's clock was ahead: its action "in the future" is taken as just now.
    const ahead = new ScaleStabilizer({ scaleDownWindowMs: 1_000, cooldownMs: 500 });
    ahead.restore(
      { lastScale: { action: 'ScaleUpAction', at: 99_000, members: 3 }, cooldownUntil: null, recommendations: [] },
      0,
      10_000,
    );
    expect(ahead.coolingDownUntil(0)).toBe(500);
  });
});

describe('stored stabilization state', () => {
  const base = {
    backoff: { failures: 0, notBefore: null, lastFailureAt: null },
    faults: { stormHeldSince: null, held: [] },
  };

  it('a state stored before stabilization existed still loads, without it', () => {
    const state = parseMonitorState(base);
    expect(typeof state).not.toBe('string');
    expect(state).not.toHaveProperty('scaling');
  });

  it('loads a stored one; a part that does not parse is dropped, not the whole state', () => {
    const scaling = {
      lastScale: { action: 'ScaleUpAction', at: 1_000, members: 4 },
      cooldownUntil: 61_000,
      recommendations: [{ at: 1_000, members: 4 }],
    };
    expect(parseMonitorState({ ...base, scaling })).toMatchObject({ scaling });
    const bad = {
      lastScale: { action: 'Bogus', at: 1_000, members: 4 },
      recommendations: [{ at: 'x', members: 2 }, 7],
    };
    expect(parseMonitorState({ ...base, scaling: bad })).toMatchObject({
      backoff: base.backoff,
      scaling: { lastScale: null, cooldownUntil: null, recommendations: [] },
    });
    // A time no Date can hold (a row edited by hand): dropped, or every cooled-down decision would throw.
    const far = { lastScale: { action: 'ScaleUpAction', at: 1e300, members: 4 }, cooldownUntil: 1e300 };
    expect(parseMonitorState({ ...base, scaling: far })).toMatchObject({
      scaling: { lastScale: null, cooldownUntil: null },
    });
  });
});

describe('scale stabilization in the cluster monitor', () => {
  beforeEach(useFakeTime);
  afterEach(() => vi.useRealTimers());

  type H = ReturnType<typeof harness>;
  const members = (h: H) => h.core.status().clusters[0]?.members ?? [];
  const scaling = (h: H) => h.core.status().clusters[0]?.scaling;
  const scaleActions = (h: H) => h.actions().filter((a) => a.startsWith('Scale'));
  const atOf = (h: H, action: string) => h.registry.actions.filter((a) => a.action === action).map((a) => a.at);

  /**
   * One decision round of the SP's summary tick (15 s): the cluster averages
   * at `send`, the decision at the next monitor tick (1 s later), the members
   * it spawned activated, a member summary listing every member. Returns the
   * decision's time.
   */
  const round = async (h: H, figures: { load: number; memory?: number; rif?: number }): Promise<number> => {
    const send = Date.now();
    await h.core.handle(events.clusterStat('AverageLoadAverageEvent', figures.load, send));
    if (figures.memory !== undefined)
      await h.core.handle(events.clusterStat('AverageMemoryConsumptionEvent', figures.memory, send));
    if (figures.rif !== undefined)
      await h.core.handle(events.clusterStat('AverageRequestsInFlightEvent', figures.rif, send));
    await vi.advanceTimersByTimeAsync(1_000);
    await flush();
    for (const m of members(h))
      if (m.state === 'Created' || m.state === 'Starting') await h.core.handle(events.activated(m.memberId));
    await flush();
    await h.report(14_000);
    return send + 1_000;
  };
  /** Every metric far under 0.1 × threshold: recommends min. */
  const TINY = { load: 1, memory: 1, rif: 0.5 };
  /** A cluster's load that spreads over its Active members: the average the SP would report. */
  const spread = (h: H, total: number) => ({
    load: total / members(h).filter((m) => m.state === 'Active').length,
    memory: 5,
    rif: 1,
  });

  /** High, then three lows, every minute: 150 / 10 load-% in all (Stratos' rule alone flaps at 2–3 members). */
  const flap = async (h: H, cycles: number): Promise<number> => {
    let lastHigh = 0;
    for (let c = 0; c < cycles; c++) {
      lastHigh = await round(h, spread(h, 150));
      for (let i = 0; i < 3; i++) await round(h, spread(h, 10));
    }
    return lastHigh;
  };

  it('today’s rule alone (stabilization off, the default) flaps with the load noise', async () => {
    const h = harness({ clusters: [clusterConfig({ min: 2, max: 5 })] });
    await h.startActive();
    await flap(h, 6);
    expect(scaleActions(h).filter((a) => a.startsWith('ScaleUpAction')).length).toBeGreaterThanOrEqual(5);
    expect(scaleActions(h).filter((a) => a.startsWith('ScaleDownAction')).length).toBeGreaterThanOrEqual(5);
    await h.core.close();
  });

  it('flapping load does not flap the cluster; once it stays low for a window, one scale down', async () => {
    const scalingConfig = { scaleDownWindowMs: 300_000, cooldownMs: 60_000 };
    const h = harness({ clusters: [clusterConfig({ min: 2, max: 5, scaling: scalingConfig })] });
    await h.startActive();
    const lastHigh = await flap(h, 10);
    // One step up (75 > 72 at 2 members); at 3 the highs (50) recommend 3 within every window.
    expect(scaleActions(h)).toEqual(['ScaleUpAction php-3']);
    // The load stays low: held until the last recommendation of 3 leaves the window.
    let t = 0;
    while (scaleActions(h).length === 1 && t < lastHigh + 400_000) {
      t = await round(h, spread(h, 10));
      if (t < lastHigh + 300_000) {
        expect(scaling(h)?.held).toBe(
          `scale-down window: 3 members recommended within the last 300000 ms (the highest leaves it at ${iso(lastHigh + 300_000)})`,
        );
        expect(scaling(h)?.scaleDownFloor).toEqual({ members: 3, until: lastHigh + 300_000 });
      }
    }
    expect(scaleActions(h)).toEqual(['ScaleUpAction php-3', 'ScaleDownAction php-3']);
    expect(atOf(h, 'ScaleDownAction')).toEqual([lastHigh + 300_000]);
    // Each hold logged once, not at every cycle of the noise: the cooldown after the scale up, then the window.
    const held = h.logger.records.filter((r) => r.event === 'autoscaler.scale_held');
    expect(held.map((r) => `${r.fields.action} ${String(r.fields.why).split(' ')[0]}`)).toEqual([
      'ScaleDownAction cooldown',
      'ScaleDownAction scale-down',
    ]);
    await h.core.close();
  });

  it('the window holds a scale down until its highest recommendation allows it, then steps to it', async () => {
    const config = { min: 1, max: 5, scaling: { scaleDownWindowMs: 120_000, maxStep: 5 } };
    const h = harness({ clusters: [clusterConfig(config)] });
    await h.startActive();
    await round(h, { load: 280 }); // 1 → 4 members
    const steady = await round(h, { load: 40 }); // recommends 4
    await round(h, { load: 6, memory: 1, rif: 0.5 }); // low: recommends 3 (24 ÷ 9)
    await round(h, { load: 6, memory: 1, rif: 0.5 });
    await round(h, TINY); // the third low in a row: Stratos' rule asks for a scale down, the window holds 4
    expect(scaling(h)).toMatchObject({
      consecutiveBelow: 3,
      recommended: 1,
      scaleDownFloor: { members: 4, until: steady + 120_000 },
      held: `scale-down window: 4 members recommended within the last 120000 ms (the highest leaves it at ${iso(steady + 120_000)})`,
    });
    while (Date.now() < steady + 120_000) await round(h, TINY);
    // At steady + 120 s the 4 left the window: down to the 3 still in it, not to the 1 recommended now.
    expect(atOf(h, 'ScaleDownAction')).toEqual([steady + 120_000]);
    expect(h.decisions().at(-2)?.fields.reason).toMatch(
      /; least loaded member; 4 → 3 members \(1 recommended, the scale-down window holds 3\)$/,
    );
    // Three more lows (Stratos' rule starts its count again), the 3s have left: 3 → 1 in one step.
    for (let i = 0; i < 3; i++) await round(h, TINY);
    expect(scaleActions(h).filter((a) => a.startsWith('ScaleDown'))).toHaveLength(3);
    const reasons = h
      .decisions()
      .filter((d) => d.fields.action === 'ScaleDownAction')
      .map((d) => String(d.fields.reason).replace(/^.*least loaded member; /, ''));
    expect(reasons).toEqual([
      '4 → 3 members (1 recommended, the scale-down window holds 3)',
      '3 → 1 members (1 of 2)',
      '3 → 1 members (2 of 2)',
    ]);
    expect(members(h).filter((m) => m.state !== 'Terminating')).toHaveLength(1);
    await h.core.close();
  });

  it('the cooldown holds a second scale action, never a fault’s replacement or the minimum rule', async () => {
    const h = harness({ clusters: [clusterConfig({ min: 4, max: 8, scaling: { cooldownMs: 300_000 } })] });
    await h.startActive();
    await h.report(61_000); // the members have served longer than one fault timeout
    const up = await round(h, { load: 80 }); // 4 × 80 ÷ 72 → 5
    expect(scaleActions(h)).toEqual(['ScaleUpAction php-5']);
    await round(h, { load: 80 });
    expect(scaleActions(h)).toEqual(['ScaleUpAction php-5']);
    expect(scaling(h)).toMatchObject({
      cooldownUntil: up + 300_000,
      lastScale: { action: 'ScaleUpAction', at: up, members: 5 },
      held: `cooldown until ${iso(up + 300_000)} after the ScaleUpAction at ${iso(up)}`,
    });
    // Two members fault: carried out at once, and the minimum rule refills at once, cooldown or not.
    const before = h.actions().length;
    await h.core.handle(events.fault('php-1'));
    await flush();
    await h.core.handle(events.fault('php-2'));
    await flush();
    expect(Date.now()).toBeLessThan(up + 300_000);
    expect(h.actions().slice(before)).toEqual([
      'MemberTerminateAction php-1',
      'MemberRemoved php-1',
      'MemberTerminateAction php-2',
      'MemberRemoved php-2',
      'MemberSpawnAction php-6',
    ]);
    expect(h.decisions().at(-1)?.fields.reason).toBe('minimum rule: 3 < min 4');
    // Still high when the cooldown is over: the next step.
    while (Date.now() < up + 300_000) await round(h, { load: 60 });
    expect(scaleActions(h)).toEqual(['ScaleUpAction php-5']);
    await round(h, { load: 80 });
    expect(scaleActions(h)).toEqual(['ScaleUpAction php-5', 'ScaleUpAction php-7']);
    expect(scaling(h)?.held).toBeNull();
    await h.core.close();
  });

  it('members lost to faults above min are refilled by the scaling rule at once, cooldown or not', async () => {
    const h = harness({ clusters: [clusterConfig({ min: 2, max: 8, scaling: { cooldownMs: 300_000 } })] });
    await h.startActive();
    await h.report(61_000);
    await round(h, { load: 80 }); // 2 × 80 ÷ 72 → 3
    expect(scaleActions(h)).toEqual(['ScaleUpAction php-3']);
    await h.core.handle(events.fault('php-1'));
    await flush();
    // 2 live = min: no minimum-rule spawn; the load still asks for 3, within the cooldown.
    await round(h, { load: 80 });
    expect(scaleActions(h)).toEqual(['ScaleUpAction php-3', 'ScaleUpAction php-4']);
    await h.core.close();
  });

  it('a step of k members: as many as the prediction needs, each its own ScaleUpAction', async () => {
    const h = harness({ clusters: [clusterConfig({ min: 1, max: 10, scaling: { maxStep: 5 } })] });
    await h.startActive();
    await round(h, { load: 280 });
    expect(scaleActions(h)).toEqual(['ScaleUpAction php-2', 'ScaleUpAction php-3', 'ScaleUpAction php-4']);
    expect(
      h
        .decisions()
        .map((d) => d.fields.reason)
        .slice(-3),
    ).toEqual([
      'predicted loadAverage 280 > 72 (0.8 × threshold); 1 → 4 members (1 of 3)',
      'predicted loadAverage 280 > 72 (0.8 × threshold); 1 → 4 members (2 of 3)',
      'predicted loadAverage 280 > 72 (0.8 × threshold); 1 → 4 members (3 of 3)',
    ]);
    expect(h.messages().filter((m) => m.startsWith('autoscaler/ScaleUpAction'))).toHaveLength(3);
    expect(scaling(h)).toMatchObject({ recommended: 4, lastScale: { action: 'ScaleUpAction', members: 4 } });
    await h.core.close();
  });

  it('a step is bounded by maxStep and by max', async () => {
    const byStep = harness({ clusters: [clusterConfig({ min: 1, max: 10, scaling: { maxStep: 2 } })] });
    await byStep.startActive();
    await round(byStep, { load: 280 });
    expect(
      byStep
        .decisions()
        .map((d) => d.fields.reason)
        .slice(-2),
    ).toEqual([
      'predicted loadAverage 280 > 72 (0.8 × threshold); 1 → 3 members (4 recommended, step bounded by maxStep 2; 1 of 2)',
      'predicted loadAverage 280 > 72 (0.8 × threshold); 1 → 3 members (4 recommended, step bounded by maxStep 2; 2 of 2)',
    ]);
    await byStep.core.close();

    const byMax = harness({ clusters: [clusterConfig({ min: 1, max: 3, scaling: { maxStep: 5 } })] });
    await byMax.startActive();
    await round(byMax, { load: 280 });
    expect(scaleActions(byMax)).toEqual(['ScaleUpAction php-2', 'ScaleUpAction php-3']);
    expect(scaling(byMax)?.recommended).toBe(3);
    await round(byMax, { load: 280 });
    expect(scaleActions(byMax)).toHaveLength(2);
    await byMax.core.close();
  });

  it('a scale down of several members is bounded by maxStep and by min', async () => {
    const registry = new MemoryRegistry();
    const six = harness({ registry, clusters: [clusterConfig({ min: 6, max: 6 })] });
    await six.startActive();
    await six.core.close();
    const config = { min: 2, max: 6, scaling: { maxStep: 3 } };
    const h = harness({ registry, iaas: six.iaas, clusters: [clusterConfig(config)] });
    await h.core.start();
    await flush();
    expect(members(h).filter((m) => m.state === 'Active')).toHaveLength(6);
    for (let i = 0; i < 3; i++) await round(h, TINY);
    const downs = () =>
      h
        .decisions()
        .filter((d) => d.fields.action === 'ScaleDownAction')
        .map((d) => String(d.fields.reason).replace(/^.*least loaded member; /, ''));
    expect(downs()).toEqual([
      '6 → 3 members (2 recommended, step bounded by maxStep 3; 1 of 3)',
      '6 → 3 members (2 recommended, step bounded by maxStep 3; 2 of 3)',
      '6 → 3 members (2 recommended, step bounded by maxStep 3; 3 of 3)',
    ]);
    for (let i = 0; i < 6; i++) await round(h, TINY);
    expect(downs().slice(3)).toEqual(['3 → 2 members']);
    expect(members(h)).toHaveLength(2);
    await h.core.close();
  });

  it('the cooldown and the window survive a restart (another process, another monotonic origin)', async () => {
    const registry = new MemoryRegistry();
    const config = { min: 1, max: 5, scaling: { cooldownMs: 60_000, scaleDownWindowMs: 300_000 } };
    const first = harness({ registry, clusters: [clusterConfig(config)] });
    await first.startActive();
    const up = await round(first, { load: 80 }); // 80 > 72 at 1 member → 2
    expect(scaleActions(first)).toEqual(['ScaleUpAction php-2']);
    await first.core.close();
    expect(registry.clusters.get('php')).toMatchObject({
      scaling: {
        lastScale: { action: 'ScaleUpAction', at: up, members: 2 },
        cooldownUntil: up + 60_000,
        recommendations: [{ at: up, members: 2 }],
      },
    });

    const clock: Clock = { ...systemClock, monotonicNow: () => systemClock.monotonicNow() + 7e9 };
    const again = harness({ registry, iaas: first.iaas, clock, clusters: [clusterConfig(config)] });
    await again.core.start();
    await flush();
    expect(scaling(again)).toMatchObject({
      cooldownUntil: up + 60_000,
      lastScale: { action: 'ScaleUpAction', at: up, members: 2 },
      scaleDownFloor: { members: 2, until: up + 300_000 },
    });
    // Three lows: Stratos' rule asks for a scale down 45 s after the scale up: the cooldown holds it…
    for (let i = 0; i < 3; i++) await round(again, TINY);
    expect(scaling(again)?.held).toBe(`cooldown until ${iso(up + 60_000)} after the ScaleUpAction at ${iso(up)}`);
    // …then the window, until the recommendation of 2 made before the restart leaves it.
    await round(again, TINY);
    expect(scaling(again)?.held).toMatch(/^scale-down window: 2 members/);
    while (Date.now() < up + 300_000) await round(again, TINY);
    expect(scaleActions(again)).toHaveLength(1);
    expect(atOf(again, 'ScaleDownAction')).toEqual([up + 300_000]);
    await again.core.close();
  });
});
