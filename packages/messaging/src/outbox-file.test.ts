import { describe, expect, it } from 'vitest';
import { pieces } from './outbox-file.js';

describe('pieces', () => {
  it('writes records given as text or as bytes, each newline-terminated, in their order', () => {
    const big = Buffer.from(`{"a":2,"p":"${'é'.repeat(40_000)}"}`);
    const out = Buffer.concat([...pieces(['{"k":1}', big, '{"k":3}', '{"k":4}', Buffer.from('{"a":5}')])]);
    expect(out.toString('utf8')).toBe(`{"k":1}\n${big.toString('utf8')}\n{"k":3}\n{"k":4}\n{"a":5}\n`);
  });

  it('cuts them into pieces of about a mebibyte, never splitting a record', () => {
    const record = Buffer.from(`{"p":"${'x'.repeat(100_000)}"}`);
    const written = [...pieces(Array.from({ length: 25 }, (_, i) => (i % 2 === 0 ? record : record.toString())))];
    expect(written.length).toBe(3);
    for (const piece of written) {
      expect(piece.length % (record.length + 1)).toBe(0);
      expect(piece.length).toBeLessThanOrEqual(1024 * 1024 + record.length + 1);
    }
    expect(Buffer.concat(written).toString()).toBe(`${record.toString()}\n`.repeat(25));
  });

  it('writes nothing for no records', () => {
    expect([...pieces([])]).toEqual([]);
  });
});
