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

  it('a success resets it', () => {
    const backoff = new Backoff(10_000, 300_000);
    backoff.failure(0);
    backoff.failure(0);
    backoff.success();
    expect(backoff.isReady(0)).toBe(true);
    expect(backoff.failure(0)).toBe(10_000);
  });

  it('stays finite after very many failures', () => {
    const backoff = new Backoff(10_000, 300_000);
    for (let i = 0; i < 2_000; i++) backoff.failure(0);
    expect(backoff.readyAt).toBe(300_000);
  });
});
