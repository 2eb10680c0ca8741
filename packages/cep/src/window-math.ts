/**
 * The summary formulas of the CEP monitor (issue 5, part 2), on the samples
 * of one series (one member, one metric) in a window, sorted by time.
 * Times are epoch milliseconds; rates are per second.
 *
 *   n samples (t₀, v₀) … (tₙ₋₁, vₙ₋₁), t ascending
 *
 *   average           = (v₀ + … + vₙ₋₁) / n                         n ≥ 1
 *
 *   gradient          = (vₙ₋₁ − v₀) / ((tₙ₋₁ − t₀) / 1000)          n ≥ 2 and tₙ₋₁ > t₀
 *                       (Stratos: last − first over Δt, per second)
 *
 *   second derivative (n ≥ 3): split the samples at the middle one into two
 *   halves, first half = indices 0 … ⌈n/2⌉−1, second half = ⌊n/2⌋ … n−1
 *   (for odd n the middle sample belongs to both; n = 3 → {0,1} and {1,2},
 *   n = 4 → {0,1} and {2,3}, n = 5 → {0,1,2} and {2,3,4}):
 *     g₁ = gradient of the first half,  m₁ = (first t + last t of it) / 2
 *     g₂ = gradient of the second half, m₂ = (first t + last t of it) / 2
 *     second derivative = (g₂ − g₁) / ((m₂ − m₁) / 1000)        per second²
 *   and none when either half spans no time or m₂ = m₁.
 *
 * Why split by count and not at the time midpoint: three samples at
 * irregular times (0, 10, 30 s) split at 15 s leave one half with a single
 * sample, so "three samples give a second derivative" would not hold. Why mₖ
 * is the middle of the half's time span and not its mean sample time: a
 * secant slope over [a, b] is the derivative at (a + b) / 2 exactly for a
 * quadratic, so the formula returns exactly 2c for v = c·t² whatever the
 * sampling; for evenly spaced samples it is the classic
 * (v₂ − 2v₁ + v₀) / h² (n = 3).
 */

/** What a window of one series yields; a missing figure is undefined (too few samples: no output). */
export interface SeriesSummary {
  count: number;
  sum: number;
  average: number | undefined;
  gradient: number | undefined;
  secondDerivative: number | undefined;
}

/**
 * The functions below but `summarize` read sample i's time at `times[i]` and
 * its value at `values[i + valuesAt]`: two arrays, or (`valuesAt` > 0) one
 * array holding a series' times and, `valuesAt` slots further on, its values.
 */

/** Slope per second between samples `a` and `b` of the arrays, or undefined when they share a time. */
export function slopePerSecond(
  times: ArrayLike<number>,
  values: ArrayLike<number>,
  a: number,
  b: number,
  valuesAt = 0,
): number | undefined {
  const dt = (times[b] as number) - (times[a] as number);
  if (!(dt > 0)) return undefined;
  return ((values[b + valuesAt] as number) - (values[a + valuesAt] as number)) / (dt / 1000);
}

/** Gradient (per second) of samples `from` … `to` (inclusive). */
export function gradientOf(
  times: ArrayLike<number>,
  values: ArrayLike<number>,
  from = 0,
  to = times.length - 1,
  valuesAt = 0,
): number | undefined {
  if (to - from < 1) return undefined;
  return slopePerSecond(times, values, from, to, valuesAt);
}

/** Second derivative (per second²) of samples `from` … `to` (inclusive), as defined above. */
export function secondDerivativeOf(
  times: ArrayLike<number>,
  values: ArrayLike<number>,
  from = 0,
  to = times.length - 1,
  valuesAt = 0,
): number | undefined {
  const n = to - from + 1;
  if (n < 3) return undefined;
  const firstEnd = from + Math.ceil(n / 2) - 1;
  const secondStart = from + Math.floor(n / 2);
  const g1 = slopePerSecond(times, values, from, firstEnd, valuesAt);
  const g2 = slopePerSecond(times, values, secondStart, to, valuesAt);
  if (g1 === undefined || g2 === undefined) return undefined;
  const m1 = ((times[from] as number) + (times[firstEnd] as number)) / 2;
  const m2 = ((times[secondStart] as number) + (times[to] as number)) / 2;
  const dm = m2 - m1;
  if (!(dm > 0)) return undefined;
  return (g2 - g1) / (dm / 1000);
}

/** Average, gradient and second derivative of samples `from` … `to` (inclusive). */
export function summarize(
  times: ArrayLike<number>,
  values: ArrayLike<number>,
  from = 0,
  to = times.length - 1,
): SeriesSummary {
  return summarizeInto(
    { count: 0, sum: 0, average: undefined, gradient: undefined, secondDerivative: undefined },
    times,
    values,
    from,
    to,
  );
}

/**
 * `summarize`, written into `out` (returned): a summary tick summarizes every
 * member's every metric, 300 000 series at 100 000 members, and reads each
 * summary at once; one object reused is no 300 000 objects of garbage a tick.
 */
export function summarizeInto(
  out: SeriesSummary,
  times: ArrayLike<number>,
  values: ArrayLike<number>,
  from: number,
  to: number,
  valuesAt = 0,
): SeriesSummary {
  const count = Math.max(0, to - from + 1);
  let sum = 0;
  for (let i = from; i <= to; i++) sum += values[i + valuesAt] as number;
  out.count = count;
  out.sum = sum;
  out.average = count > 0 ? sum / count : undefined;
  out.gradient = gradientOf(times, values, from, to, valuesAt);
  out.secondDerivative = secondDerivativeOf(times, values, from, to, valuesAt);
  return out;
}
