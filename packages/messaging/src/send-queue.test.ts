import { describe, expect, it } from 'vitest';
import { SendQueue } from './send-queue.js';

describe('SendQueue', () => {
  it('is FIFO across compactions and resets', () => {
    const queue = new SendQueue<number>();
    for (let i = 0; i < 5_000; i++) queue.push(i);
    const out: number[] = [];
    for (let i = 0; i < 3_000; i++) out.push(queue.shift() as number);
    queue.push(5_000);
    expect(queue.length).toBe(2_001);
    expect([...queue][0]).toBe(3_000);
    while (queue.length > 0) out.push(queue.shift() as number);
    expect(out).toEqual(Array.from({ length: 5_001 }, (_, i) => i));
    expect(queue.shift()).toBeUndefined();
    queue.reset([7, 8]);
    expect([...queue]).toEqual([7, 8]);
  });
});
