import { describe, expect, it } from 'vitest';
import { BatchDedupe } from './batch-dedupe.js';

describe('BatchDedupe', () => {
  it('accepts each (agent, sequence) once, in or out of order', () => {
    const d = new BatchDedupe();
    expect([1, 2, 4, 3, 2, 4, 5].map((s) => d.add('a', s))).toEqual([
      'added',
      'added',
      'added',
      'added',
      'duplicate',
      'duplicate',
      'added',
    ]);
    expect(d.add('b', 1)).toBe('added');
    expect(d.has('a', 3)).toBe(true);
    expect(d.has('a', 6)).toBe(false);
  });

  it('moves past a gap that never fills, bounded', () => {
    const d = new BatchDedupe(100, 8);
    d.add('a', 1);
    for (let s = 3; s <= 12; s++) d.add('a', s); // 2 was dropped by the agent
    expect(d.has('a', 2)).toBe(true); // skipped once the gap outgrew maxGap
    expect(d.add('a', 13)).toBe('added');
  });

  it('a sequence far above what the agent sent is refused and never moves the floor (issue 12)', () => {
    const d = new BatchDedupe();
    for (let s = 1; s <= 10; s++) d.add('a', s);
    // 1 025 batches claiming sequences ≥ 1e15 under the agent's id…
    for (let i = 0; i < 1_025; i++) d.add('a', 1e15 + i);
    // …leave the agent's next real batches new, not "duplicate".
    expect(d.has('a', 11)).toBe(false);
    expect(d.add('a', 11)).toBe('added');
    expect(d.add('a', 1e15)).toBe('out_of_window');
    expect(d.check('a', 11 + d.maxGap)).toBe('added');
    expect(d.check('a', 12 + d.maxGap)).toBe('out_of_window');
    expect(d.export().agents).toEqual([['a', 11, []]]);
    // A new agent id may start anywhere (it outlived an SP restart).
    expect(d.add('b', 5_000)).toBe('added');
  });

  it('forgets the least recently seen agent beyond its capacity', () => {
    const d = new BatchDedupe(2);
    d.add('a', 1);
    d.add('b', 1);
    d.add('a', 2);
    d.add('c', 1);
    expect(d.size).toBe(2);
    expect(d.has('b', 1)).toBe(false);
    expect(d.has('a', 2)).toBe(true);
  });

  it('exports and imports its state (the passive snapshot)', () => {
    const d = new BatchDedupe();
    for (const s of [1, 2, 5]) d.add('a', s);
    const copy = new BatchDedupe();
    copy.import(JSON.parse(JSON.stringify(d.export())));
    expect(copy.add('a', 2)).toBe('duplicate');
    expect(copy.add('a', 5)).toBe('duplicate');
    expect(copy.add('a', 3)).toBe('added');
    expect(copy.add('a', 5 + copy.maxGap + 1)).toBe('out_of_window');
  });

  it('an agent first seen past sequence 1 (it outlived an SP restart) costs one record, not one number per batch', () => {
    const d = new BatchDedupe();
    // 1 000 agents that kept their sequences across a restart of the whole pair, 100 batches each, in order.
    let added = 0;
    for (let s = 5_000; s < 5_100; s++)
      for (let a = 0; a < 1_000; a++) if (d.add(`agent-${a}`, s) === 'added') added += 1;
    expect(added).toBe(100_000);
    const rows = d.export().agents;
    expect(rows).toHaveLength(1_000);
    // Not [id, 0, [5 000 … 5 099]]: a hole below the first sequence that nothing will ever fill.
    expect(rows.every(([, floor, above]) => floor === 5_099 && above.length === 0)).toBe(true);
    // An agent sends one call at a time, oldest first: whatever is below its first batch here was acknowledged
    // (by another node or an earlier life) or given up before it; a resend of it is a duplicate.
    expect(d.add('agent-0', 4_999)).toBe('duplicate');
    expect(d.add('agent-0', 5_099)).toBe('duplicate');
    expect(d.add('agent-0', 5_100)).toBe('added');
    // The window still counts from what the agent sent.
    expect(d.check('agent-1', 5_099 + d.maxGap)).toBe('added');
    expect(d.check('agent-1', 5_100 + d.maxGap)).toBe('out_of_window');
  });

  it('a forged first batch far ahead of an agent it does not know makes the agent start a new id, not lose its batches', () => {
    const d = new BatchDedupe();
    // The pair restarted; before the agent's next batch, someone with its member's credential sends one far ahead.
    expect(d.add('m-1:1700000000000', Number.MAX_SAFE_INTEGER)).toBe('added');
    // The agent's real batches are refused as out of window (it starts a new agent id), never acked as duplicates.
    expect(d.check('m-1:1700000000000', 5_000)).toBe('out_of_window');
    expect(d.add('m-1:1700000000000', 5_000)).toBe('out_of_window');
    expect(d.add('m-1:1700000000000', 1)).toBe('out_of_window');
    // A resend within the window below the floor is still a duplicate (an ack lost, a late frame).
    d.add('m-2:1700000000000', 5_000);
    expect(d.add('m-2:1700000000000', 5_000 - d.maxGap)).toBe('duplicate');
    expect(d.add('m-2:1700000000000', 4_999 - d.maxGap)).toBe('out_of_window');
    // The new agent id starts clean.
    expect(d.add('m-1:1700000009999', 1)).toBe('added');
  });
});
