import { type Clock, DEFAULTS, type Logger } from '@faultline/core';
import { OutboxFullError } from './outbox-file.js';
import type { OutboxEntry } from './outbox-holdings.js';
import type { OutboxCounters } from './outbox-log.js';

export interface OutboxReportOptions {
  file: string;
  maxBytes: number;
  hardMaxBytes: number;
  maxRecordBytes: number;
  clock: Clock;
  logger: Logger;
}

/**
 * What the outbox tells about itself: its counters, and the log lines of
 * what it refused, dropped or failed to do, each event paced (at most once
 * per `DEFAULTS.badInputLogIntervalMs`, with how many were left out since),
 * so a full disk or a flood of refusals does not flood the log.
 */
export class OutboxReport {
  readonly counters: OutboxCounters = {
    coalesced: 0,
    droppedOverflow: 0,
    refusedOverflow: 0,
    writeFailed: 0,
    compactionsFailed: 0,
    corruptRecords: 0,
    tornTails: 0,
  };
  private readonly pacing = new Map<string, { at: number; suppressed: number }>();
  /** Monotonic time of the first of the writes failing since the last that worked. */
  private failingSince: number | undefined;

  constructor(private readonly o: OutboxReportOptions) {}

  fullError(entry: OutboxEntry, boundBytes: number, held: number): OutboxFullError {
    return new OutboxFullError({
      file: this.o.file,
      bytes: held,
      recordBytes: entry.bytes,
      boundBytes,
      precious: entry.stream === '',
    });
  }

  /** An append refused at once: larger than maxRecordBytes. */
  tooLarge(entry: OutboxEntry, held: number): OutboxFullError {
    this.counters.refusedOverflow += 1;
    const error = this.fullError(entry, this.o.maxRecordBytes, held);
    this.o.logger.error('outbox: a record larger than maxRecordBytes refused', {
      event: 'outbox.record_too_large',
      ...error.context,
    });
    return error;
  }

  /** An append refused at once: hardMaxBytes of appends already wait for the disk. */
  queueFull(entry: OutboxEntry, held: number, queuedBytes: number): OutboxFullError {
    this.counters.refusedOverflow += 1;
    const error = this.fullError(entry, this.o.hardMaxBytes, held);
    this.paced('error', 'outbox.queue_full', 'outbox: appends waiting for the disk are at hardMaxBytes: refused', {
      ...error.context,
      queuedBytes,
      refusedOverflow: this.counters.refusedOverflow,
    });
    return error;
  }

  /** Adds the overflow policy refused. */
  refused(entries: OutboxEntry[], held: number): void {
    if (entries.length === 0) return;
    this.counters.refusedOverflow += entries.length;
    const precious = entries.filter((e) => e.stream === '').length;
    const fields = {
      refused: entries.length,
      refusedOverflow: this.counters.refusedOverflow,
      bytes: held,
      maxBytes: this.o.maxBytes,
      hardMaxBytes: this.o.hardMaxBytes,
    };
    if (precious > 0) {
      this.paced('error', 'outbox.full', 'outbox full of MemberFaults and actions: appends refused', {
        ...fields,
        precious,
      });
    }
    if (precious < entries.length) {
      this.paced(
        'warn',
        'outbox.overflow_refused',
        'outbox over maxBytes with nothing left to drop: summaries refused',
        {
          ...fields,
          refused: entries.length - precious,
        },
      );
    }
  }

  /** Summaries the overflow policy dropped, oldest first. */
  dropped(count: number, held: number): void {
    if (count === 0) return;
    this.counters.droppedOverflow += count;
    this.paced('warn', 'outbox.overflow_dropped', 'outbox over maxBytes: dropped the oldest summaries', {
      dropped: count,
      droppedOverflow: this.counters.droppedOverflow,
      bytes: held,
      maxBytes: this.o.maxBytes,
    });
  }

  writeFailed(error: unknown, adds: number, tornTailLeft: boolean): void {
    this.counters.writeFailed += 1;
    this.failingSince ??= this.o.clock.monotonicNow();
    this.paced('error', 'outbox.write_failed', 'outbox write failed: its messages are not durable', {
      adds,
      tornTailLeft,
      writeFailed: this.counters.writeFailed,
      error,
    });
  }

  /** A write went through: logged once after failures. */
  writeWorked(): void {
    if (this.failingSince === undefined) return;
    this.o.logger.info('outbox writes again', {
      event: 'outbox.write_recovered',
      file: this.o.file,
      failedForMs: Math.round(this.o.clock.monotonicNow() - this.failingSince),
      writeFailed: this.counters.writeFailed,
    });
    this.failingSince = undefined;
  }

  compactionFailed(error: unknown, fileBytes: number, retryInMs: number): void {
    this.counters.compactionsFailed += 1;
    this.o.logger.error('outbox compaction failed: appending to the log as it is, retrying later', {
      event: 'outbox.compaction_failed',
      file: this.o.file,
      fileBytes,
      retryInMs,
      compactionsFailed: this.counters.compactionsFailed,
      error,
    });
  }

  private paced(level: 'warn' | 'error', event: string, message: string, fields: Record<string, unknown>): void {
    const now = this.o.clock.monotonicNow();
    const last = this.pacing.get(event);
    if (last && now - last.at < DEFAULTS.badInputLogIntervalMs) {
      last.suppressed += 1;
      return;
    }
    this.pacing.set(event, { at: now, suppressed: 0 });
    this.o.logger[level](message, { event, file: this.o.file, ...fields, suppressed: last?.suppressed ?? 0 });
  }
}
