/**
 * A small seeded PRNG: the seed (any string; a number is its decimal text) is
 * hashed to 32 bits (FNV-1a, then a murmur3 finalizer), which seeds
 * mulberry32. Same seed, same sequence, on every platform and Node version:
 * the schedule of a nemesis run is reproduced from the seed it prints.
 */
export interface Prng {
  /** A float in [0, 1). */
  next(): number;
  /** An integer in [min, max], both included. */
  int(min: number, max: number): number;
  /** true with probability p. */
  chance(p: number): boolean;
  /** One of `items`, each with its weight (> 0). */
  weighted<T>(items: readonly (readonly [T, number])[]): T;
}

/** 32-bit hash of a seed string. */
export function hashSeed(seed: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < seed.length; i += 1) {
    h ^= seed.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export function createPrng(seed: string): Prng {
  let state = hashSeed(seed);
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
  return {
    next,
    int: (min, max) => {
      if (!(Number.isInteger(min) && Number.isInteger(max) && min <= max)) {
        throw new RangeError(`int(${min}, ${max}): bounds must be integers, min ≤ max`);
      }
      return min + Math.floor(next() * (max - min + 1));
    },
    chance: (p) => next() < p,
    weighted: (items) => {
      const total = items.reduce((sum, [, w]) => sum + w, 0);
      if (!(total > 0)) throw new RangeError('weighted(): no positive weight');
      let x = next() * total;
      for (const [item, w] of items) {
        x -= w;
        if (x < 0) return item;
      }
      return (items[items.length - 1] as readonly [unknown, number])[0] as (typeof items)[number][0];
    },
  };
}

/** A fresh seed for a run given none: printed, so the run can be repeated. */
export function randomSeed(): string {
  return String(Math.floor(Math.random() * 1_000_000_000));
}
