import { describe, expect, it } from 'vitest';
import { DeadlineHeap } from './deadline-heap.js';

interface Item {
  id: number;
  deadline: number;
  heapIndex: number;
}

/** A deterministic PRNG (mulberry32), so a failure replays. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('DeadlineHeap', () => {
  it('pops in deadline order through pushes, updates and removals', () => {
    const rnd = random(42);
    const heap = new DeadlineHeap<Item>();
    const live = new Map<number, Item>();
    for (let step = 0; step < 2_000; step++) {
      const op = rnd();
      if (op < 0.4 || live.size === 0) {
        const item = { id: step, deadline: Math.floor(rnd() * 1_000), heapIndex: -1 };
        heap.push(item);
        live.set(item.id, item);
      } else {
        const items = [...live.values()];
        const item = items[Math.floor(rnd() * items.length)] as Item;
        if (op < 0.8) {
          item.deadline = Math.floor(rnd() * 1_000);
          heap.update(item);
        } else {
          heap.remove(item);
          live.delete(item.id);
          expect(item.heapIndex).toBe(-1);
        }
      }
      expect(heap.size).toBe(live.size);
      const earliest = live.size === 0 ? undefined : Math.min(...[...live.values()].map((i) => i.deadline));
      expect(heap.peek()?.deadline).toBe(earliest);
    }
    const order: number[] = [];
    for (let item = heap.pop(); item; item = heap.pop()) order.push(item.deadline);
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(order).toHaveLength(live.size);
  });

  it('heapify restores the order after many deadlines moved at once', () => {
    const heap = new DeadlineHeap<Item>();
    const items = Array.from({ length: 100 }, (_, i) => ({ id: i, deadline: i, heapIndex: -1 }));
    for (const item of items) heap.push(item);
    for (const item of items) item.deadline = 1_000 - item.id;
    heap.heapify();
    expect(heap.pop()?.id).toBe(99);
    expect(heap.pop()?.id).toBe(98);
    heap.clear();
    expect(heap.size).toBe(0);
    expect(items.every((i) => i.heapIndex === -1)).toBe(true);
  });
});
