import { type Clock, systemClock } from '@faultline/core';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ReplayWindow } from './publisher-replay.js';

const entry = (n: number, bytes = 100) => ({ n, bytes });
const window = (o: Partial<{ windowMs: number; maxEntries: number; maxBytes: number; clock: Clock }> = {}) =>
  new ReplayWindow<{ n: number; bytes: number }>({
    clock: systemClock,
    windowMs: 10_000,
    maxEntries: 10_000,
    maxBytes: 64 * 1024 * 1024,
    ...o,
  });

describe('ReplayWindow (what a lost broker acknowledged lately, sent again on failover)', () => {
  beforeEach(() => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date', 'performance'] }));
  afterEach(() => vi.useRealTimers());

  it('forgets an acknowledged entry once it is older than the window, on the clock', async () => {
    // Issue: kept by count alone, 10 000–20 000 summaries of 80 KB stayed referenced (~1 GB).
    const acked = window();
    for (let n = 1; n <= 3; n++) acked.add(entry(n));
    await vi.advanceTimersByTimeAsync(6_000);
    for (let n = 4; n <= 5; n++) acked.add(entry(n));
    await vi.advanceTimersByTimeAsync(5_000); // the first three are 11 s old
    acked.add(entry(6));
    expect(acked.size).toBe(3);
    await vi.advanceTimersByTimeAsync(20_000);
    acked.trim(); // a quiet publisher lets them go too (the publisher trims every tick)
    expect(acked.size).toBe(0);
  });

  it('keeps at most maxEntries and maxBytes, the newest', () => {
    const byCount = window({ maxEntries: 4 });
    for (let n = 1; n <= 10; n++) byCount.add(entry(n));
    expect(byCount.take().map((e) => e.n)).toEqual([7, 8, 9, 10]);
    const byBytes = window({ maxBytes: 1_000 });
    for (let n = 1; n <= 10; n++) byBytes.add(entry(n, 400));
    expect(byBytes.take().map((e) => e.n)).toEqual([9, 10]);
  });

  it('take() gives what was acknowledged within the window, oldest first, and empties it', async () => {
    const acked = window();
    acked.add(entry(1));
    await vi.advanceTimersByTimeAsync(9_000);
    acked.add(entry(2));
    acked.add(entry(3));
    await vi.advanceTimersByTimeAsync(2_000);
    expect(acked.take().map((e) => e.n)).toEqual([2, 3]);
    expect(acked.size).toBe(0);
    expect(acked.take()).toEqual([]);
  });
});
