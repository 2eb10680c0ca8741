import { appendFileSync, mkdtempSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createMemoryLogger } from '@faultline/core/testing';
import { encodeEnvelope, topicOf } from '@faultline/protocol';
import { describe, expect, it } from 'vitest';
import { Outbox } from './outbox.js';
import { supersededStreamOfPayload } from './publisher-streams.js';
import { spLayout, spMemberFault, spTick } from './testing/index.js';

const tmpFile = () => path.join(mkdtempSync(path.join(os.tmpdir(), 'faultline-outbox-')), 'sp-1.outbox');
const payloads = (outbox: Outbox) => [...outbox.entries()].map((e) => e.payload.toString());
/** A record as the previous version wrote it: no stream. */
const legacy = (seq: number, topic: string, payload: string) => `${JSON.stringify({ a: seq, t: topic, p: payload })}\n`;

/** Past this many UTF-16 units a string cannot be made: a readFile of the whole log fails (ERR_STRING_TOO_LONG). */
const MAX_STRING_LENGTH = 0x1fff_ffe8;

describe('Outbox start-up reads the log streaming', () => {
  it('recovers a log larger than the longest string (and any read buffer), skipping the hole a crash left', async (ctx) => {
    const file = tmpFile();
    ctx.onTestFinished(() => rmSync(path.dirname(file), { recursive: true, force: true }));
    writeFileSync(file, legacy(1, 't', 'before'));
    // A region of zeros past the string limit, as a crash on a file system that allocated without writing leaves;
    // sparse, so it costs no disk.
    truncateSync(file, statSync(file).size + MAX_STRING_LENGTH + 1024 * 1024);
    appendFileSync(file, `\n${legacy(2, 't', 'after')}`);
    expect(statSync(file).size).toBeGreaterThan(MAX_STRING_LENGTH);
    const logger = createMemoryLogger();
    const outbox = await Outbox.open({ file, logger });
    expect(payloads(outbox)).toEqual(['before', 'after']);
    expect(outbox.counters.corruptRecords).toBe(1);
    expect(logger.events()).toContain('outbox.oversized_record');
    // Compacted at start-up: the hole is gone.
    expect(statSync(file).size).toBeLessThan(1024);
    await outbox.append('t', Buffer.from('next'));
    await outbox.close();
  }, 60_000);

  it('reads records across chunk boundaries, multi-byte characters split included', async () => {
    const file = tmpFile();
    const texts = Array.from({ length: 50 }, (_, i) => `${i}:${'é€😀'.repeat(i)}${'x'.repeat(i * 7)}`);
    writeFileSync(file, texts.map((text, i) => legacy(i + 1, 't', text)).join(''));
    const outbox = await Outbox.open({ file, readChunkBytes: 7, maxRecordBytes: 4096 });
    expect(payloads(outbox)).toEqual(texts);
    expect(outbox.counters.corruptRecords).toBe(0);
    await outbox.close();
  });

  it('skips a record over maxRecordBytes without buffering it, and counts it', async () => {
    const file = tmpFile();
    writeFileSync(file, [legacy(1, 't', 'm1'), legacy(2, 't', 'y'.repeat(500)), legacy(3, 't', 'm3')].join(''));
    const logger = createMemoryLogger();
    const outbox = await Outbox.open({ file, readChunkBytes: 16, maxRecordBytes: 100, logger });
    expect(payloads(outbox)).toEqual(['m1', 'm3']);
    expect(outbox.counters.corruptRecords).toBe(1);
    expect(logger.events()).toEqual(['outbox.oversized_record']);
    await outbox.close();
  });

  it('coalesces an older version’s outbox of many ticks to the newest tick, keeping every MemberFault', async () => {
    const file = tmpFile();
    const layout = spLayout(3_000, 2);
    const lines: string[] = [];
    let seq = 0;
    const faults: string[] = [];
    for (let tick = 1; tick <= 30; tick++) {
      for (const envelope of spTick(layout, tick * 15_000)) {
        lines.push(legacy(++seq, topicOf(envelope), encodeEnvelope(envelope).toString()));
      }
      const fault = spMemberFault(layout, tick, tick * 15_000);
      faults.push(fault.id);
      lines.push(legacy(++seq, topicOf(fault), encodeEnvelope(fault).toString()));
    }
    writeFileSync(file, lines.join(''));
    const before = statSync(file).size;
    const outbox = await Outbox.open({ file, streamOf: supersededStreamOfPayload, readChunkBytes: 64 * 1024 });
    const held = [...outbox.entries()].map((e) => JSON.parse(e.payload.toString()) as { id: string; type: string });
    const lastTick = spTick(layout, 30 * 15_000).map((e) => e.id);
    expect(held.filter((e) => e.type === 'MemberFaultEvent').map((e) => e.id)).toEqual(faults);
    expect(held.filter((e) => e.type !== 'MemberFaultEvent').map((e) => e.id)).toEqual(lastTick);
    expect(outbox.counters.coalesced).toBe(29 * lastTick.length);
    await outbox.close();
    expect(statSync(file).size).toBeLessThan(before / 20);
  });
});
