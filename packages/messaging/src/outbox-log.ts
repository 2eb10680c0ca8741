import type { Logger } from '@faultline/core';
import { z } from 'zod';
import { type OutboxFileHandle, readLines } from './outbox-file.js';
import type { OutboxHoldings } from './outbox-holdings.js';
import type { StreamOf } from './outbox-options.js';

/** What the outbox did besides keeping messages (PublisherCounters repeats them). */
export interface OutboxCounters {
  /** Records superseded by a newer one of their stream before they were sent. */
  coalesced: number;
  /** Records of a stream dropped, oldest first, to stay within maxBytes. */
  droppedOverflow: number;
  /** Appends refused: a summary once only precious records are left, anything past hardMaxBytes held or waiting for the disk, or over maxRecordBytes. */
  refusedOverflow: number;
  /** Writes (each a group of appends) that failed or were short: their appends were rejected. */
  writeFailed: number;
  compactionsFailed: number;
  /** Lines skipped at start-up: unreadable, malformed or longer than maxRecordBytes. */
  corruptRecords: number;
  /** Start-ups that found a torn last record (a write cut off by a crash or a full disk). */
  tornTails: number;
}

/**
 * One line of the log: an added message (`a` seq, `t` topic, `p` payload,
 * `s` its stream, '' for none; absent in an older version's records) or the
 * removal of one (`k` seq: acked, superseded or dropped). Seqs are safe integers.
 */
const lineSchema = z.union([
  z.object({ a: z.int(), t: z.string(), p: z.string(), s: z.string().optional() }),
  z.object({ k: z.int() }),
]);

export const recordOf = (seq: number, topic: string, payload: Buffer, stream: string): string =>
  JSON.stringify({ a: seq, t: topic, p: payload.toString('utf8'), s: stream });

export const removalOf = (seq: number): string => `{"k":${seq}}`;

/** Corrupt records logged one by one at start-up; the rest are counted in one line. */
const RECOVERY_LOG_LIMIT = 10;

export interface LogReadOptions {
  file: string;
  readChunkBytes: number;
  maxRecordBytes: number;
  /**
   * maxBytes is applied once the whole log is read (applied record by record,
   * it dropped summaries the live outbox kept), and on the way only past this.
   */
  replayCeilingBytes: number;
  streamOf?: StreamOf | undefined;
  logger: Logger;
}

export interface LogRead {
  /** Where the last whole line ends. */
  end: number;
  /** Bytes past `end` (a torn last record) are in the file. */
  torn: boolean;
  maxSeq: number;
}

/**
 * Replays the log into `held`, a chunk at a time (never the whole file: past
 * 512 MiB a readFile throws ERR_STRING_TOO_LONG, and the service could not
 * start). A torn last record and corrupt lines are skipped, counted and
 * logged; what the policy coalesces or drops is counted.
 */
export async function readLog(
  handle: OutboxFileHandle,
  o: LogReadOptions,
  held: OutboxHoldings,
  counters: OutboxCounters,
): Promise<LogRead> {
  const { file, logger: log } = o;
  const result: LogRead = { end: 0, torn: false, maxSeq: 0 };
  let lineNo = 0;
  const skipped: Record<string, number> = {};
  const skip = (event: string, message: string, start: number, end: number) => {
    counters.corruptRecords += 1;
    skipped[event] = (skipped[event] ?? 0) + 1;
    if (counters.corruptRecords <= RECOVERY_LOG_LIMIT) {
      log.warn(message, { event, file, line: lineNo, offset: start, bytes: end - start });
    }
  };
  for await (const read of readLines(handle, o.readChunkBytes, o.maxRecordBytes)) {
    if (read.kind === 'torn') {
      counters.tornTails += 1;
      result.torn = true;
      log.warn('outbox: ignoring a torn last line', {
        event: 'outbox.torn_line',
        file,
        offset: read.start,
        bytes: read.end - read.start,
      });
      continue;
    }
    lineNo += 1;
    result.end = read.end;
    if (read.kind === 'oversized') {
      skip('outbox.oversized_record', 'outbox: record over maxRecordBytes skipped', read.start, read.end);
      continue;
    }
    if (read.text === '') continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(read.text);
    } catch {
      skip('outbox.unreadable_line', 'outbox: unreadable line skipped', read.start, read.end);
      continue;
    }
    const checked = lineSchema.safeParse(parsed);
    if (!checked.success) {
      skip('outbox.malformed_record', 'outbox: malformed record skipped', read.start, read.end);
      continue;
    }
    const line = checked.data;
    if ('k' in line) {
      held.remove(line.k);
      result.maxSeq = Math.max(result.maxSeq, line.k);
      continue;
    }
    const payload = Buffer.from(line.p, 'utf8');
    // An older version's record has no stream: classified now; rewritten, it grows by `,"s":…`.
    const stream = line.s ?? o.streamOf?.(line.t, payload) ?? '';
    const bytes = read.end - read.start + (line.s === undefined ? ',"s":'.length + JSON.stringify(stream).length : 0);
    counters.coalesced += held.admit({ seq: line.a, topic: line.t, payload, stream, bytes, attempts: 0 }).coalesced;
    // Memory stays bounded whatever the log (one written under a larger bound, or by an older version).
    if (held.bytes > o.replayCeilingBytes) counters.droppedOverflow += held.shed();
    result.maxSeq = Math.max(result.maxSeq, line.a);
  }
  counters.droppedOverflow += held.shed();
  if (counters.corruptRecords > RECOVERY_LOG_LIMIT) {
    log.warn('outbox: more corrupt records skipped than logged', {
      event: 'outbox.corrupt_records',
      file,
      corruptRecords: counters.corruptRecords,
      ...skipped,
    });
  }
  return result;
}
