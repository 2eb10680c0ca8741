import { constants } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { FaultlineError } from '@faultline/core';

/**
 * The few file calls the outbox makes, so a test can hand it a file system
 * that fills up or fails (`LimitedFileSystem` in `./testing`). Node's
 * `fs/promises` FileHandle has this shape.
 */
export interface OutboxFileHandle {
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  /** May write fewer bytes than asked without an error (a full file system does): the caller checks. */
  write(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesWritten: number }>;
  truncate(length: number): Promise<void>;
  datasync(): Promise<void>;
  sync(): Promise<void>;
  chmod(mode: number): Promise<void>;
  close(): Promise<void>;
}

export interface OutboxFileSystem {
  open(file: string, flags: string | number, mode?: number): Promise<OutboxFileHandle>;
  rename(from: string, to: string): Promise<void>;
  unlink(file: string): Promise<void>;
}

export const nodeFileSystem: OutboxFileSystem = { open, rename, unlink };

/** Read and write, created if missing, never truncated, and no O_APPEND: the outbox writes where it knows the good end is. */
export const READ_WRITE_CREATE = constants.O_RDWR | constants.O_CREAT;

/** A write that did not reach the disk whole; `written` bytes of it may be in the file. */
export class ShortWriteError extends Error {
  constructor(
    readonly written: number,
    readonly wanted: number,
  ) {
    super(`wrote ${written} of ${wanted} bytes`);
    this.name = 'ShortWriteError';
  }
}

/**
 * Writes all of `data` at `position`. A write that returns fewer bytes than
 * asked is continued where it stopped (POSIX allows it; a filling tmpfs
 * returned 4 095 of 16 124); one that makes no progress is a ShortWriteError.
 * A thrown error is passed on.
 */
export async function writeFully(file: OutboxFileHandle, data: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await file.write(data, done, data.length - done, position + done);
    if (!(bytesWritten > 0)) throw new ShortWriteError(done, data.length);
    done += bytesWritten;
  }
}

/** fsyncs a folder, so a rename in it survives a crash. */
export async function syncFolder(fs: OutboxFileSystem, file: string): Promise<void> {
  const dir = await fs.open(path.dirname(file), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

/** What `readLines` yields: a whole line (without its newline), or one it skipped for its length. */
export type ReadLine =
  | { kind: 'line'; text: string; start: number; end: number }
  | { kind: 'oversized'; start: number; end: number }
  /** Bytes after the last newline: a write torn by a crash or a full disk. */
  | { kind: 'torn'; start: number; end: number };

/**
 * The file's lines, read `chunkBytes` at a time: memory stays within one
 * chunk plus one line of at most `maxLineBytes`, whatever the file's size (a
 * `readFile` of the whole file fails past 512 MiB, ERR_STRING_TOO_LONG). A
 * longer line is skipped, not buffered. `start`/`end` are byte offsets; `end`
 * is past the newline.
 */
export async function* readLines(
  file: OutboxFileHandle,
  chunkBytes: number,
  maxLineBytes: number,
): AsyncGenerator<ReadLine> {
  const chunk = Buffer.allocUnsafe(chunkBytes);
  let parts: Buffer[] = [];
  let partBytes = 0;
  let oversized = false;
  let lineStart = 0;
  let position = 0;
  for (;;) {
    const { bytesRead } = await file.read(chunk, 0, chunkBytes, position);
    if (bytesRead === 0) break;
    const view = chunk.subarray(0, bytesRead);
    let from = 0;
    while (from < bytesRead) {
      const newline = view.indexOf(10, from);
      if (newline === -1) {
        // The line goes on in the next chunk: keep a copy (the chunk is reused), unless it is already too long.
        if (!oversized) {
          partBytes += bytesRead - from;
          if (partBytes > maxLineBytes) {
            oversized = true;
            parts = [];
          } else {
            parts.push(Buffer.from(view.subarray(from)));
          }
        }
        break;
      }
      const end = position + newline + 1;
      if (oversized || partBytes + (newline - from) > maxLineBytes) {
        yield { kind: 'oversized', start: lineStart, end };
      } else if (parts.length === 0) {
        yield { kind: 'line', text: view.toString('utf8', from, newline), start: lineStart, end };
      } else {
        parts.push(view.subarray(from, newline));
        yield { kind: 'line', text: Buffer.concat(parts).toString('utf8'), start: lineStart, end };
      }
      parts = [];
      partBytes = 0;
      oversized = false;
      lineStart = end;
      from = newline + 1;
    }
    position += bytesRead;
  }
  if (position > lineStart) yield { kind: 'torn', start: lineStart, end: position };
}

/** The outbox's errors: the caller of `append()` learns that its message is not durable, and why. */
export class OutboxWriteError extends FaultlineError {
  constructor(file: string, cause: unknown) {
    super('FL_ERR_OUTBOX_WRITE_FAILED', `outbox ${file}: the message could not be made durable`, {
      context: { file, error: cause instanceof Error ? cause.message : String(cause) },
      cause,
    });
  }
}

export class OutboxFullError extends FaultlineError {
  constructor(context: { file: string; bytes: number; recordBytes: number; boundBytes: number; precious: boolean }) {
    super(
      'FL_ERR_OUTBOX_FULL',
      `outbox ${context.file} is full: ${context.bytes} bytes held, a record of ${context.recordBytes} would pass the bound of ${context.boundBytes}`,
      { context },
    );
  }
}

/** A group commit's records are written in pieces of about this size (compaction too). */
const WRITE_PIECE_BYTES = 1024 * 1024;

const NEWLINE = Buffer.from('\n');

/**
 * `records`, newline-terminated, as buffers of about WRITE_PIECE_BYTES: never
 * one string of the whole log. A record may come as its UTF-8 bytes: a large
 * one (a summary of some 64 KiB) is then copied once, never held as a string.
 */
export function* pieces(records: Iterable<string | Buffer>): Generator<Buffer> {
  const parts: Buffer[] = [];
  let text = '';
  let size = 0;
  const gather = () => {
    if (text === '') return;
    parts.push(Buffer.from(text));
    text = '';
  };
  for (const record of records) {
    if (typeof record === 'string') {
      text += `${record}\n`;
      size += record.length + 1;
    } else {
      gather();
      parts.push(record, NEWLINE);
      size += record.length + 1;
    }
    if (size >= WRITE_PIECE_BYTES) {
      gather();
      yield Buffer.concat(parts);
      parts.length = 0;
      size = 0;
    }
  }
  gather();
  if (parts.length > 0) yield Buffer.concat(parts);
}
