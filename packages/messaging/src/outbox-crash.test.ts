import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createMemoryLogger } from '@faultline/core/testing';
import { describe, expect, it, vi } from 'vitest';
import { Outbox } from './outbox.js';
import { LimitedFileSystem } from './testing/index.js';

/*
 * What a crash or a power loss may leave of the log, and a failed fsync on
 * the way: every add that resolved must come back (review of the bounded
 * outbox). A power loss before an fsync keeps any subset of the pages
 * written since the last one, not only a prefix.
 */

const tmpDir = () => mkdtempSync(path.join(os.tmpdir(), 'faultline-outbox-'));
const payloads = (outbox: Outbox) => [...outbox.entries()].map((e) => e.payload.toString());

describe('Outbox compaction and a failed fsync', () => {
  it('cut in place, its fsync failing: the next add is written at the start of the file, and comes back', async () => {
    const file = path.join(tmpDir(), 'sp-1.outbox');
    const fs = new LimitedFileSystem(1024 * 1024);
    const outbox = await Outbox.open({ file, fs, compactAfterAcks: 1 });
    const first = await outbox.append('t', Buffer.from('a'.repeat(500)));
    // The ack's removal is written without fsync; the first fsync is that of the file cut to nothing.
    fs.failNext('datasync');
    outbox.ack(first.seq);
    await vi.waitFor(() => expect(outbox.counters.compactionsFailed).toBe(1));
    await outbox.append('t', Buffer.from('b'));
    await outbox.close();
    // Not after the bytes the cut removed: zeros would stand before it, read back as one corrupt line.
    expect(readFileSync(file, 'utf8')).toBe('{"a":2,"t":"t","p":"b","s":""}\n');
    const reopened = await Outbox.open({ file });
    expect(payloads(reopened)).toEqual(['b']);
    expect(reopened.counters.corruptRecords).toBe(0);
    await reopened.close();
  });

  it('a failed fsync of the folder after the rename is done again before the next add resolves, failing it if it fails', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'sp-1.outbox');
    const fs = new LimitedFileSystem(1024 * 1024);
    const logger = createMemoryLogger();
    const outbox = await Outbox.open({ file, fs, compactAfterAcks: 1, compactionRetryMs: 60_000, logger });
    const entries = await Promise.all(['m1', 'm2', 'm3', 'm4'].map((m) => outbox.append('t', Buffer.from(m))));
    // The folder's fsync after the compaction's rename fails, and so does the first try again.
    fs.failNext('sync', 'EIO', 2, dir);
    for (const entry of entries.slice(0, 3)) outbox.ack(entry.seq);
    await outbox.append('t', Buffer.from('m5')); // written with the removals; the compaction follows
    // Until the rename is known durable, no add is: a crash could bring the old log back without it.
    await expect(outbox.append('t', Buffer.from('m6'))).rejects.toMatchObject({ code: 'FL_ERR_OUTBOX_WRITE_FAILED' });
    expect(logger.events()).toContain('outbox.folder_sync_failed');
    await outbox.append('t', Buffer.from('m7'));
    await outbox.close();
    const reopened = await Outbox.open({ file });
    expect(payloads(reopened)).toEqual(['m4', 'm5', 'm7']);
    await reopened.close();
  });
});

describe('Outbox log after a power loss', () => {
  it('never loses the newest durable summary of a stream, whichever page of the next write survives', async () => {
    const file = path.join(tmpDir(), 'sp-1.outbox');
    const outbox = await Outbox.open({ file, compactAfterAcks: 1_000_000 });
    await outbox.append('t/s', Buffer.from('tick 1'), { stream: 's' });
    const durableEnd = outbox.fileBytes;
    await outbox.append('t/s', Buffer.from('tick 2'), { stream: 's' });
    await outbox.close();
    const log = readFileSync(file);
    // The lines of the second write, each lost in turn (its page never reached the disk: zeros).
    const lines: [number, number][] = [];
    for (let start = durableEnd; start < log.length; ) {
      const end = log.indexOf(10, start) + 1;
      lines.push([start, end - 1]);
      start = end;
    }
    expect(lines.length).toBeGreaterThan(0);
    for (const [start, end] of lines) {
      const copy = path.join(tmpDir(), 'copy.outbox');
      writeFileSync(copy, Buffer.concat([log.subarray(0, start), Buffer.alloc(end - start), log.subarray(end)]));
      const reopened = await Outbox.open({ file: copy });
      // A removal record of tick 1 kept without the add of tick 2 would leave the stream with nothing.
      expect(payloads(reopened)).toEqual([expect.stringMatching(/^tick [12]$/)]);
      await reopened.close();
    }
  });
});
