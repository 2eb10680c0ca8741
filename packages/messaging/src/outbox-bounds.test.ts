import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createMemoryLogger } from '@faultline/core/testing';
import { describe, expect, it } from 'vitest';
import { Outbox } from './outbox.js';
import { LimitedFileSystem } from './testing/index.js';

const tmpFile = () => path.join(mkdtempSync(path.join(os.tmpdir(), 'faultline-outbox-')), 'sp-1.outbox');
const payloads = (outbox: Outbox) => [...outbox.entries()].map((e) => e.payload.toString());
const summary = (stream: string, text: string) => [`t/${stream}`, Buffer.from(text), { stream }] as const;
/** Bytes of a record holding a payload of `n` characters on topic `t/s` of stream `s`. */
const RECORD = (n: number) => JSON.stringify({ a: 1, t: 't/s', p: 'x'.repeat(n), s: 's' }).length + 1;

describe('Outbox coalescing', () => {
  it('keeps only the newest record of a stream; other streams and records without one are all kept', async () => {
    const file = tmpFile();
    const outbox = await Outbox.open({ file });
    await outbox.append(...summary('avg/c1/0', 'avg c1 part 0, tick 1'));
    await outbox.append(...summary('avg/c1/1', 'avg c1 part 1, tick 1'));
    await outbox.append('fault', Buffer.from('fault 1'));
    await outbox.append(...summary('avg/c2/0', 'avg c2 part 0, tick 1'));
    await outbox.append(...summary('avg/c1/0', 'avg c1 part 0, tick 2'));
    await outbox.append('fault', Buffer.from('fault 2'));
    await outbox.append('fault', Buffer.from('fault 2'));
    await outbox.append(...summary('avg/c1/1', 'avg c1 part 1, tick 2'));
    const expected = [
      'fault 1',
      'avg c2 part 0, tick 1',
      'avg c1 part 0, tick 2',
      'fault 2',
      'fault 2',
      'avg c1 part 1, tick 2',
    ];
    expect(payloads(outbox)).toEqual(expected);
    expect(outbox.counters.coalesced).toBe(2);
    await outbox.close();
    const reopened = await Outbox.open({ file });
    expect(payloads(reopened)).toEqual(expected);
    await reopened.close();
  });

  it('coalesces within one group commit too; every append of it resolves', async () => {
    const outbox = await Outbox.open({ file: tmpFile() });
    const appends = await Promise.all([1, 2, 3].map((tick) => outbox.append(...summary('s', `tick ${tick}`))));
    expect(appends).toHaveLength(3);
    expect(payloads(outbox)).toEqual(['tick 3']);
    expect(outbox.has(appends[0]?.seq as number)).toBe(false);
    expect(outbox.counters.coalesced).toBe(2);
    await outbox.close();
  });

  it('an acked record leaves its stream: the next one is simply added', async () => {
    const outbox = await Outbox.open({ file: tmpFile() });
    const first = await outbox.append(...summary('s', 'tick 1'));
    outbox.ack(first.seq);
    await outbox.append(...summary('s', 'tick 2'));
    expect(payloads(outbox)).toEqual(['tick 2']);
    expect(outbox.counters.coalesced).toBe(0);
    await outbox.close();
  });
});

describe('Outbox size bound', () => {
  it('past maxBytes drops the oldest summaries first, never a record without a stream, and logs it', async () => {
    const logger = createMemoryLogger();
    // Room for the fault and four summaries (whose topic and stream are a character longer).
    const maxBytes = 5 * RECORD(100) + 10;
    const outbox = await Outbox.open({ file: tmpFile(), maxBytes, logger });
    await outbox.append('t/s', Buffer.from(`F${'x'.repeat(99)}`));
    for (let i = 1; i <= 6; i++) await outbox.append(...summary(`s${i}`, `${i}${'x'.repeat(99)}`));
    expect(payloads(outbox).map((p) => p[0])).toEqual(['F', '3', '4', '5', '6']);
    expect(outbox.bytes).toBeLessThanOrEqual(maxBytes);
    expect(outbox.counters.droppedOverflow).toBe(2);
    expect(logger.events()).toContain('outbox.overflow_dropped');
  });

  it('refuses a summary when only precious records are left, with FL_ERR_OUTBOX_FULL', async () => {
    const logger = createMemoryLogger();
    const file = tmpFile();
    const outbox = await Outbox.open({ file, maxBytes: 3 * RECORD(100), logger });
    for (let i = 1; i <= 3; i++) await outbox.append('t/s', Buffer.from(`F${i}`.padEnd(100, 'x')));
    await expect(outbox.append(...summary('s', 'S'.padEnd(100, 'x')))).rejects.toMatchObject({
      code: 'FL_ERR_OUTBOX_FULL',
      context: { precious: false },
    });
    expect(outbox.counters.refusedOverflow).toBe(1);
    expect(logger.events()).toContain('outbox.overflow_refused');
    // A precious record still goes in, past maxBytes.
    await outbox.append('t/s', Buffer.from('F4'.padEnd(100, 'x')));
    expect(payloads(outbox)).toHaveLength(4);
  });

  it('takes precious records past maxBytes up to hardMaxBytes, then fails them visibly; an ack makes room', async () => {
    const logger = createMemoryLogger();
    const file = tmpFile();
    const outbox = await Outbox.open({ file, maxBytes: 2 * RECORD(100), hardMaxBytes: 4 * RECORD(100), logger });
    await outbox.append(...summary('s', 'S'.padEnd(100, 'x')));
    const kept = [];
    for (let i = 1; i <= 4; i++) kept.push(await outbox.append('t/s', Buffer.from(`F${i}`.padEnd(100, 'x'))));
    // The summary made room for them first.
    expect(outbox.counters.droppedOverflow).toBe(1);
    await expect(outbox.append('t/s', Buffer.from('F5'.padEnd(100, 'x')))).rejects.toMatchObject({
      code: 'FL_ERR_OUTBOX_FULL',
      context: { precious: true },
    });
    expect(logger.events()).toContain('outbox.full');
    outbox.ack(kept[0]?.seq as number);
    await outbox.append('t/s', Buffer.from('F5'.padEnd(100, 'x')));
    expect(payloads(outbox).map((p) => p.slice(0, 2))).toEqual(['F2', 'F3', 'F4', 'F5']);
    await outbox.close();
    const reopened = await Outbox.open({ file, maxBytes: 2 * RECORD(100), hardMaxBytes: 4 * RECORD(100) });
    expect(payloads(reopened).map((p) => p.slice(0, 2))).toEqual(['F2', 'F3', 'F4', 'F5']);
    await reopened.close();
  });

  it('refuses a record larger than maxRecordBytes at once', async () => {
    const outbox = await Outbox.open({ file: tmpFile(), maxRecordBytes: 1_000 });
    await expect(outbox.append('t', Buffer.alloc(2_000, 'x'))).rejects.toMatchObject({ code: 'FL_ERR_OUTBOX_FULL' });
    await outbox.append('t', Buffer.from('small'));
    expect(payloads(outbox)).toEqual(['small']);
    await outbox.close();
  });

  it('applies the bound at start-up (a smaller maxBytes than the log was written with)', async () => {
    const file = tmpFile();
    const outbox = await Outbox.open({ file });
    await outbox.append('t/s', Buffer.from('F'.padEnd(100, 'x')));
    for (let i = 1; i <= 6; i++) await outbox.append(...summary(`s${i}`, `${i}`.padEnd(100, 'x')));
    await outbox.close();
    const reopened = await Outbox.open({ file, maxBytes: 3 * RECORD(100) + 10 });
    expect(payloads(reopened).map((p) => p[0])).toEqual(['F', '5', '6']);
    expect(reopened.counters.droppedOverflow).toBe(4);
    await reopened.close();
  });

  it('a restart keeps what the live outbox held when an ack made room for an add written with it', async () => {
    const file = tmpFile();
    const maxBytes = 3 * RECORD(100) + 10;
    const outbox = await Outbox.open({ file, maxBytes, compactAfterAcks: 1_000_000 });
    const fault = await outbox.append('t/s', Buffer.from('F'.padEnd(100, 'x')));
    for (const s of ['1', '2']) await outbox.append(...summary(`s${s}`, s.padEnd(100, 'x')));
    // One group: the fault's ack and summary 3, which fits only once the fault left.
    outbox.ack(fault.seq);
    await outbox.append(...summary('s3', '3'.padEnd(100, 'x')));
    expect(payloads(outbox).map((p) => p[0])).toEqual(['1', '2', '3']);
    await outbox.close();
    const reopened = await Outbox.open({ file, maxBytes });
    expect(payloads(reopened).map((p) => p[0])).toEqual(['1', '2', '3']);
    expect(reopened.counters.droppedOverflow).toBe(0);
    await reopened.close();
  });

  it('a refused summary leaves the held one of its stream, and a refused fault leaves every summary', async () => {
    const outbox = await Outbox.open({
      file: tmpFile(),
      maxBytes: 2 * RECORD(100) + 10,
      hardMaxBytes: 3 * RECORD(100),
    });
    await outbox.append('t/s', Buffer.from('F'.padEnd(100, 'x')));
    await outbox.append(...summary('s', 'S'.padEnd(100, 'x')));
    // Too large for what the fault leaves, even with the one it would supersede gone.
    await expect(outbox.append(...summary('s', 'T'.padEnd(250, 'x')))).rejects.toMatchObject({
      code: 'FL_ERR_OUTBOX_FULL',
      context: { precious: false },
    });
    // Past hardMaxBytes even with every summary dropped.
    await expect(outbox.append('t/s', Buffer.from('G'.padEnd(300, 'x')))).rejects.toMatchObject({
      code: 'FL_ERR_OUTBOX_FULL',
      context: { precious: true },
    });
    expect(payloads(outbox).map((p) => p[0])).toEqual(['F', 'S']);
    expect(outbox.counters).toMatchObject({ coalesced: 0, droppedOverflow: 0, refusedOverflow: 2 });
    await outbox.close();
  });

  it('refuses appends past hardMaxBytes waiting on a stalled disk, at once and counted', async () => {
    const fs = new LimitedFileSystem(1024 * 1024);
    const logger = createMemoryLogger();
    const outbox = await Outbox.open({
      file: tmpFile(),
      fs,
      maxBytes: 3 * RECORD(100),
      hardMaxBytes: 6 * RECORD(100),
      logger,
    });
    const stall = fs.holdNext('datasync');
    const first = outbox.append('t/s', Buffer.from('F0'.padEnd(100, 'x')));
    await stall.reached;
    const outcomes: string[] = [];
    const later = Array.from({ length: 10 }, (_, i) =>
      outbox.append('t/s', Buffer.from(`F${i + 1}`.padEnd(100, 'x'))).then(
        () => outcomes.push('ok'),
        (error: { code: string }) => outcomes.push(error.code),
      ),
    );
    await new Promise((resolve) => setImmediate(resolve));
    // Six wait for the disk; the rest are refused while it stalls, not kept in memory.
    expect(outcomes).toEqual(Array(4).fill('FL_ERR_OUTBOX_FULL'));
    expect(outbox.counters.refusedOverflow).toBe(4);
    expect(logger.events()).toContain('outbox.queue_full');
    stall.release();
    await first;
    await Promise.all(later);
    expect(outcomes.filter((o) => o === 'ok')).toHaveLength(5); // the sixth passes hardMaxBytes held
    await outbox.close();
  });
});
