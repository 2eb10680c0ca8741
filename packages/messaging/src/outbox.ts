import { mkdirSync } from 'node:fs';
import { type FileHandle, open, readFile, rename } from 'node:fs/promises';
import path from 'node:path';
import { ClosedError, type Logger, nullLogger } from '@faultline/core';

export interface OutboxEntry {
  readonly seq: number;
  readonly topic: string;
  readonly payload: Buffer;
  /** Times it was written to a broker (0 = never). */
  attempts: number;
}

export interface OutboxOptions {
  /** The log file; its folder is created. */
  file: string;
  /** Rewrite the file once this many acks accumulated (and outnumber what is pending). @default 10_000 */
  compactAfterAcks?: number;
  logger?: Logger;
}

type Line = { a: number; t: string; p: string } | { k: number };

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

  static async open(options: OutboxOptions): Promise<Outbox> {
    const outbox = new Outbox(options.file, options.compactAfterAcks ?? 10_000, options.logger ?? nullLogger);
    mkdirSync(path.dirname(options.file), { recursive: true });
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
      this.log.error('outbox write failed', { file: this.file, error });
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
    this.handle ??= await open(this.file, 'a');
    return this.handle;
  }

  /** Rewrites the log with only what is pending: write aside, fsync, rename. */
  private async compact(): Promise<void> {
    const tmp = `${this.file}.tmp`;
    const handle = await open(tmp, 'w');
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
    if (torn !== '') this.log.warn('outbox: ignoring a torn last line', { file: this.file, bytes: torn.length });
    let maxSeq = 0;
    for (const [index, raw] of lines.entries()) {
      if (raw === '') continue;
      let line: Line;
      try {
        line = JSON.parse(raw) as Line;
      } catch {
        this.corruptLines += 1;
        this.log.warn('outbox: unreadable line skipped', { file: this.file, line: index + 1 });
        continue;
      }
      if ('a' in line && Number.isSafeInteger(line.a) && typeof line.t === 'string' && typeof line.p === 'string') {
        this.pending.set(line.a, { seq: line.a, topic: line.t, payload: Buffer.from(line.p, 'utf8'), attempts: 0 });
        maxSeq = Math.max(maxSeq, line.a);
      } else if ('k' in line && Number.isSafeInteger(line.k)) {
        this.pending.delete(line.k);
        maxSeq = Math.max(maxSeq, line.k);
      } else {
        this.corruptLines += 1;
        this.log.warn('outbox: malformed record skipped', { file: this.file, line: index + 1 });
      }
    }
    this.nextSeq = maxSeq + 1;
    await this.compact();
  }
}
