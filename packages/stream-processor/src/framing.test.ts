import { batchOf, decodeCheckedBatch } from '@faultline/protocol';
import { testStat } from '@faultline/protocol/testing';
import { describe, expect, it, vi } from 'vitest';
import {
  CheckedBatch,
  encodeCheckedBatchFrame,
  encodeFrame,
  encodeRawBatch,
  FrameReader,
  RawBatch,
} from './framing.js';

describe('sync framing', () => {
  it('reassembles frames split anywhere across chunks', () => {
    const messages = [{ t: 'hello' }, { t: 'batch', seq: 1, text: 'é✓'.repeat(100) }, { t: 'ack', seq: 1 }];
    const bytes = Buffer.concat(messages.map((m) => encodeFrame(m)));
    for (const size of [1, 3, 7, 64, bytes.length]) {
      const got: unknown[] = [];
      const reader = new FrameReader(
        1_024,
        (m) => got.push(m),
        () => {
          throw new Error('no violation expected');
        },
      );
      for (let i = 0; i < bytes.length; i += size) reader.push(bytes.subarray(i, i + size));
      expect(got).toEqual(messages);
    }
  });

  it('reports an oversized frame and a non-JSON frame', () => {
    const violation = vi.fn();
    const big = new FrameReader(10, () => {}, violation);
    big.push(encodeFrame({ t: 'x'.repeat(20) }));
    const header = Buffer.alloc(4);
    header.writeUInt32BE(3);
    const bad = new FrameReader(10, () => {}, violation);
    bad.push(Buffer.concat([header, Buffer.from('{{{')]));
    expect(violation.mock.calls.map((c) => c[0])).toEqual(['frame of 28 bytes exceeds 10', 'frame is not JSON']);
  });

  it('carries a raw Thrift call beside JSON frames', () => {
    const call = Buffer.from([0x80, 0x01, 0x00, 0x01, 0xde, 0xad]);
    const got: unknown[] = [];
    const reader = new FrameReader(
      1_024,
      (m) => got.push(m),
      () => {},
    );
    reader.push(Buffer.concat([encodeFrame({ t: 'hello' }), encodeRawBatch(7, call)]));
    expect(got[0]).toEqual({ t: 'hello' });
    expect(got[1]).toBeInstanceOf(RawBatch);
    expect(got[1]).toMatchObject({ seq: 7, call });
  });

  it('carries a checked batch beside JSON frames, its bytes the batch', () => {
    const batch = {
      agentId: 'php-m-1',
      sequence: 4,
      stats: [testStat({ value: 3, timestamp: 5 })],
    };
    const got: unknown[] = [];
    const reader = new FrameReader(
      1_024,
      (m) => got.push(m),
      () => {},
    );
    const bytes = Buffer.concat([encodeCheckedBatchFrame(9, batch), encodeFrame({ t: 'ack', seq: 1 })]);
    for (let i = 0; i < bytes.length; i += 5) reader.push(bytes.subarray(i, i + 5));
    expect(got[0]).toBeInstanceOf(CheckedBatch);
    expect((got[0] as CheckedBatch).seq).toBe(9);
    const read = decodeCheckedBatch((got[0] as CheckedBatch).bytes);
    expect(read.ok && batchOf(read.value)).toEqual(batch);
    expect(got[1]).toEqual({ t: 'ack', seq: 1 });
  });

  it('sends a message longer than a frame in parts and joins them, however the bytes arrive', () => {
    const big = { t: 'snapshot', seq: 3, engine: { text: 'é✓x'.repeat(2_000) } };
    const bytes = encodeFrame(big, 256);
    expect(bytes.length).toBeGreaterThan(6_000);
    for (const size of [1, 100, 4_096, bytes.length]) {
      const got: unknown[] = [];
      const reader = new FrameReader(
        256,
        (m) => got.push(m),
        (reason) => {
          throw new Error(`no violation expected: ${reason}`);
        },
      );
      const all = Buffer.concat([encodeFrame({ t: 'hello' }, 256), bytes, encodeFrame({ t: 'ack', seq: 1 }, 256)]);
      for (let i = 0; i < all.length; i += size) reader.push(all.subarray(i, i + size));
      expect(got).toEqual([{ t: 'hello' }, big, { t: 'ack', seq: 1 }]);
    }
  });

  it('bounds a message in parts, and refuses a whole frame in the middle of one', () => {
    const violation = vi.fn();
    const got: unknown[] = [];
    const bounded = new FrameReader(64, (m) => got.push(m), violation, 1_000);
    bounded.push(encodeFrame({ t: 'x'.repeat(2_000) }, 64));
    const parts = encodeFrame({ t: 'y'.repeat(200) }, 64);
    const interleaved = new FrameReader(64, (m) => got.push(m), violation);
    interleaved.push(Buffer.concat([parts.subarray(0, 69), encodeFrame({ t: 'hello' })]));
    expect(got).toEqual([]);
    expect(violation.mock.calls.map((c) => c[0])).toEqual([
      'message of more than 1000 bytes',
      'a frame inside a message in parts',
    ]);
  });

  it('under a tighter limit refuses large frames and any message in parts, before buffering it', () => {
    const violation = vi.fn();
    const got: unknown[] = [];
    const reader = new FrameReader(1_024 * 1_024, (m) => got.push(m), violation);
    reader.limit(1_024, 0);
    // Only the header of a 1 MiB part arrived: refused on its length, nothing waits for the rest.
    const header = Buffer.alloc(5);
    header.writeUInt32BE(1_024 * 1_024, 0);
    header[4] = 0x02;
    reader.push(header);
    const small = new FrameReader(1_024 * 1_024, (m) => got.push(m), violation);
    small.limit(1_024, 0);
    small.push(encodeFrame({ t: 'y'.repeat(200) }, 64));
    expect(got).toEqual([]);
    expect(violation.mock.calls.map((c) => c[0])).toEqual([
      'frame of 1048576 bytes exceeds 1024',
      'a message in parts is not accepted here',
    ]);
    // Lifted again (the link is established), parts flow.
    const lifted = new FrameReader(64, (m) => got.push(m), violation, 0);
    lifted.limit(64, 1_000);
    lifted.push(encodeFrame({ t: 'y'.repeat(200) }, 64));
    expect(got).toEqual([{ t: 'y'.repeat(200) }]);
  });

  it('counts empty parts, so a stream of them is bounded too', () => {
    const violation = vi.fn();
    const reader = new FrameReader(64, () => {}, violation, 100);
    const empty = Buffer.from([0, 0, 0, 1, 0x02]);
    reader.push(Buffer.concat(Array.from({ length: 200 }, () => empty)));
    expect(violation.mock.calls.map((c) => c[0])).toEqual(['message of more than 100 bytes']);
  });

  it('once stopped, or after a violation, delivers nothing more', () => {
    const got: unknown[] = [];
    const reader = new FrameReader(
      1_024,
      (m) => {
        got.push(m);
        reader.stop();
      },
      () => {},
    );
    reader.push(Buffer.concat([encodeFrame({ t: 'a' }), encodeFrame({ t: 'b' })]));
    reader.push(encodeFrame({ t: 'c' }));
    expect(got).toEqual([{ t: 'a' }]);
    const violation = vi.fn();
    const broken = new FrameReader(10, (m) => got.push(m), violation);
    broken.push(encodeFrame({ t: 'x'.repeat(20) }));
    broken.push(encodeFrame({ t: 'd' }));
    expect(got).toEqual([{ t: 'a' }]);
    expect(violation).toHaveBeenCalledTimes(1);
  });
});
