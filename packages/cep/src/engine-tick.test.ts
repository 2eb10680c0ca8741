import { type Clock, systemClock } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import type { Envelope, HealthStat } from '@faultline/protocol';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type CepEngine, createCepEngine } from './index.js';

/*
 * Issue "Performance: 100 000 members on one SP pair": a summary tick was one
 * synchronous pass over every member (2.5 s at 100 000 members), longer than
 * the lease, so the active lost its lease at every tick. It is now made in
 * slices of about 5 ms, each cluster's outputs as soon as it is summarized.
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
  const now = Date.now();
  for (const at of [now - 40_000, now - 25_000, now - 10_000])
    for (let m = 0; m < members; m++)
      e.apply({
        agentId: `m-${m}`,
        sequence: at,
        stats: [stat(m, 'load_average', at), stat(m, 'memory_consumption', at), stat(m, 'requests_in_flight', at)],
      });
  return { e, out };
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
    vi.advanceTimersByTime(100);
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
    vi.advanceTimersByTime(100);
    const tick = (xs: Envelope[]) =>
      xs.filter((x) => x.type !== 'MemberFaultEvent' && (x.data as { windowTo: number }).windowTo <= late);
    expect(tick(sliced.out).map((x) => x.data)).toEqual(tick(whole.out).map((x) => x.data));
  });
});
