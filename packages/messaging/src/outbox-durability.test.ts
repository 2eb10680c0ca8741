import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createMemoryLogger } from '@faultline/core/testing';
import { describe, expect, it, vi } from 'vitest';
import { Outbox } from './outbox.js';
import { LimitedFileSystem } from './testing/index.js';

/*
 * "Robust under strain": on a full tmpfs a write returned 4 095 of 16 124
 * bytes with no error; the add resolved, later appends were glued onto the
 * torn fragment, and both were lost at recovery. One failed compaction
 * rejected the write chain for good, and a failed start-up compaction made
 * the service crash-loop.
 */

const tmpDir = () => mkdtempSync(path.join(os.tmpdir(), 'faultline-outbox-'));
const payloads = (outbox: Outbox) => [...outbox.entries()].map((e) => e.payload.toString());
/** `<n>:<length>` of each payload: what a failure prints, rather than 16 KB of x. */
const brief = (texts: string[]) => texts.map((t) => `${t.split(':')[0]}:${t.length}`);

/** Sizes like the SP's: member summaries of ~16 KB among small MemberFaults. */
const payloadOf = (i: number) => `${i}:${'x'.repeat(i % 3 === 0 ? 16_124 : 300 + i)}`;

/** Resolves what `promise` resolves, or rejects after `ms` real milliseconds (an append that hangs fails the test). */
function within<T>(promise: Promise<T>, ms = 2_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/**
 * Appends until the file system is full and a few past it, then frees room
 * (`free()`) and appends again. Every add that resolved must come back intact
 * from the file, and those made after the room came back must not be glued
 * onto what a failed write left: read from a copy on a roomy disk first (what
 * is on the full one), then by a reopen in place, whose start-up compaction
 * finds no room for its copy.
 */
async function fillThenRecover(file: string, open: () => Promise<Outbox>, free: () => void) {
  const outbox = await open();
  const durable: string[] = [];
  const failures: unknown[] = [];
  const add = async (i: number) => {
    try {
      await within(outbox.append('t', Buffer.from(payloadOf(i))));
      durable.push(payloadOf(i));
    } catch (error) {
      failures.push(error);
    }
  };
  for (let i = 0; i < 40; i++) await add(i);
  free();
  for (let i = 40; i < 44; i++) await add(i);
  await outbox.close();
  const copy = path.join(tmpDir(), 'copy.outbox');
  copyFileSync(file, copy);
  const fromCopy = await Outbox.open({ file: copy });
  const recoveredCopy = brief(payloads(fromCopy));
  await fromCopy.close();
  let recoveredInPlace: string[] | Error;
  try {
    const reopened = await within(open());
    recoveredInPlace = brief(payloads(reopened));
    await reopened.close();
  } catch (error) {
    recoveredInPlace = error as Error;
  }
  return { durable: brief(durable), failures, recoveredCopy, recoveredInPlace };
}

describe('Outbox on a file system that fills', () => {
  it('a tmpfs of 64 KiB: every add that resolved is recovered intact, later ones are not glued onto a fragment', async (ctx) => {
    const dir = tmpDir();
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir], { stdio: 'pipe' });
    } catch (error) {
      rmdirSync(dir);
      ctx.skip(`cannot mount a tmpfs here (needs root and mount rights): ${(error as Error).message.split('\n')[0]}`);
    }
    try {
      const file = path.join(dir, 'out', 'sp-1.outbox');
      // Room another file takes, freed once the outbox has hit the limit (a log rotated away).
      const filler = path.join(dir, 'filler');
      writeFileSync(filler, Buffer.alloc(20 * 1024));
      const run = await fillThenRecover(
        file,
        () => Outbox.open({ file, compactAfterAcks: 1_000_000 }),
        () => rmSync(filler),
      );
      expect(run.failures.length).toBeGreaterThan(0);
      expect(run.recoveredCopy).toEqual(run.durable);
      expect(run.recoveredInPlace).toEqual(run.durable);
      expect(new Set(run.failures.map((e) => (e as { code?: string }).code))).toEqual(
        new Set(['FL_ERR_OUTBOX_WRITE_FAILED']),
      );
      // Adds made after room came back are there too.
      expect(run.durable.some((p) => p.startsWith('40:'))).toBe(true);
    } finally {
      execFileSync('umount', [dir]);
      rmdirSync(dir);
    }
  });

  it('an injected file system of 64 KiB that writes short: the same, and the short write is counted', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'sp-1.outbox');
    const fs = new LimitedFileSystem(64 * 1024);
    const logger = createMemoryLogger();
    const run = await fillThenRecover(
      file,
      () => Outbox.open({ file, compactAfterAcks: 1_000_000, fs, logger }),
      () => {
        fs.capacityBytes += 20 * 1024;
      },
    );
    expect(fs.shortWrites).toBeGreaterThan(0);
    expect(run.failures.length).toBeGreaterThan(0);
    expect(run.recoveredCopy).toEqual(run.durable);
    expect(run.recoveredInPlace).toEqual(run.durable);
    expect(new Set(run.failures.map((e) => (e as { code?: string }).code))).toEqual(
      new Set(['FL_ERR_OUTBOX_WRITE_FAILED']),
    );
    expect(run.durable.some((p) => p.startsWith('40:'))).toBe(true);
    expect(logger.events()).toContain('outbox.write_failed');
    expect(logger.events()).toContain('outbox.write_recovered');
  });

  it('a failed fsync fails the add, and its record does not come back', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'sp-1.outbox');
    const fs = new LimitedFileSystem(1024 * 1024);
    const outbox = await Outbox.open({ file, fs });
    await outbox.append('t', Buffer.from('before'));
    fs.failNext('datasync');
    await expect(outbox.append('t', Buffer.from('not durable'))).rejects.toMatchObject({
      code: 'FL_ERR_OUTBOX_WRITE_FAILED',
    });
    await outbox.append('t', Buffer.from('after'));
    expect(outbox.counters.writeFailed).toBe(1);
    await outbox.close();
    const reopened = await Outbox.open({ file });
    expect(payloads(reopened)).toEqual(['before', 'after']);
    await reopened.close();
  });

  it('a fragment it cannot cut off at once is cut before the next write; until then appends fail', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'sp-1.outbox');
    const fs = new LimitedFileSystem(1024);
    const outbox = await Outbox.open({ file, fs, compactAfterAcks: 1_000_000 });
    await outbox.append('t', Buffer.from('a'.repeat(500)));
    fs.failNext('truncate');
    await expect(outbox.append('t', Buffer.from('b'.repeat(800)))).rejects.toMatchObject({
      code: 'FL_ERR_OUTBOX_WRITE_FAILED',
    });
    // The short write's fragment is still there: it is cut first, then this record written whole.
    expect(statSync(file).size).toBe(1024);
    fs.capacityBytes = 4096;
    await outbox.append('t', Buffer.from('c'));
    await outbox.close();
    const reopened = await Outbox.open({ file });
    expect(payloads(reopened)).toEqual(['a'.repeat(500), 'c']);
    expect(reopened.counters.corruptRecords).toBe(0);
    await reopened.close();
  });
});

describe('Outbox write that fails, and what it leaves to do', () => {
  it('counts an add the policy refused in a group whose write failed', async () => {
    const fs = new LimitedFileSystem(1024 * 1024);
    const record = JSON.stringify({ a: 1, t: 't', p: 'x'.repeat(100), s: '' }).length + 1;
    const outbox = await Outbox.open({ file: path.join(tmpDir(), 'sp-1.outbox'), fs, maxBytes: 2 * record + 10 });
    for (const m of ['F1', 'F2']) await outbox.append('t', Buffer.from(m.padEnd(100, 'x')));
    fs.failNext('write');
    const [summary, fault] = await Promise.allSettled([
      outbox.append('t', Buffer.from('S'.padEnd(100, 'x')), { stream: 's' }),
      outbox.append('t', Buffer.from('F3'.padEnd(100, 'x'))),
    ]);
    expect(summary).toMatchObject({ status: 'rejected', reason: { code: 'FL_ERR_OUTBOX_FULL' } });
    expect(fault).toMatchObject({ status: 'rejected', reason: { code: 'FL_ERR_OUTBOX_WRITE_FAILED' } });
    expect(outbox.counters).toMatchObject({ refusedOverflow: 1, writeFailed: 1 });
    await outbox.close();
  });

  it('keeps the removals of a failed write, however many, and writes them on its own a while later', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'sp-1.outbox');
    const fs = new LimitedFileSystem(1024 * 1024 * 1024);
    const logger = createMemoryLogger();
    const outbox = await Outbox.open({ file, fs, compactAfterAcks: 1_000_000, compactionRetryMs: 100, logger });
    await outbox.append('t', Buffer.from('keep'));
    // More than a spread into unshift() can take (its arguments overflow the stack past ~120 000).
    const acked = await Promise.all(Array.from({ length: 200_000 }, (_, i) => outbox.append('t', Buffer.from(`${i}`))));
    // The compaction (the only other way the log loses them) cannot write its copy.
    mkdirSync(`${file}.tmp`);
    fs.failNext('write');
    for (const entry of acked) outbox.ack(entry.seq);
    await vi.waitFor(() => expect(outbox.counters.writeFailed).toBe(1));
    const before = outbox.fileBytes;
    // No other ack or add comes: the removals are written anyway, after compactionRetryMs.
    await vi.waitFor(() => expect(outbox.fileBytes).toBeGreaterThan(before), { timeout: 5_000 });
    expect(logger.events()).not.toContain('outbox.unexpected_failure');
    await outbox.close();
    rmdirSync(`${file}.tmp`);
    const reopened = await Outbox.open({ file });
    expect(payloads(reopened)).toEqual(['keep']);
    await reopened.close();
  }, 30_000);
});

describe('Outbox compaction that fails', () => {
  it('is followed by a working append, and retried later', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'sp-1.outbox');
    const logger = createMemoryLogger();
    const outbox = await Outbox.open({ file, compactAfterAcks: 2, compactionRetryMs: 0, logger });
    // Compaction cannot write its copy: a folder stands where the copy goes.
    mkdirSync(`${file}.tmp`);
    const entries = await Promise.all(['m1', 'm2', 'm3'].map((m) => within(outbox.append('t', Buffer.from(m)))));
    outbox.ack(entries[0]?.seq as number);
    outbox.ack(entries[1]?.seq as number);
    outbox.ack(entries[2]?.seq as number);
    await within(outbox.append('t', Buffer.from('m4')));
    // The first append after the failed compaction works.
    await within(outbox.append('t', Buffer.from('m5')));
    const sizeBefore = statSync(file).size;
    expect(logger.events()).toContain('outbox.compaction_failed');
    rmdirSync(`${file}.tmp`);
    const m6 = await within(outbox.append('t', Buffer.from('m6')));
    outbox.ack(m6.seq);
    await within(outbox.append('t', Buffer.from('m7')));
    await outbox.close();
    // Compacted this time: only m4, m5 and m7 are left in it.
    expect(statSync(file).size).toBeLessThan(sizeBefore);
    const reopened = await Outbox.open({ file });
    expect(payloads(reopened)).toEqual(['m4', 'm5', 'm7']);
    await reopened.close();
  });

  it('at start-up does not stop the outbox from opening, recovering and appending', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'sp-1.outbox');
    const outbox = await Outbox.open({ file });
    for (const m of ['m1', 'm2']) await outbox.append('t', Buffer.from(m));
    await outbox.close();
    mkdirSync(`${file}.tmp`);
    const logger = createMemoryLogger();
    const reopened = await within(Outbox.open({ file, logger }));
    expect(payloads(reopened)).toEqual(['m1', 'm2']);
    expect(logger.events()).toContain('outbox.compaction_failed');
    await within(reopened.append('t', Buffer.from('m3')));
    await reopened.close();
    rmdirSync(`${file}.tmp`);
    const again = await Outbox.open({ file });
    expect(payloads(again)).toEqual(['m1', 'm2', 'm3']);
    await again.close();
  });

  it('a failed rename (injected) leaves the log as it was and appends going to it', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'sp-1.outbox');
    const fs = new LimitedFileSystem(1024 * 1024);
    const outbox = await Outbox.open({ file, fs, compactAfterAcks: 1, compactionRetryMs: 60_000 });
    const acked = await Promise.all(['m1', 'm2', 'm3'].map((m) => outbox.append('t', Buffer.from(m))));
    fs.failNext('rename');
    for (const entry of acked) outbox.ack(entry.seq);
    await outbox.append('t', Buffer.from('m4'));
    await outbox.append('t', Buffer.from('m5'));
    expect(outbox.counters.compactionsFailed).toBe(1);
    await outbox.close();
    const reopened = await Outbox.open({ file });
    expect(payloads(reopened)).toEqual(['m4', 'm5']);
    await reopened.close();
  });
});

describe('Outbox recovery of a damaged log', () => {
  it('skips a torn or corrupt record with a counted log line, and appends after the last whole one', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'sp-1.outbox');
    writeFileSync(
      file,
      [
        JSON.stringify({ a: 1, t: 't', p: 'm1' }),
        `{"a":2,"t":"t","p":"m2-torn{"a":3,"t":"t","p":"glued"}`,
        JSON.stringify({ a: 4, t: 't', p: 'm4' }),
        '{"a":5,"t":"t","p":"torn tail',
      ].join('\n'),
    );
    // The folder holds the copy compaction needs: start-up keeps the log and appends to it.
    mkdirSync(`${file}.tmp`);
    const logger = createMemoryLogger();
    const outbox = await Outbox.open({ file, logger });
    expect(payloads(outbox)).toEqual(['m1', 'm4']);
    expect(outbox.counters).toMatchObject({ corruptRecords: 1, tornTails: 1 });
    expect(logger.events()).toEqual(
      expect.arrayContaining(['outbox.unreadable_line', 'outbox.torn_line', 'outbox.compaction_failed']),
    );
    await outbox.append('t', Buffer.from('m6'));
    await outbox.close();
    rmdirSync(`${file}.tmp`);
    const reopened = await Outbox.open({ file });
    expect(payloads(reopened)).toEqual(['m1', 'm4', 'm6']);
    expect(reopened.counters.tornTails).toBe(0);
    await reopened.close();
  });
});
