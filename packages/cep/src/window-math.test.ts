import { describe, expect, it } from 'vitest';
import { gradientOf, secondDerivativeOf, summarize } from './window-math.js';

const s = (seconds: number[]) => seconds.map((x) => x * 1000);

describe('window math (hand-computed)', () => {
  it('average is the mean of the samples', () => {
    expect(summarize(s([0, 15, 30]), [2, 4, 9]).average).toBe(5);
    expect(summarize([7_000], [3.5]).average).toBe(3.5);
  });

  it('gradient is last − first over Δt, per second', () => {
    // (10 − 1) / 30 s
    expect(gradientOf(s([0, 15, 30]), [1, 4, 10])).toBeCloseTo(0.3, 12);
    // (2 − 6) / 4 s: falling
    expect(gradientOf(s([10, 14]), [6, 2])).toBe(-1);
  });

  it('gradient with one sample, or with no time between first and last: no output', () => {
    expect(gradientOf([1_000], [5])).toBeUndefined();
    expect(gradientOf([1_000, 1_000], [5, 9])).toBeUndefined();
    expect(summarize([1_000], [5])).toEqual({
      count: 1,
      sum: 5,
      average: 5,
      gradient: undefined,
      secondDerivative: undefined,
    });
  });

  it('second derivative with fewer than 3 samples: no output', () => {
    expect(secondDerivativeOf([], [])).toBeUndefined();
    expect(secondDerivativeOf(s([0]), [1])).toBeUndefined();
    expect(secondDerivativeOf(s([0, 15]), [1, 4])).toBeUndefined();
    expect(summarize(s([0, 15]), [1, 4]).secondDerivative).toBeUndefined();
  });

  it('3 samples: halves {0,1} and {1,2}, equal to (v₂ − 2v₁ + v₀) / h²', () => {
    // g₁ = (4 − 1)/15 = 0.2, g₂ = (10 − 4)/15 = 0.4, m₁ = 7.5 s, m₂ = 22.5 s → 0.2 / 15 = 1/75
    expect(secondDerivativeOf(s([0, 15, 30]), [1, 4, 10])).toBeCloseTo(1 / 75, 12);
    expect((10 - 2 * 4 + 1) / 15 ** 2).toBeCloseTo(1 / 75, 12);
  });

  it('3 samples at irregular times still give one (a split at the time midpoint would not)', () => {
    // {0 s, 10 s} g₁ = 1, m₁ = 5 s; {10 s, 30 s} g₂ = (50 − 10)/20 = 2, m₂ = 20 s → (2 − 1)/15
    expect(secondDerivativeOf(s([0, 10, 30]), [0, 10, 50])).toBeCloseTo(1 / 15, 12);
  });

  it('4 samples: halves {0,1} and {2,3}', () => {
    // g₁ = (2 − 1)/15 = 1/15, g₂ = (8 − 4)/15 = 4/15, m₁ = 7.5 s, m₂ = 37.5 s → (3/15)/30 = 1/150
    expect(secondDerivativeOf(s([0, 15, 30, 45]), [1, 2, 4, 8])).toBeCloseTo(1 / 150, 12);
  });

  it('5 samples: the middle one is in both halves', () => {
    // {0,10,20 s} g₁ = 30/20 = 1.5, m₁ = 10 s; {20,40,50 s} g₂ = (40 − 30)/30 = 1/3, m₂ = 35 s
    // → (1/3 − 3/2) / 25 = −7/150
    expect(secondDerivativeOf(s([0, 10, 20, 40, 50]), [0, 10, 30, 50, 40])).toBeCloseTo(-7 / 150, 12);
  });

  it('is exactly 2c for v = c·t² whatever the sampling', () => {
    const times = s([0, 7, 19, 30, 44, 60]);
    const values = times.map((t) => 0.5 * (t / 1000) ** 2);
    expect(secondDerivativeOf(times, values)).toBeCloseTo(1, 12);
    // and 0 for a straight line
    expect(
      secondDerivativeOf(
        times,
        times.map((t) => 3 + 2 * (t / 1000)),
      ),
    ).toBeCloseTo(0, 12);
  });

  it('a half that spans no time gives no second derivative', () => {
    expect(secondDerivativeOf(s([0, 0, 10]), [1, 2, 3])).toBeUndefined();
  });

  it('works on a sub-range of the arrays', () => {
    const times = s([0, 15, 30, 45, 60]);
    const values = [100, 1, 4, 10, 100];
    expect(summarize(times, values, 1, 3)).toEqual({
      count: 3,
      sum: 15,
      average: 5,
      gradient: expect.closeTo(0.3, 12),
      secondDerivative: expect.closeTo(1 / 75, 12),
    });
  });
});
