import { describe, expect, it } from 'vitest';
import { RecentMap } from './recent-map.js';

describe('RecentMap', () => {
  it('forgets the least recently used entry first when a hit came since', () => {
    const map = new RecentMap<string, number>(3);
    map.set('a', 1).set('b', 2).set('c', 3);
    expect(map.get('a')).toBe(1);
    map.set('d', 4);
    expect([...map.keys()].sort()).toEqual(['a', 'c', 'd']);
    expect(map.size).toBe(3);
  });

  it('forgets in insertion order when nothing was used, and never the entry being set', () => {
    const map = new RecentMap<string, number>(2);
    map.set('a', 1).set('b', 2);
    map.get('a');
    map.get('b');
    map.set('c', 3); // every entry used: one lap unmarks them, then the oldest goes
    expect(map.has('c')).toBe(true);
    expect(map.size).toBe(2);
    map.set('d', 4);
    expect(map.has('d')).toBe(true);
    expect(map.size).toBe(2);
  });

  it('peek neither marks nor moves; set of a known key marks it and keeps its place', () => {
    const map = new RecentMap<string, number>(2);
    map.set('a', 1).set('b', 2);
    expect(map.peek('a')).toBe(1);
    map.set('c', 3);
    expect(map.has('a')).toBe(false);
    map.set('b', 20);
    expect([...map.keys()]).toEqual(['b', 'c']);
    map.set('d', 4);
    expect(map.peek('b')).toBe(20);
    expect(map.has('c')).toBe(false);
  });

  it('keeps a steady working set that fits, whatever the order of hits', () => {
    const map = new RecentMap<number, number>(1_000);
    for (let round = 0; round < 5; round++) for (let i = 0; i < 1_000; i++) if (map.get(i) === undefined) map.set(i, i);
    expect(map.size).toBe(1_000);
    // A one-off key costs one of them, not the working set.
    map.set(-1, -1);
    expect(map.size).toBe(1_000);
    let missing = 0;
    for (let i = 0; i < 1_000; i++) if (!map.has(i)) missing += 1;
    expect(missing).toBe(1);
  });

  it('forgets an entry in bounded time when every entry is in use', () => {
    const map = new RecentMap<number, number>(50_000);
    for (let i = 0; i < 50_000; i++) map.set(i, i);
    for (let i = 0; i < 50_000; i++) map.get(i);
    // A lap of the whole map would unmark 50 000 entries; a bounded eviction moves at most a few dozen.
    map.set(-1, -1);
    expect([...map.keys()].slice(-33)).toEqual([...Array.from({ length: 32 }, (_, i) => i), -1]);
    expect(map.size).toBe(50_000);
    // The entries moved to the back are the ones after the forgotten one: the first 33 of the map, less the one gone.
    expect([...map.keys()].slice(0, 3)).toEqual([33, 34, 35]);
  });

  it('refuses a bound that is not a positive integer', () => {
    expect(() => new RecentMap(0)).toThrow(RangeError);
    expect(() => new RecentMap(1.5)).toThrow(RangeError);
  });
});
