import { type Clock, systemClock } from '@faultline/core';
import type { MemberIdentity } from '@faultline/protocol';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DeadlineHeap } from './deadline-heap.js';
import { FaultDetector, type FaultInfo } from './fault-detector.js';

const member = (memberId: string): MemberIdentity => ({
  clusterId: 'php',
  clusterInstanceId: 'php-1',
  networkPartitionId: 'np-1',
  partitionId: 'p-1',
  memberId,
});

function detector(faultTimeoutMs = 60_000, clock: Clock = systemClock) {
  const faults: { memberId: string; at: number; info: FaultInfo }[] = [];
  const d = new FaultDetector({
    faultTimeoutMs,
    clock,
    onFault: (m, info) => faults.push({ memberId: m.memberId, at: Date.now(), info }),
  });
  return { d, faults };
}

describe('FaultDetector', () => {
  beforeEach(() => vi.useFakeTimers({ now: 0 }));
  afterEach(() => vi.useRealTimers());

  it('a stall of its own process is not the members’ silence: every member gets the stalled time back', async () => {
    // Found by the nemesis: an active SIGSTOPped for 7 s faulted every member the moment it woke
    // (silentForMs ≈ 7 700), before the stats that waited in its socket were applied.
    let stalled = 0;
    const clock: Clock = { ...systemClock, monotonicNow: () => performance.now() + stalled };
    const { d, faults } = detector(4_000, clock);
    d.touch(member('m-1'), 0);
    await vi.advanceTimersByTimeAsync(2_000);
    d.touch(member('m-1'), 2_000); // due at 6 000, its key left at 4 000 (the wake's floor is later than either)
    await vi.advanceTimersByTimeAsync(1_999);
    stalled = 7_000; // the process did not run for 7 s: its clock jumped, its fault timer is due at the wake
    await vi.advanceTimersByTimeAsync(1);
    expect(faults).toEqual([]);
    await vi.advanceTimersByTimeAsync(500);
    d.touch(member('m-1'), 9_500); // a stat that waited in the socket, or an agent back from its backoff
    await vi.advanceTimersByTimeAsync(3_900);
    expect(faults).toEqual([]);
    // A member that stays silent is faulted one fault timeout after its last stat, as ever.
    await vi.advanceTimersByTimeAsync(100);
    expect(faults.map((f) => f.memberId)).toEqual(['m-1']);
    d.close();
  });

  it('faults at exactly the timeout after the last stat, not 1 ms before', async () => {
    const { d, faults } = detector();
    expect(d.touch(member('m-1'), 1_000)).toBe('new');
    await vi.advanceTimersByTimeAsync(59_999);
    expect(faults).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(faults).toEqual([
      {
        memberId: 'm-1',
        at: 60_000,
        info: { reason: 'timeout', lastStatAt: 1_000, silentForMs: 60_000, declaredAt: 60_000, lateByMs: 0 },
      },
    ]);
    expect(d.member('m-1')?.state).toBe('faulted');
    expect(d.faulted).toBe(1);
  });

  it('never faults while stats flow, and measures the timeout from the last one', async () => {
    const { d, faults } = detector();
    for (let t = 0; t <= 300_000; t += 15_000) {
      d.touch(member('m-1'), t);
      await vi.advanceTimersByTimeAsync(15_000);
    }
    expect(faults).toHaveLength(0);
    // Last stat at 300 000 (applied then); now 315 000: the fault is due at 360 000.
    await vi.advanceTimersByTimeAsync(44_999);
    expect(faults).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(faults.map((f) => f.at)).toEqual([360_000]);
  });

  it('faults once per silence, however long it lasts', async () => {
    const { d, faults } = detector();
    d.touch(member('m-1'), 0);
    await vi.advanceTimersByTimeAsync(10 * 60_000);
    expect(faults).toHaveLength(1);
  });

  it('a member that reports again after its fault is a new life whose silence faults again', async () => {
    const { d, faults } = detector();
    d.touch(member('m-1'), 0);
    await vi.advanceTimersByTimeAsync(70_000);
    expect(d.touch(member('m-1'), 70_000)).toBe('revived');
    expect(d.faulted).toBe(0);
    await vi.advanceTimersByTimeAsync(59_999);
    expect(faults).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(faults.map((f) => [f.at, f.info.lastStatAt])).toEqual([
      [60_000, 0],
      [130_000, 70_000],
    ]);
  });

  it('a late stat (not newer than the last seen) does not revive a faulted member', async () => {
    const { d, faults } = detector();
    d.touch(member('m-1'), 5_000);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(d.touch(member('m-1'), 4_000)).toBe('late');
    expect(d.touch(member('m-1'), 5_000)).toBe('late');
    expect(d.member('m-1')?.state).toBe('faulted');
    await vi.advanceTimersByTimeAsync(120_000);
    expect(faults).toHaveLength(1);
  });

  it('faultNow declares at once, once per life', async () => {
    const { d, faults } = detector();
    expect(d.faultNow(member('m-1'), 'ports_not_open', 2_000)).toBe(true);
    expect(d.faultNow(member('m-1'), 'ports_not_open', 3_000)).toBe(false);
    expect(faults).toEqual([
      { memberId: 'm-1', at: 0, info: { reason: 'ports_not_open', lastStatAt: 2_000, silentForMs: 0, declaredAt: 0 } },
    ]);
    // No timeout fault follows a ports_not_open fault of the same life.
    await vi.advanceTimersByTimeAsync(120_000);
    expect(faults).toHaveLength(1);
    d.touch(member('m-1'), 200_000);
    expect(d.faultNow(member('m-1'), 'ports_not_open', 200_000)).toBe(true);
    expect(faults).toHaveLength(2);
  });

  it('forget stops detection of that member only', async () => {
    const { d, faults } = detector();
    d.touch(member('m-1'), 0);
    d.touch(member('m-2'), 0);
    expect(d.forget('m-1')).toBe(true);
    expect(d.forget('m-1')).toBe(false);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(faults.map((f) => f.memberId)).toEqual(['m-2']);
    expect(d.size).toBe(1);
  });

  it('grace moves every alive deadline to at least now + grace, never earlier', async () => {
    const { d, faults } = detector();
    d.touch(member('early'), 0);
    await vi.advanceTimersByTimeAsync(50_000);
    d.touch(member('late'), 50_000);
    d.grace(30_000); // early: 60 000 → 80 000; late: 110 000 stays
    await vi.advanceTimersByTimeAsync(29_999);
    expect(faults).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(faults.map((f) => [f.memberId, f.at, f.info.silentForMs])).toEqual([['early', 80_000, 80_000]]);
    await vi.advanceTimersByTimeAsync(30_000);
    expect(faults.map((f) => [f.memberId, f.at])).toEqual([
      ['early', 80_000],
      ['late', 110_000],
    ]);
  });

  it('reopen takes a fault back: alive again, due at once unless graced; a reporting member lives on', async () => {
    const { d, faults } = detector();
    d.touch(member('silent'), 0);
    d.touch(member('alive'), 0);
    await vi.advanceTimersByTimeAsync(30_000);
    d.touch(member('never-faulted'), 30_000);
    await vi.advanceTimersByTimeAsync(30_000);
    expect(faults.map((f) => f.memberId)).toEqual(['silent', 'alive']);
    expect([d.reopen('silent'), d.reopen('alive'), d.reopen('never-faulted'), d.reopen('unknown')]).toEqual([
      true,
      true,
      false,
      false,
    ]);
    expect(d.faulted).toBe(0);
    d.grace(60_000);
    await vi.advanceTimersByTimeAsync(10_000);
    d.touch(member('alive'), 70_000); // reported to the new active: the same life goes on
    d.touch(member('never-faulted'), 70_000);
    await vi.advanceTimersByTimeAsync(49_999);
    expect(faults).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    // 'silent' faults again with the same last stat (so the same MemberFault id); 'alive' does not.
    expect(faults.slice(2).map((f) => [f.memberId, f.at, f.info.lastStatAt])).toEqual([['silent', 120_000, 0]]);
    expect(d.member('alive')?.state).toBe('alive');
  });

  it('faults every member due in one timer pass, each exactly at its deadline', async () => {
    let timers = 0;
    const counting: Clock = {
      ...systemClock,
      setTimeout: (fn, ms) => {
        timers += 1;
        return systemClock.setTimeout(fn, ms);
      },
    };
    const { d, faults } = detector(60_000, counting);
    for (let i = 0; i < 1_000; i++) d.touch(member(`m-${i}`), 0);
    await vi.advanceTimersByTimeAsync(10);
    for (let i = 0; i < 1_000; i++) d.touch(member(`n-${i}`), 10);
    // One timer for the earliest deadline, not one per member or per stat.
    expect(timers).toBe(1);
    await vi.advanceTimersByTimeAsync(59_990);
    expect(faults).toHaveLength(1_000);
    expect(new Set(faults.map((f) => f.at))).toEqual(new Set([60_000]));
    await vi.advanceTimersByTimeAsync(10);
    expect(faults).toHaveLength(2_000);
    expect(timers).toBe(2);
    d.close();
  });

  it('a fault listener may forget or touch members during the pass', async () => {
    let offset = 0;
    const clock: Clock = { ...systemClock, monotonicNow: () => systemClock.monotonicNow() + offset };
    const faulted: string[] = [];
    const d: FaultDetector = new FaultDetector({
      faultTimeoutMs: 1_000,
      clock,
      onFault: (m) => {
        faulted.push(m.memberId);
        if (m.memberId === 'a') {
          d.forget('b');
          d.touch(member('c'), 5_000);
        }
      },
    });
    d.touch(member('a'), 0);
    offset = 1;
    d.touch(member('b'), 0);
    d.touch(member('c'), 0);
    // At 1 000 the monotonic clock reads 1 001: all three are due in the same pass, `a` first.
    await vi.advanceTimersByTimeAsync(1_000);
    expect(faulted).toEqual(['a']);
    expect(d.member('b')).toBeUndefined();
    expect(d.member('c')?.state).toBe('alive');
    await vi.advanceTimersByTimeAsync(1_000);
    expect(faulted).toEqual(['a', 'c']);
  });

  it('export and import keep the time left, not the clock reading', async () => {
    const { d } = detector();
    d.touch(member('alive'), 1_000);
    d.faultNow(member('faulted'), 'ports_not_open', 1_000);
    await vi.advanceTimersByTimeAsync(20_000);
    const state = JSON.parse(JSON.stringify(d.export()));
    expect(state).toEqual([
      { ...member('alive'), state: 'alive', lastStatAt: 1_000, lastSeenAgoMs: 20_000, remainingMs: 40_000 },
      {
        ...member('faulted'),
        state: 'faulted',
        lastStatAt: 1_000,
        lastSeenAgoMs: 20_000,
        remainingMs: null,
        fault: { reason: 'ports_not_open', silentForMs: 0, declaredAt: 0 },
      },
    ]);
    d.close();
    await vi.advanceTimersByTimeAsync(5_000);
    const { d: copy, faults } = detector();
    copy.import(state);
    expect(copy.faulted).toBe(1);
    await vi.advanceTimersByTimeAsync(39_999);
    expect(faults).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(faults.map((f) => [f.memberId, f.at, f.info.silentForMs])).toEqual([['alive', 65_000, 60_000]]);
  });

  it('export writes the fault as declared, a copy, with the keys in one order', async () => {
    const { d } = detector();
    d.touch(member('m-1'), 1_000);
    await vi.advanceTimersByTimeAsync(61_000);
    const [exported] = d.export();
    expect(exported).toEqual({
      ...member('m-1'),
      state: 'faulted',
      lastStatAt: 1_000,
      lastSeenAgoMs: 61_000,
      remainingMs: null,
      fault: { reason: 'timeout', silentForMs: 60_000, declaredAt: 60_000 },
    });
    expect(Object.keys(exported ?? {})).toEqual([
      'clusterId',
      'clusterInstanceId',
      'networkPartitionId',
      'partitionId',
      'memberId',
      'state',
      'lastStatAt',
      'lastSeenAgoMs',
      'remainingMs',
      'fault',
    ]);
    expect(Object.keys(exported?.fault ?? {})).toEqual(['reason', 'silentForMs', 'declaredAt']);
    if (exported?.fault) exported.fault.declaredAt = 1;
    expect(d.exportOne('m-1')?.fault?.declaredAt).toBe(60_000);
    d.close();
  });

  it('reannounce visits faulted members as declared, at most max a call, rotating; revived and forgotten ones drop out', async () => {
    const { d } = detector();
    for (const id of ['a', 'b', 'c', 'd']) d.faultNow(member(id), 'ports_not_open', 1_000);
    await vi.advanceTimersByTimeAsync(5_000);
    d.touch(member('alive'), 5_000);
    const seen: [string, FaultInfo][] = [];
    const visit = (m: MemberIdentity, info: FaultInfo) => void seen.push([m.memberId, info]);
    expect(d.reannounce(3, visit)).toBe(3);
    expect(seen).toEqual(
      ['a', 'b', 'c'].map((id) => [id, { reason: 'ports_not_open', lastStatAt: 1_000, silentForMs: 0, declaredAt: 0 }]),
    );
    seen.length = 0;
    // The rotation goes on where it stopped; b revives (a new life), c is forgotten.
    d.touch(member('b'), 6_000);
    d.forget('c');
    expect(d.reannounce(3, visit)).toBe(2);
    expect(seen.map(([id]) => id)).toEqual(['d', 'a']);
    expect(d.reannounce(0, visit)).toBe(0);
    // Imported faulted members are re-announced as their exporter declared them.
    const { d: copy } = detector();
    copy.import(JSON.parse(JSON.stringify(d.export())));
    seen.length = 0;
    copy.reannounce(10, visit);
    expect(seen.map(([id, info]) => [id, info.declaredAt])).toEqual([
      ['a', 0],
      ['d', 0],
    ]);
    copy.close();
  });

  it('shift gives back at most capMs since the last stat, across a handover; a stat starts afresh', async () => {
    const { d } = detector(10_000);
    d.touch(member('silent'), 0);
    d.touch(member('alive'), 0);
    d.shift(3_000, 5_000);
    d.shift(3_000, 5_000); // 2 000 left of the cap
    const remaining = () => Object.fromEntries(d.export().map((m) => [m.memberId, [m.remainingMs, m.givenBackMs]]));
    expect(remaining()).toEqual({ silent: [15_000, 5_000], alive: [15_000, 5_000] });
    d.touch(member('alive'), 1); // a stat: its deadline and its budget start afresh
    // The passive that imports this state (the next active of a flapping lease) keeps the budget used.
    const { d: next, faults } = detector(10_000);
    next.import(JSON.parse(JSON.stringify(d.export())));
    d.close();
    next.shift(3_000, 5_000);
    expect(Object.fromEntries(next.export().map((m) => [m.memberId, [m.remainingMs, m.givenBackMs]]))).toEqual({
      silent: [15_000, 5_000],
      alive: [13_000, 3_000],
    });
    await vi.advanceTimersByTimeAsync(15_000);
    expect(faults.map((f) => [f.memberId, f.at])).toEqual([
      ['alive', 13_000],
      ['silent', 15_000],
    ]);
    next.close();
  });

  it('a member that keeps reporting is faulted one timeout after its last stat, exactly', async () => {
    const { d, faults } = detector();
    d.touch(member('m-1'), 0);
    await vi.advanceTimersByTimeAsync(30_000);
    d.touch(member('m-1'), 30_000);
    await vi.advanceTimersByTimeAsync(29_000);
    d.touch(member('m-1'), 59_000);
    await vi.advanceTimersByTimeAsync(59_999); // 118 999: past every deadline but the last stat's
    expect(faults).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(faults).toEqual([
      {
        memberId: 'm-1',
        at: 119_000,
        info: { reason: 'timeout', lastStatAt: 59_000, silentForMs: 60_000, declaredAt: 119_000, lateByMs: 0 },
      },
    ]);
    d.close();
  });

  it('a stat does not reorder the heap: members that keep reporting are re-placed once per fault timeout, in passes about a second apart', async () => {
    // Before, every stat sifted its member from near the top of the heap to the bottom. Now a stat leaves its
    // member's key where it was; the timer pass that finds a stale key at the top sets the stale keys of the next
    // second, so the passes are not one per stale key (with 6 000 members reporting every 15 s, one a step).
    const reordered = vi.spyOn(DeadlineHeap.prototype, 'update');
    let fired = 0;
    const counting: Clock = {
      ...systemClock,
      setTimeout: (fn, ms) =>
        systemClock.setTimeout(() => {
          fired += 1;
          fn();
        }, ms),
    };
    const { d, faults } = detector(60_000, counting);
    const members = 6_000;
    const intervalMs = 15_000;
    const stepMs = 25;
    const perStep = (members * stepMs) / intervalMs; // 10 members a step, each at its own phase
    const minutes = 3;
    for (let step = 0; step < (minutes * 60_000) / stepMs; step++) {
      const first = (step * perStep) % members;
      for (let i = first; i < first + perStep; i++) d.touch(member(`m-${i}`), step * stepMs);
      await vi.advanceTimersByTimeAsync(stepMs);
    }
    expect(faults).toEqual([]);
    const stats = (minutes * 60_000 * members) / intervalMs; // 72 000: each member 12 times
    // Each member re-placed about twice (its key reached the top at 60 s and 120 s), not at 11 of its 12 stats.
    expect(reordered.mock.calls.length).toBeGreaterThan(members);
    expect(reordered.mock.calls.length).toBeLessThanOrEqual(stats / 4);
    // The first minute's keys are every member's first deadline: the passes start after it.
    expect(fired).toBeGreaterThan(0);
    expect(fired).toBeLessThanOrEqual(2 * (minutes - 1) * 60);
    reordered.mockRestore();
    d.close();
  });

  it('grace, shift and export read the deadline the last stat set, not a key it left behind', async () => {
    const { d, faults } = detector();
    const ids = ['graced', 'shifted', 'exported'];
    for (const id of ids) d.touch(member(id), 0); // key 60 000
    await vi.advanceTimersByTimeAsync(50_000);
    for (const id of ids) d.touch(member(id), 50_000); // due at 110 000, key still 60 000
    await vi.advanceTimersByTimeAsync(5_000);
    d.grace(10_000); // a floor of 65 000: below 110 000, so nothing is given back (read from the key: 5 000)
    expect(d.exportOne('exported')?.remainingMs).toBe(55_000);
    expect(d.exportOne('graced')?.givenBackMs).toBeUndefined();
    await vi.advanceTimersByTimeAsync(5_000);
    for (const id of ids) d.touch(member(id), 60_000); // due at 120 000, key left at 110 000 by the grace
    await vi.advanceTimersByTimeAsync(10_000);
    expect(d.exportOne('exported')?.remainingMs).toBe(50_000);
    d.shift(5_000, 10_000); // due at 125 000 (read from the key: 115 000)
    await vi.advanceTimersByTimeAsync(54_999);
    expect(faults).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(faults.map((f) => [f.memberId, f.at, f.info.lateByMs]).sort()).toEqual([
      ['exported', 125_000, 0],
      ['graced', 125_000, 0],
      ['shifted', 125_000, 0],
    ]);
    d.close();
  });

  it('a fault declared late, its key older than its deadline: export, reopen and shift read when it was due', async () => {
    let late = 2_000; // the process ran late: the timer for the key fires 2 s after it
    const lateClock: Clock = { ...systemClock, setTimeout: (fn, ms) => systemClock.setTimeout(fn, ms + late) };
    const { d, faults } = detector(60_000, lateClock);
    d.touch(member('m-1'), 0); // key 60 000
    await vi.advanceTimersByTimeAsync(1_000);
    d.touch(member('m-1'), 1_000); // due at 61 000, key still 60 000
    await vi.advanceTimersByTimeAsync(61_000); // the timer for 60 000 fires at 62 000
    expect(faults.map((f) => [f.memberId, f.at, f.info.silentForMs, f.info.lateByMs])).toEqual([
      ['m-1', 62_000, 61_000, 1_000],
    ]);
    expect(d.exportOne('m-1')).toMatchObject({
      state: 'faulted',
      remainingMs: null,
      lastSeenAgoMs: 61_000,
      fault: { reason: 'timeout', silentForMs: 61_000, declaredAt: 62_000 },
    });
    late = 0;
    expect(d.reopen('m-1', true)).toBe(true); // due when it was: 61 000 (the key: 60 000)
    expect(d.exportOne('m-1')?.remainingMs).toBe(-1_000);
    d.shift(3_000, 10_000); // due at 64 000
    await vi.advanceTimersByTimeAsync(1_999);
    expect(faults).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(faults.map((f) => [f.at, f.info.lateByMs])).toEqual([
      [62_000, 1_000],
      [64_000, 0],
    ]);
    d.close();
  });

  // A grace leaves the timer armed for the earlier deadline; a shift re-arms it for the later one.
  it.each([
    ['a grace', (d: FaultDetector) => d.grace(120_000)],
    ['a shift', (d: FaultDetector) => d.shift(60_000, 120_000)],
  ])(
    'a stat that brings a deadline earlier than %s had set it moves the member up and re-arms the timer',
    async (_, give) => {
      const { d, faults } = detector();
      d.touch(member('m-1'), 0);
      give(d); // due at 120 000
      await vi.advanceTimersByTimeAsync(1_000);
      d.touch(member('m-1'), 1_000); // due at 61 000, a stat resets what takeovers gave back
      await vi.advanceTimersByTimeAsync(59_999);
      expect(faults).toEqual([]);
      await vi.advanceTimersByTimeAsync(1);
      expect(faults.map((f) => [f.memberId, f.at, f.info.lateByMs])).toEqual([['m-1', 61_000, 0]]);
      d.close();
    },
  );

  it('close stops the timer', async () => {
    const { d, faults } = detector();
    d.touch(member('m-1'), 0);
    d.close();
    await vi.advanceTimersByTimeAsync(120_000);
    expect(faults).toHaveLength(0);
  });
});
