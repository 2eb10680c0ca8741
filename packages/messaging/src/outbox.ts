import path from 'node:path';
import { ClosedError, mkdirPrivate, type TimerHandle } from '@faultline/core';
import {
  type OutboxFileHandle,
  OutboxWriteError,
  pieces,
  READ_WRITE_CREATE,
  syncFolder,
  writeFully,
} from './outbox-file.js';
import { type OutboxEntry, OutboxHoldings, type Plan } from './outbox-holdings.js';
import { type OutboxCounters, readLog, recordOf, removalOf } from './outbox-log.js';
import { type OutboxOptions, type ResolvedOutboxOptions, resolveOutboxOptions } from './outbox-options.js';
import { OutboxReport } from './outbox-report.js';

export type { OutboxEntry } from './outbox-holdings.js';
export type { OutboxCounters } from './outbox-log.js';

export interface AppendOptions {
  /** A record of a stream is superseded by the next of the same stream, and may be dropped past maxBytes. */
  stream?: string;
}

/** Compaction waits until the records that left take this much at least, and more than those held. */
const COMPACT_MIN_DEAD_BYTES = 1024 * 1024;

type Add = { entry: OutboxEntry; line: Buffer; resolve: (e: OutboxEntry) => void; reject: (e: unknown) => void };

/**
 * The publisher's durable outbox, bounded and honest (README "Bounded
 * outbox"): an append-only JSON-lines log on disk. A message is added with
 * fsync before its append() resolves, and leaves when a broker acknowledged
 * it, when a newer record of its stream supersedes it, or when the overflow
 * policy drops it; records without a stream (MemberFaults, actions) leave
 * only on an ack. Appends arriving together share one write and one fsync
 * (group commit). A write is checked whole: a short or failed one rejects its
 * appends and is cut off the file, so nothing is glued onto a fragment.
 * Removal records are written without fsync: losing one means one extra
 * resend, which consumers dedupe by envelope id. A group's removals go before
 * its adds, and a superseded record gets none (start-up coalesces by stream):
 * a power loss that kept a removal without the add that superseded it would
 * lose the newest durable record of that stream. Appends waiting for the
 * disk are bounded too (hardMaxBytes). Start-up reads the file a chunk at a
 * time, whatever its size, and compacts it; a failed compaction leaves the
 * outbox working and is retried later.
 */
export class Outbox {
  private readonly held: OutboxHoldings;
  private handle: OutboxFileHandle | undefined;
  /** Where the file's last whole record ends; the next write goes there. */
  private end = 0;
  /** Bytes past `end` may be in the file (a write failed): cut them off before the next write. */
  private tornTail = false;
  private nextSeq = 1;
  private io: Promise<void> = Promise.resolve();
  private flushQueued = false;
  private adds: Add[] = [];
  /** Bytes of `adds`: appends waiting for the disk are refused past hardMaxBytes. */
  private queuedBytes = 0;
  private removals: number[] = [];
  /** Removals of a failed write are written again this long after, should nothing else come. */
  private retryTimer: TimerHandle | undefined;
  /**
   * A compaction renamed its copy over the log, but the folder's fsync
   * failed: a crash could bring the old log back, without what was added
   * since. The next durable write fsyncs the folder first, or fails.
   */
  private folderSyncPending = false;
  private removedSinceCompaction = 0;
  private compactRetryAt = Number.NEGATIVE_INFINITY;
  private closed = false;
  private readonly report: OutboxReport;
  readonly counters: OutboxCounters;

  private constructor(private readonly o: ResolvedOutboxOptions) {
    this.held = new OutboxHoldings(o);
    this.report = new OutboxReport(o);
    this.counters = this.report.counters;
  }

  private get pending(): ReadonlyMap<number, OutboxEntry> {
    return this.held.pending;
  }

  static async open(input: OutboxOptions): Promise<Outbox> {
    const outbox = new Outbox(resolveOutboxOptions(input));
    // What services published is for the platform's user only: a created folder 0700, the file 0600.
    mkdirPrivate(path.dirname(outbox.o.file));
    await outbox.recover();
    return outbox;
  }

  get size(): number {
    return this.pending.size;
  }

  /** Bytes of the records held (what maxBytes bounds). */
  get bytes(): number {
    return this.held.bytes;
  }

  /** Bytes of the file: the records held, and those that left since the last compaction. */
  get fileBytes(): number {
    return this.end;
  }

  /** Lines that could not be read at open (not counting a torn last line). */
  get corruptLines(): number {
    return this.counters.corruptRecords;
  }

  has(seq: number): boolean {
    return this.pending.has(seq);
  }

  /** Pending entries, oldest first. */
  entries(): IterableIterator<OutboxEntry> {
    return this.pending.values();
  }

  /**
   * Resolves once the message is on disk (fsync'd); rejects when it is not:
   * OutboxWriteError (the write failed or was short), OutboxFullError (the
   * overflow policy refused it). A record of `options.stream` supersedes the
   * pending one of that stream.
   */
  append(topic: string, payload: Buffer, options: AppendOptions = {}): Promise<OutboxEntry> {
    if (this.closed) return Promise.reject(new ClosedError('outbox'));
    const stream = options.stream ?? '';
    const seq = this.nextSeq++;
    // As bytes at once: a summary's record, held until its group is written, is no 64 KiB string for the GC to copy.
    const line = Buffer.from(recordOf(seq, topic, payload, stream));
    const entry: OutboxEntry = { seq, topic, payload, stream, bytes: line.length + 1, attempts: 0 };
    if (entry.bytes > this.o.maxRecordBytes) return Promise.reject(this.report.tooLarge(entry, this.held.bytes));
    // A stalled disk must not let appends pile up in memory without bound.
    if (this.queuedBytes + entry.bytes > this.o.hardMaxBytes) {
      return Promise.reject(this.report.queueFull(entry, this.held.bytes, this.queuedBytes));
    }
    this.queuedBytes += entry.bytes;
    return new Promise((resolve, reject) => {
      this.adds.push({ entry, line, resolve, reject });
      this.scheduleFlush();
    });
  }

  /** A broker acknowledged `seq`: it leaves the outbox. */
  ack(seq: number): void {
    if (!this.held.remove(seq) || this.closed) return;
    this.removals.push(seq);
    this.scheduleFlush();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.o.clock.clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.scheduleFlush();
    await this.io;
    await this.handle?.close().catch((error: unknown) => {
      this.log.warn('outbox: closing the file failed', { event: 'outbox.close_failed', file: this.o.file, error });
    });
    this.handle = undefined;
  }

  private get log() {
    return this.o.logger;
  }

  private scheduleFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    // Never rejects: a failure is reported to the appends it concerns, and the next flush runs.
    this.io = this.io
      .then(() => this.flush())
      .catch((error: unknown) => {
        this.log.error('outbox: unexpected failure', { event: 'outbox.unexpected_failure', file: this.o.file, error });
      });
  }

  private async flush(): Promise<void> {
    this.flushQueued = false;
    const adds = this.adds;
    const removals = this.removals;
    this.adds = [];
    this.queuedBytes = 0;
    this.removals = [];
    if (adds.length > 0 || removals.length > 0) await this.commit(adds, removals);
    await this.maybeCompact();
  }

  /**
   * Writes one group: the acks and the records its adds drop, then the adds
   * the policy admits. Removals first, so a replay never holds an acked
   * record alongside the adds that took its room (start-up applies maxBytes
   * once the log is read; its memory stays near the live outbox's). A
   * superseded record gets no removal (see the class).
   */
  private async commit(adds: Add[], removals: number[]): Promise<void> {
    const { planned, evicted, refused } = this.held.plan(adds);
    const written = planned.filter((p) => p.fate === 'written');
    const dropped = evicted.filter((e) => e.reason === 'dropped');
    const lines = [
      ...removals.map(removalOf),
      ...dropped.map(({ entry }) => removalOf(entry.seq)),
      ...written.map((p) => p.add.line),
    ];
    if (lines.length > 0) {
      try {
        await this.writeRecords(lines, written.length > 0);
      } catch (cause) {
        this.report.writeFailed(cause, written.length, this.tornTail);
        const error = new OutboxWriteError(this.o.file, cause);
        for (const { add } of planned) add.reject(error);
        this.refuse(refused);
        this.retryRemovals(removals);
        return;
      }
    }
    let droppedCount = 0;
    for (const { entry, reason } of evicted) {
      if (!this.held.remove(entry.seq)) continue;
      if (reason === 'superseded') this.counters.coalesced += 1;
      else droppedCount += 1;
    }
    for (const { add, fate } of planned) {
      if (fate === 'written') this.held.insert(add.entry);
      else if (fate === 'superseded') this.counters.coalesced += 1;
      else droppedCount += 1;
      add.resolve(add.entry);
    }
    this.removedSinceCompaction += evicted.length + removals.length;
    this.report.dropped(droppedCount, this.held.bytes);
    this.refuse(refused);
  }

  private refuse(refused: Plan<Add>['refused']): void {
    for (const r of refused) r.add.reject(this.report.fullError(r.add.entry, r.boundBytes, r.held));
    this.report.refused(
      refused.map((r) => r.add.entry),
      this.held.bytes,
    );
  }

  /**
   * Removals whose write failed are written with the next group, or on their
   * own after compactionRetryMs (not at once: a full disk would spin). A
   * concat, not unshift(...): spread, 150 000 of them overflow the stack.
   */
  private retryRemovals(removals: number[]): void {
    if (removals.length === 0 || this.closed) return;
    this.removals = removals.concat(this.removals);
    this.retryTimer ??= this.o.clock.setTimeout(() => {
      this.retryTimer = undefined;
      if (!this.closed && this.removals.length > 0) this.scheduleFlush();
    }, this.o.compactionRetryMs);
  }

  /**
   * Writes `lines` where the last whole record ends, cutting off first what a
   * failed write left there; fsyncs when `durable`. Throws if any of it did
   * not reach the disk: the caller reports it, and the bytes are cut off.
   */
  private async writeRecords(lines: (string | Buffer)[], durable: boolean): Promise<void> {
    const handle = this.handle;
    if (!handle) throw new ClosedError('outbox');
    // Before anything of this group is written: if it fails, there is nothing to cut off.
    if (durable && this.folderSyncPending) {
      await syncFolder(this.o.fs, this.o.file);
      this.folderSyncPending = false;
    }
    try {
      if (this.tornTail) await this.cutTornTail(handle);
      this.tornTail = true;
      let position = this.end;
      for (const piece of pieces(lines)) {
        await writeFully(handle, piece, position);
        position += piece.length;
      }
      if (durable) await handle.datasync();
      this.end = position;
      this.tornTail = false;
    } catch (error) {
      // Cut at once, so a fragment never lingers; if that fails too, the next write tries first.
      if (this.tornTail) await this.cutTornTail(handle).catch(() => {});
      throw error;
    }
    this.report.writeWorked();
  }

  private async cutTornTail(handle: OutboxFileHandle): Promise<void> {
    await handle.truncate(this.end);
    this.tornTail = false;
  }

  private async maybeCompact(): Promise<void> {
    if (this.o.clock.monotonicNow() < this.compactRetryAt) return;
    const removed = this.removedSinceCompaction;
    const byRecords = removed >= this.o.compactAfterAcks && removed > this.pending.size;
    const dead = this.end - this.held.bytes;
    const byBytes = dead > Math.max(this.held.bytes, COMPACT_MIN_DEAD_BYTES);
    if (byRecords || byBytes) await this.compact();
  }

  /**
   * Rewrites the log with only what is pending: write aside, fsync, rename;
   * with nothing pending, cuts the file to nothing in place, which needs no
   * free space (a full disk's way out). Never throws: a failure is logged,
   * counted and retried after compactionRetryMs; the log stays as it was.
   */
  private async compact(): Promise<boolean> {
    const { fs, file } = this.o;
    if (this.pending.size === 0 && this.handle) {
      try {
        await this.handle.truncate(0);
        // The file is empty now, even if the fsync below fails: the next record goes at 0, not after a hole.
        this.end = 0;
        this.tornTail = false;
        this.removedSinceCompaction = 0;
        await this.handle.datasync();
        return true;
      } catch (error) {
        this.compactionFailed(error);
        return false;
      }
    }
    const tmp = `${file}.tmp`;
    let out: OutboxFileHandle | undefined;
    let written = 0;
    try {
      out = await fs.open(tmp, 'w', 0o600);
      await out.chmod(0o600);
      // Rendered a piece at a time; one acked meanwhile is left out (its removal record follows harmlessly).
      for (const piece of pieces(recordsOf(this.pending.values()))) {
        await writeFully(out, piece, written);
        written += piece.length;
      }
      await out.sync();
      await fs.rename(tmp, file);
    } catch (error) {
      await out?.close().catch(() => {});
      // The copy would hold the very space a full disk lacks.
      await fs.unlink(tmp).catch(() => {});
      this.compactionFailed(error);
      return false;
    }
    const old = this.handle;
    this.handle = out;
    this.end = written;
    this.tornTail = false;
    this.removedSinceCompaction = 0;
    await old?.close().catch(() => {});
    // The rename must survive a crash before anything appended to the new file is called durable.
    try {
      await syncFolder(fs, file);
      this.folderSyncPending = false;
    } catch (error) {
      this.folderSyncPending = true;
      this.log.warn('outbox: fsync of its folder failed after compaction; the next add fsyncs it first', {
        event: 'outbox.folder_sync_failed',
        file,
        error,
      });
    }
    return true;
  }

  private compactionFailed(error: unknown): void {
    this.compactRetryAt = this.o.clock.monotonicNow() + this.o.compactionRetryMs;
    this.report.compactionFailed(error, this.end, this.o.compactionRetryMs);
  }

  /**
   * Reads the log a chunk at a time (never the whole file: past 512 MiB that
   * throws ERR_STRING_TOO_LONG, and the service could not start), then
   * compacts it. A torn last record and corrupt lines are skipped, counted
   * and logged; if compaction fails, the torn bytes are cut off and appends
   * go on after the last whole record.
   */
  private async recover(): Promise<void> {
    const { fs, file } = this.o;
    // A compaction's copy left by a crash takes the room a full disk lacks; it is never read.
    await fs.unlink(`${file}.tmp`).catch(() => {});
    const handle = await fs.open(file, READ_WRITE_CREATE, 0o600);
    this.handle = handle;
    // An outbox left by an older run under the umask is made 0600 too.
    await handle.chmod(0o600);
    // Mid-way, a log this version wrote holds at most what was held before a group plus that group's adds.
    const replayCeilingBytes = 2 * this.o.hardMaxBytes;
    const read = await readLog(handle, { ...this.o, replayCeilingBytes }, this.held, this.counters);
    this.end = read.end;
    this.tornTail = read.torn;
    this.nextSeq = read.maxSeq + 1;
    if (!(await this.compact()) && this.tornTail) {
      await this.cutTornTail(handle).catch((error: unknown) => {
        this.log.error('outbox: cannot cut off a torn last line; appends fail until it can', {
          event: 'outbox.torn_line_kept',
          file,
          error,
        });
      });
    }
  }
}

function* recordsOf(entries: Iterable<OutboxEntry>): Generator<string> {
  for (const e of entries) yield recordOf(e.seq, e.topic, e.payload, e.stream);
}
