import { type FileHandle, open, readFile, rename } from 'node:fs/promises';
import path from 'node:path';
import { ClosedError, type Logger, mkdirPrivate } from '@faultline/core';
import { z } from 'zod';
import { type OutboxOptions, resolveOutboxOptions } from './outbox-options.js';

export interface OutboxEntry {
  readonly seq: number;
  readonly topic: string;
  readonly payload: Buffer;
  /** Times it was written to a broker (0 = never). */
  attempts: number;
}

/**
 * One line of the log: an added message (`a` seq, `t` topic, `p` payload) or
 * an ack (`k` seq). Sequence numbers are safe integers (z.int() accepts no other).
 */
const lineSchema = z.union([z.object({ a: z.int(), t: z.string(), p: z.string() }), z.object({ k: z.int() })]);
type Line = z.infer<typeof lineSchema>;

/**
 * The publisher's durable outbox: an append-only JSON-lines log on disk.
 * A message is added with fsync before its publish() resolves, and leaves only
 * when a broker acknowledged it (PUBACK). Appends arriving together share one
 * write and one fsync (group commit). Ack records are written without fsync:
 * losing one in a crash means one extra resend, which consumers dedupe by
 * envelope id; losing an add would lose a message. The log is compacted at
 * open and whenever acks pile up. A torn last line (a crash mid-write) is
 * ignored; any other unreadable line is counted and logged.
 */
export class Outbox {
  private readonly pending = new Map<number, OutboxEntry>();
  private handle: FileHandle | undefined;
  private nextSeq = 1;
  private io: Promise<void> = Promise.resolve();
  private flushQueued = false;
  private adds: { entry: OutboxEntry; resolve: (e: OutboxEntry) => void; reject: (e: unknown) => void }[] = [];
  private acks: number[] = [];
  private acksSinceCompaction = 0;
  private closed = false;
  /** Lines that could not be read at open (not counting a torn last line). */
  corruptLines = 0;

  private constructor(
    private readonly file: string,
    private readonly compactAfterAcks: number,
    private readonly log: Logger,
  ) {}

  static async open(input: OutboxOptions): Promise<Outbox> {
    const { file, compactAfterAcks, logger } = resolveOutboxOptions(input);
    const outbox = new Outbox(file, compactAfterAcks, logger);
    // What services published is for the platform's user only: a created folder 0700, the file 0600.
    mkdirPrivate(path.dirname(file));
    await outbox.recover();
    return outbox;
  }

  get size(): number {
    return this.pending.size;
  }

  has(seq: number): boolean {
    return this.pending.has(seq);
  }

  /** Pending entries, oldest first. */
  entries(): IterableIterator<OutboxEntry> {
    return this.pending.values();
  }

  /** Resolves once the message is on disk (fsync'd). */
  append(topic: string, payload: Buffer): Promise<OutboxEntry> {
    if (this.closed) return Promise.reject(new ClosedError('outbox'));
    const entry: OutboxEntry = { seq: this.nextSeq++, topic, payload, attempts: 0 };
    return new Promise((resolve, reject) => {
      this.adds.push({ entry, resolve, reject });
      this.scheduleFlush();
    });
  }

  /** A broker acknowledged `seq`: it leaves the outbox. */
  ack(seq: number): void {
    if (!this.pending.delete(seq) || this.closed) return;
    this.acks.push(seq);
    this.scheduleFlush();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.scheduleFlush();
    await this.io;
    await this.handle?.close();
    this.handle = undefined;
  }

  private scheduleFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    this.io = this.io.then(() => this.flush());
  }

  private async flush(): Promise<void> {
    this.flushQueued = false;
    const adds = this.adds;
    const acks = this.acks;
    this.adds = [];
    this.acks = [];
    if (adds.length === 0 && acks.length === 0) return;
    const lines: Line[] = [
      ...adds.map(({ entry }) => ({ a: entry.seq, t: entry.topic, p: entry.payload.toString('utf8') })),
      ...acks.map((seq) => ({ k: seq })),
    ];
    try {
      const handle = await this.fileHandle();
      await handle.write(`${lines.map((line) => JSON.stringify(line)).join('\n')}\n`);
      if (adds.length > 0) await handle.datasync();
    } catch (error) {
      this.log.error('outbox write failed', { event: 'outbox.write_failed', file: this.file, error });
      for (const add of adds) add.reject(error);
      return;
    }
    for (const { entry, resolve } of adds) {
      this.pending.set(entry.seq, entry);
      resolve(entry);
    }
    this.acksSinceCompaction += acks.length;
    if (this.acksSinceCompaction >= this.compactAfterAcks && this.acksSinceCompaction > this.pending.size) {
      await this.compact();
    }
  }

  private async fileHandle(): Promise<FileHandle> {
    if (!this.handle) {
      const handle = await open(this.file, 'a', 0o600);
      // An outbox left by an older run under the umask is made 0600 too.
      await handle.chmod(0o600);
      this.handle = handle;
    }
    return this.handle;
  }

  /** Rewrites the log with only what is pending: write aside, fsync, rename. */
  private async compact(): Promise<void> {
    const tmp = `${this.file}.tmp`;
    const handle = await open(tmp, 'w', 0o600);
    await handle.chmod(0o600);
    try {
      const lines = [...this.pending.values()].map((e) =>
        JSON.stringify({ a: e.seq, t: e.topic, p: e.payload.toString('utf8') }),
      );
      await handle.write(lines.length > 0 ? `${lines.join('\n')}\n` : '');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await this.handle?.close();
    this.handle = undefined;
    await rename(tmp, this.file);
    // The rename itself must survive a crash: fsync the folder.
    const dir = await open(path.dirname(this.file), 'r');
    await dir.sync().finally(() => dir.close());
    this.acksSinceCompaction = 0;
  }

  private async recover(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    const lines = text.split('\n');
    // Without a final newline, the last line is a torn write from a crash.
    const torn = lines.pop() ?? '';
    if (torn !== '') {
      this.log.warn('outbox: ignoring a torn last line', {
        event: 'outbox.torn_line',
        file: this.file,
        bytes: torn.length,
      });
    }
    let maxSeq = 0;
    const skip = (index: number, message: string, event: string): void => {
      this.corruptLines += 1;
      this.log.warn(message, { event, file: this.file, line: index + 1 });
    };
    for (const [index, raw] of lines.entries()) {
      if (raw === '') continue;
      let parsed: unknown;
      try {
        parsed = JSON.parse(raw);
      } catch {
        skip(index, 'outbox: unreadable line skipped', 'outbox.unreadable_line');
        continue;
      }
      const checked = lineSchema.safeParse(parsed);
      if (!checked.success) {
        skip(index, 'outbox: malformed record skipped', 'outbox.malformed_record');
        continue;
      }
      const line: Line = checked.data;
      if ('a' in line) {
        this.pending.set(line.a, { seq: line.a, topic: line.t, payload: Buffer.from(line.p, 'utf8'), attempts: 0 });
        maxSeq = Math.max(maxSeq, line.a);
      } else {
        this.pending.delete(line.k);
        maxSeq = Math.max(maxSeq, line.k);
      }
    }
    this.nextSeq = maxSeq + 1;
    await this.compact();
  }
}
