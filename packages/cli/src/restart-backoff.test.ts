import { describe, expect, it } from 'vitest';
import { RestartBackoff } from './restart-backoff.js';

describe('RestartBackoff', () => {
  it('doubles from the first delay to the cap, and starts again after the service stayed up long enough', () => {
    const backoff = new RestartBackoff({ initialMs: 1_000, maxMs: 30_000, resetMs: 30_000 });
    const delays: number[] = [];
    let now = 0;
    for (let i = 0; i < 7; i++) {
      backoff.up(now);
      now += 29_999; // up, but not long enough
      delays.push(backoff.died(now));
    }
    expect(delays).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]);
    backoff.up(now);
    expect(backoff.died(now + 30_000)).toBe(1_000);
    expect(backoff.streak).toBe(1);
  });

  it('counts a death before the service was ever up as another in a row', () => {
    const backoff = new RestartBackoff({ initialMs: 500, maxMs: 4_000, resetMs: 10_000 });
    expect([backoff.died(0), backoff.died(100_000), backoff.died(200_000)]).toEqual([500, 1_000, 2_000]);
  });
});
