import { describe, expect, it } from 'vitest';
import { createPrng, hashSeed } from './prng.js';
import { FAULT_KINDS, generateSchedule, MEMBER_FAULTS, PAUSE_FAULTS } from './schedule.js';

describe('the seeded PRNG', () => {
  it('gives the same sequence for the same seed, another for another seed', () => {
    const a = createPrng('42');
    const b = createPrng('42');
    const c = createPrng('43');
    const seqA = Array.from({ length: 20 }, () => a.next());
    expect(Array.from({ length: 20 }, () => b.next())).toEqual(seqA);
    expect(Array.from({ length: 20 }, () => c.next())).not.toEqual(seqA);
  });

  it('is pinned: a change of algorithm would change every printed seed’s schedule', () => {
    expect(hashSeed('')).toBe(hashSeed(''));
    const prng = createPrng('pinned');
    const first = [prng.next(), prng.next(), prng.next()];
    const again = createPrng('pinned');
    expect([again.next(), again.next(), again.next()]).toEqual(first);
    for (const x of first) expect(x).toBeGreaterThanOrEqual(0);
    for (const x of first) expect(x).toBeLessThan(1);
  });

  it('draws integers within bounds, both included, and every one of them', () => {
    const prng = createPrng('ints');
    const seen = new Set<number>();
    for (let i = 0; i < 2_000; i += 1) {
      const x = prng.int(3, 7);
      expect(x).toBeGreaterThanOrEqual(3);
      expect(x).toBeLessThanOrEqual(7);
      seen.add(x);
    }
    expect([...seen].sort()).toEqual([3, 4, 5, 6, 7]);
    expect(() => prng.int(5, 4)).toThrow(RangeError);
  });

  it('follows the weights', () => {
    const prng = createPrng('weights');
    const counts = { a: 0, b: 0, never: 0 };
    for (let i = 0; i < 10_000; i += 1)
      counts[
        prng.weighted([
          ['a', 3],
          ['b', 1],
          ['never', 0],
        ] as const)
      ] += 1;
    expect(counts.never).toBe(0);
    expect(counts.a / counts.b).toBeGreaterThan(2.5);
    expect(counts.a / counts.b).toBeLessThan(3.5);
  });
});

describe('the fault schedule', () => {
  const options = { durationMs: 180_000 };

  it('is the same for the same seed and differs for another', () => {
    expect(generateSchedule('7', options)).toEqual(generateSchedule('7', options));
    expect(generateSchedule('7', options)).not.toEqual(generateSchedule('8', options));
  });

  it('stays within the duration, in time order, with ids 1…n', () => {
    const schedule = generateSchedule('order', options);
    expect(schedule.length).toBeGreaterThan(10);
    schedule.forEach((f, i) => {
      expect(f.id).toBe(i + 1);
      expect(f.atMs).toBeGreaterThan(0);
      expect(f.atMs).toBeLessThanOrEqual(options.durationMs);
      if (i > 0) expect(f.atMs).toBeGreaterThanOrEqual((schedule[i - 1] as { atMs: number }).atMs);
    });
  });

  it('draws every kind over a few seeds, bursts of several faults, pauses with a bounded duration', () => {
    const all = ['1', '2', '3', '4', '5'].flatMap((seed) => generateSchedule(seed, options));
    expect(new Set(all.map((f) => f.kind))).toEqual(new Set(FAULT_KINDS));
    const perBurst = new Map<number, number>();
    for (const f of generateSchedule('1', options)) perBurst.set(f.burst, (perBurst.get(f.burst) ?? 0) + 1);
    expect(Math.max(...perBurst.values())).toBeGreaterThan(1);
    for (const f of all) {
      if (PAUSE_FAULTS.includes(f.kind)) {
        expect(f.durationMs).toBeGreaterThanOrEqual(1_000);
        expect(f.durationMs).toBeLessThanOrEqual(8_000);
      } else {
        expect(f.durationMs).toBeUndefined();
      }
      if (f.kind === 'kill-sp' || f.kind === 'pause-sp' || f.kind === 'kill-autoscaler') {
        expect(['active', 'passive']).toContain(f.target);
      }
      if (f.kind === 'slow-postgres') {
        expect(f.latencyMs).toBeGreaterThanOrEqual(400);
        expect(f.latencyMs).toBeLessThanOrEqual(1_500);
      } else {
        expect(f.latencyMs).toBeUndefined();
      }
      if (f.kind === 'kill-broker' || f.kind === 'pause-broker') expect(['a', 'b', 'both']).toContain(f.target);
      if (MEMBER_FAULTS.includes(f.kind)) expect(f.target).toBeUndefined();
      expect(f.pick).toBeGreaterThanOrEqual(0);
      expect(f.pick).toBeLessThan(1);
    }
  });

  it('leaves out a kind of weight 0', () => {
    const schedule = generateSchedule('w', { ...options, weights: { 'kill-member': 0 } });
    expect(schedule.some((f) => f.kind === 'kill-member')).toBe(false);
  });

  it('separates bursts by the gap', () => {
    const schedule = generateSchedule('gap', { durationMs: 60_000, gapMs: [5_000, 5_000], burstSizes: [1] });
    expect(schedule.map((f) => f.atMs)).toEqual(Array.from({ length: 12 }, (_, i) => (i + 1) * 5_000));
  });
});
