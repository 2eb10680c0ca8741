import { describe, expect, it } from 'vitest';
import { Backoff } from './backoff.js';

describe('Backoff: 10 s doubling to 5 min', () => {
  it('delays 10, 20, 40, 80, 160 s, then 300 s for good', () => {
    const backoff = new Backoff(10_000, 300_000);
    expect(backoff.isReady(0)).toBe(true);
    const delays = Array.from({ length: 8 }, () => backoff.failure(1_000));
    expect(delays).toEqual([10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000, 300_000]);
    expect(backoff.failureCount).toBe(8);
    expect(backoff.readyAt).toBe(301_000);
    expect(backoff.isReady(300_999)).toBe(false);
    expect(backoff.isReady(301_000)).toBe(true);
  });

  it('only a failure-free resetAfterMs starts the count again; the state survives a restore', () => {
    const backoff = new Backoff(10_000, 300_000, 600_000);
    backoff.failure(0);
    expect(backoff.failure(100_000)).toBe(20_000); // 100 s later: still in a row
    expect(backoff.failure(699_999)).toBe(40_000); // 599.999 s after the last: still in a row
    const again = new Backoff(10_000, 300_000, 600_000);
    again.restore(backoff.state());
    expect(again.failureCount).toBe(3);
    expect(again.isReady(739_998)).toBe(false);
    expect(again.failure(1_299_999)).toBe(10_000); // 600 s without a failure: a new count
    expect(again.failureCount).toBe(1);
  });

  it('stays finite after very many failures', () => {
    const backoff = new Backoff(10_000, 300_000);
    for (let i = 0; i < 2_000; i++) backoff.failure(0);
    expect(backoff.readyAt).toBe(300_000);
  });
});
