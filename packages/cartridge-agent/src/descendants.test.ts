import { describe, expect, it } from 'vitest';
import { descendantsOf } from './probe-checks.js';

/* The tree an exec probe killed at its deadline takes along (probe-checks.ts), from a /proc reader. */
describe('descendantsOf', () => {
  it('walks children breadth first, once each, skipping what cannot be read or is not a pid', () => {
    const tree: Record<number, string> = { 10: '11 12 \n', 11: '13', 12: 'x 1 0 ', 13: '11' };
    const read = (pid: number) => {
      const text = tree[pid];
      if (text === undefined) throw new Error('ENOENT');
      return text;
    };
    expect(descendantsOf(10, read)).toEqual([11, 12, 13]);
    expect(descendantsOf(99, read)).toEqual([]);
  });

  it('stops at 256 processes (a check that forks without end is not walked for ever)', () => {
    const read = (pid: number) => `${pid * 2} ${pid * 2 + 1}`;
    expect(descendantsOf(2, read)).toHaveLength(256);
  });
});
