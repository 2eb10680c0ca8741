import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createMemoryLogger } from '@faultline/core/testing';
import { describe, expect, it } from 'vitest';
import { Outbox } from './outbox.js';

const tmpFile = () => path.join(mkdtempSync(path.join(os.tmpdir(), 'faultline-outbox-')), 'sub', 'p.outbox');
const payloads = (outbox: Outbox) => [...outbox.entries()].map((e) => e.payload.toString());

/** An outbox holding `ok-1`, closed, `text` appended to its file behind its back, and reopened with a memory logger. */
async function reopenAfterAppending(text: string) {
  const file = tmpFile();
  const outbox = await Outbox.open({ file });
  await outbox.append('t', Buffer.from('ok-1'));
  await outbox.close();
  appendFileSync(file, text);
  const logger = createMemoryLogger();
  return { file, logger, reopened: await Outbox.open({ file, logger }) };
}

describe('Outbox', () => {
  it('keeps its file mode 0600 (also after compaction) in a folder it creates 0700, whatever the umask', async () => {
    const file = tmpFile();
    const previous = process.umask(0o022);
    try {
      const outbox = await Outbox.open({ file, compactAfterAcks: 1 });
      const entry = await outbox.append('t', Buffer.from('m1'));
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
      outbox.ack(entry.seq);
      await outbox.append('t', Buffer.from('m2'));
      await outbox.close();
      const reopened = await Outbox.open({ file });
      await reopened.close();
      expect(statSync(file).mode & 0o777).toBe(0o600);
    } finally {
      process.umask(previous);
    }
  });

  it('keeps appended messages in order until acked, across a reopen', async () => {
    const file = tmpFile();
    const outbox = await Outbox.open({ file });
    const entries = await Promise.all(['m1', 'm2', 'm3'].map((m) => outbox.append('t', Buffer.from(m))));
    expect(entries.map((e) => e.seq)).toEqual([1, 2, 3]);
    outbox.ack(2);
    await outbox.close();
    const reopened = await Outbox.open({ file });
    expect(payloads(reopened)).toEqual(['m1', 'm3']);
    const next = await reopened.append('t', Buffer.from('m4'));
    expect(next.seq).toBe(4);
    await reopened.close();
  });

  it('is durable without close(): what append resolved is on disk', async () => {
    const file = tmpFile();
    const outbox = await Outbox.open({ file });
    await outbox.append('t', Buffer.from('{"x":"with\\nnewline and \\"quotes\\""}'));
    // No close: a crash right now. A second process reads the file.
    const other = await Outbox.open({ file: `${file}` });
    expect(payloads(other)).toEqual(['{"x":"with\\nnewline and \\"quotes\\""}']);
  });

  it('ignores a torn last line and counts corrupt lines', async () => {
    const { file, logger, reopened } = await reopenAfterAppending('garbage line\n{"k":"x"}\n{"a":9,"t":"t","p":"torn');
    expect(payloads(reopened)).toEqual(['ok-1']);
    expect(reopened.corruptLines).toBe(2);
    expect(logger.events()).toContain('outbox.torn_line');
    await reopened.close();
    expect(readFileSync(file, 'utf8').trim().split('\n')).toHaveLength(1);
  });

  it('counts a line that is JSON but no record as malformed', async () => {
    const { logger, reopened } = await reopenAfterAppending('5\nnull\n{"a":1.5,"t":"t","p":"x"}\n');
    expect(payloads(reopened)).toEqual(['ok-1']);
    expect(reopened.corruptLines).toBe(3);
    expect(logger.events()).toEqual(Array(3).fill('outbox.malformed_record'));
    await reopened.close();
  });

  it('compacts once acks pile up, keeping what is pending', async () => {
    const file = tmpFile();
    const outbox = await Outbox.open({ file, compactAfterAcks: 100 });
    const entries = await Promise.all(Array.from({ length: 250 }, (_, i) => outbox.append('t', Buffer.from(`m${i}`))));
    const before = statSync(file).size;
    for (const entry of entries.slice(0, 240)) outbox.ack(entry.seq);
    await outbox.append('t', Buffer.from('last'));
    await outbox.close();
    expect(statSync(file).size).toBeLessThan(before / 5);
    const reopened = await Outbox.open({ file });
    expect(payloads(reopened)).toEqual([...Array.from({ length: 10 }, (_, i) => `m${240 + i}`), 'last']);
  });

  it('refuses appends after close', async () => {
    const outbox = await Outbox.open({ file: tmpFile() });
    await outbox.close();
    await expect(outbox.append('t', Buffer.from('x'))).rejects.toMatchObject({ code: 'FL_ERR_CLOSED' });
  });

  it('removes the copy a compaction left when it was killed, which holds disk space', async () => {
    const file = tmpFile();
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(`${file}.tmp`, 'x'.repeat(10_000));
    const outbox = await Outbox.open({ file });
    expect(existsSync(`${file}.tmp`)).toBe(false);
    await outbox.close();
  });

  it('refuses options that cannot work, with the key named', async () => {
    const file = tmpFile();
    const refused = (key: string) =>
      expect.objectContaining({ code: 'FL_ERR_CONFIG_INVALID', issues: [expect.objectContaining({ key })] });
    await expect(Outbox.open({ file, compactionRetryMs: -1 })).rejects.toThrow(refused('compactionRetryMs'));
    await expect(Outbox.open({ file, compactionRetryMs: Number.NaN })).rejects.toThrow(refused('compactionRetryMs'));
    // A record the bound could never hold.
    await expect(Outbox.open({ file, maxBytes: 1_000, maxRecordBytes: 2_000 })).rejects.toThrow(
      refused('maxRecordBytes'),
    );
    // Left to its default, maxRecordBytes follows a small maxBytes.
    const small = await Outbox.open({ file, maxBytes: 1_000 });
    await expect(small.append('t', Buffer.alloc(1_500, 'x'))).rejects.toMatchObject({ code: 'FL_ERR_OUTBOX_FULL' });
    await small.close();
  });
});
