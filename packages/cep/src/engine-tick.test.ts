import { type Clock, systemClock } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import type { Envelope, HealthStat } from '@faultline/protocol';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type CepEngine, createCepEngine } from './index.js';

/*
 * Issue "Performance: 100 000 members on one SP pair": a summary tick was one
 * synchronous pass over every member (2.5 s at 100 000 members), longer than
 * the lease, so the active lost its lease at every tick. It is now made in
 * slices of about 2 ms, each cluster's outputs as soon as it is summarized.
 */

const engines: CepEngine[] = [];
afterEach(() => {
  for (const e of engines.splice(0)) e.close();
  vi.useRealTimers();
});

/** The system clock under fake timers, but its monotonic time moves 1 ms at every reading: work takes time. */
function busyClock(): Clock {
  let t = 0;
  return { ...systemClock, monotonicNow: () => ++t };
}

const stat = (m: number, healthDescription: HealthStat['healthDescription'], timestamp: number): HealthStat => ({
  clusterId: `c-${m % 3}`,
  clusterInstanceId: `c-${m % 3}-1`,
  networkPartitionId: 'np-1',
  partitionId: 'p-1',
  memberId: `m-${m}`,
  healthDescription,
  value: (m * 7) % 50,
  timestamp,
});

function loaded(clock: Clock, members: number) {
  const e = createCepEngine({ source: 'sp-1', logger: createMemoryLogger(), clock, faultTimeoutMs: 600_000 });
  engines.push(e);
  const out: Envelope[] = [];
  e.onOutput((envelope) => void out.push(envelope));
  e.activate(1);
  reportRounds(e, members);
  return { e, out };
}

/** Three rounds of every member's three stats, 40, 25 and 10 s ago. */
function reportRounds(e: CepEngine, members: number): void {
  const now = Date.now();
  for (const at of [now - 40_000, now - 25_000, now - 10_000])
    for (let m = 0; m < members; m++)
      e.apply({
        agentId: `m-${m}`,
        sequence: at,
        stats: [stat(m, 'load_average', at), stat(m, 'memory_consumption', at), stat(m, 'requests_in_flight', at)],
      });
}

describe('a summary tick of many members', () => {
  it('is made over several turns of the event loop, and gives what a tick made at once gives', () => {
    vi.useFakeTimers({ now: 1_800_000_000_000 });
    const sliced = loaded(busyClock(), 3_000);
    const whole = loaded(systemClock, 3_000);
    const until = 15_000 - (Date.now() % 15_000); // the next tick
    vi.advanceTimersByTime(until - 1);
    const before = sliced.out.length;
    // The tick's timer fires: the sliced engine makes part of it now, the rest in later turns.
    vi.advanceTimersByTime(1);
    const firstTurn = sliced.out.length - before;
    expect(whole.out.length).toBeGreaterThan(30);
    expect(firstTurn).toBeLessThan(whole.out.length - before);
    vi.advanceTimersByTime(1_000);
    const ids = (xs: Envelope[]) => xs.slice(before).map((x) => x.id);
    expect(ids(sliced.out)).toEqual(ids(whole.out));
    expect(sliced.out.slice(before).map((x) => x.data)).toEqual(whole.out.slice(before).map((x) => x.data));
  });

  it('counts only samples at or before the tick, though more arrive while it is made', () => {
    vi.useFakeTimers({ now: 1_800_000_000_000 });
    const sliced = loaded(busyClock(), 3_000);
    const whole = loaded(systemClock, 3_000);
    const until = 15_000 - (Date.now() % 15_000);
    vi.advanceTimersByTime(until);
    // Stats stamped after the tick reach the sliced engine while its tick is still being made.
    const late = Date.now() + 1;
    for (let m = 0; m < 3_000; m++)
      sliced.e.apply({ agentId: `m-${m}`, sequence: late, stats: [stat(m, 'load_average', late)] });
    vi.advanceTimersByTime(1_000);
    const tick = (xs: Envelope[]) =>
      xs.filter((x) => x.type !== 'MemberFaultEvent' && (x.data as { windowTo: number }).windowTo <= late);
    expect(tick(sliced.out).map((x) => x.data)).toEqual(tick(whole.out).map((x) => x.data));
  });
});

it('makes the envelopes of a cluster one by one as the slice publishes them, not all of them in one block', () => {
  // A cluster of 10 000 members is some 70 envelopes: made in one block, 20 ms of one turn.
  vi.useFakeTimers({ now: 1_800_000_000_000 });
  const { e, out } = loaded(busyClock(), 3_000);
  vi.advanceTimersByTime(15_000 - (Date.now() % 15_000) - 1);
  let published = out.length;
  let made = e.status().summariesComputed;
  for (let turn = 0; turn < 200; turn++) {
    vi.advanceTimersByTime(1);
    const madeNow = e.status().summariesComputed - made;
    // Each envelope made in a turn went out in it: none waits, made, for a later turn.
    expect(madeNow).toBe(out.length - published);
    made += madeNow;
    published = out.length;
  }
  expect(made).toBeGreaterThan(30);
  expect(e.status().pendingOutputs).toBe(0);
});

describe('a passive whose slice ends on the last output of its tick', () => {
  it('is through with the tick at once: a confirmation then does not make it a tick left to the active', () => {
    // The slice ends after `n` more clock readings, so one of these ends exactly on the last output.
    for (let n = 0; n <= 12; n++) {
      vi.useFakeTimers({ now: 1_800_000_000_000 });
      let t = 0;
      let still = -1;
      const clock: Clock = { ...systemClock, monotonicNow: () => (still-- > 0 ? t : ++t) };
      const passive = createCepEngine({
        source: 'sp-2',
        logger: createMemoryLogger(),
        clock,
        faultTimeoutMs: 600_000,
        passiveTickWaitMs: 0,
      });
      const { e: active, out } = loaded(systemClock, 10);
      engines.push(passive);
      reportRounds(passive, 10);
      vi.advanceTimersByTime(15_000 - (Date.now() % 15_000) - 1);
      still = n;
      vi.advanceTimersByTime(1);
      const tick = out.filter((x) => x.type !== 'MemberFaultEvent').map((x) => x.id);
      for (let i = 0; i < 200 && passive.status().pendingOutputs < tick.length; i++) vi.advanceTimersToNextTimer();
      expect(passive.status().pendingOutputs).toBe(tick.length);
      // The active's first confirmation arrives as the passive holds its whole tick.
      passive.confirm(tick.slice(0, 1));
      expect({ n, left: passive.status().summaryTicksLeftToActive }).toEqual({ n, left: 0 });
      const published: Envelope[] = [];
      passive.onOutput((x) => void published.push(x));
      passive.activate(2);
      vi.advanceTimersByTime(1_000);
      // What it held, once each: not the tick again on top.
      expect({ n, published: published.length }).toEqual({ n, published: tick.length - 1 });
      for (const e of engines.splice(0)) e.close();
      active.close();
      vi.useRealTimers();
    }
  });
});

describe('a takeover holding a tick of many members', () => {
  /** A passive that holds one whole tick of `members` and one ports_not_open fault, none confirmed. */
  function heldTick(members: number) {
    vi.useFakeTimers({ now: 1_800_000_000_000 });
    const e = createCepEngine({
      source: 'sp-2',
      logger: createMemoryLogger(),
      clock: busyClock(),
      faultTimeoutMs: 600_000,
      maxPendingOutputs: 100_000,
      // It makes the tick at once, as if no confirmation could come (the wait: engine.test.ts).
      passiveTickWaitMs: 0,
    });
    engines.push(e);
    const out: Envelope[] = [];
    e.onOutput((envelope) => void out.push(envelope));
    reportRounds(e, members);
    const now = Date.now();
    e.apply({ agentId: 'm-0', sequence: now, stats: [{ ...stat(0, 'ports_not_open', now), value: 1 }] });
    vi.advanceTimersByTime(15_000 - (now % 15_000) + 1_000); // the tick, made whole meanwhile
    return { e, out, held: e.status().pendingOutputs };
  }

  it('publishes the fault at once and the summaries a slice per turn of the event loop, every one of them', () => {
    const { e, out, held } = heldTick(3_000);
    expect(held).toBeGreaterThan(30);
    e.activate(2);
    // In the takeover's own turn: the fault, and only part of the summaries (all at once starved the lease).
    expect(out.filter((o) => o.type === 'MemberFaultEvent')).toHaveLength(1);
    expect(out.length).toBeLessThan(held);
    vi.advanceTimersByTime(1_000);
    expect(out).toHaveLength(held);
    expect(new Set(out.map((o) => o.id)).size).toBe(held);
    expect(out.every((o) => o.epoch === 2)).toBe(true);
  });

  it('a takeover while the next tick waits for the old active publishes that tick, none of the one it held', () => {
    const { e, out, held } = heldTick(3_000);
    expect(held).toBeGreaterThan(30);
    const heldTo = Date.now() - 1_000; // the tick it holds (made at once: passiveTickWaitMs 0)
    // The same node with the default wait: the next tick waits for an active that does not answer.
    const waiting = createCepEngine({
      source: 'sp-2',
      logger: createMemoryLogger(),
      clock: busyClock(),
      faultTimeoutMs: 600_000,
      maxPendingOutputs: 100_000,
    });
    engines.push(waiting);
    waiting.importState(e.exportState());
    const mine: Envelope[] = [];
    waiting.onOutput((envelope) => void mine.push(envelope));
    vi.advanceTimersByTime(15_000 + 1_000); // the next tick, waiting (its first slice cannot finish a cluster)
    expect(waiting.status()).toMatchObject({ summariesComputed: 0 });
    waiting.activate(2);
    vi.advanceTimersByTime(1_000);
    const summaries = mine.filter((o) => o.type !== 'MemberFaultEvent');
    // The whole tick: all it made, every one published once.
    expect(summaries.length).toBeGreaterThan(20);
    expect(waiting.status()).toMatchObject({ summariesComputed: summaries.length, summariesEmitted: summaries.length });
    expect(new Set(summaries.map((o) => o.id)).size).toBe(summaries.length);
    // Every summary is the newer tick's: the held ones it supersedes are left out, even in the first turns.
    expect(summaries.every((o) => o.id.endsWith(`:${heldTo + 15_000}`))).toBe(true);
    expect(out).toEqual([]);
  });

  it('holds again what it had not published when it turns passive meanwhile, and publishes it at the next takeover', () => {
    const { e, out, held } = heldTick(3_000);
    e.activate(2);
    const first = out.length;
    e.deactivate();
    vi.advanceTimersByTime(1_000);
    expect(out).toHaveLength(first);
    expect(e.status().pendingOutputs).toBe(held - first);
    e.activate(3);
    vi.advanceTimersByTime(1_000);
    expect(new Set(out.map((o) => o.id)).size).toBe(held);
  });
});
