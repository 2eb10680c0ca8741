import { statSync } from 'node:fs';
import { type FileHandle, open, rename, unlink } from 'node:fs/promises';
import type { OutboxFileHandle, OutboxFileSystem } from '../outbox-file.js';

/** A file-system call `LimitedFileSystem.failNext()` can make fail. */
export type FileOperation = 'open' | 'write' | 'read' | 'datasync' | 'sync' | 'truncate' | 'rename' | 'unlink';

function errnoError(code: string, syscall: string, errno: number, detail: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${detail}, ${syscall}`), { code, errno, syscall });
}

const ERRNO: Record<string, number> = { ENOSPC: -28, EIO: -5, EACCES: -13 };

/**
 * The real file system with a capacity, as a small tmpfs has: the files opened
 * through it share `capacityBytes`, and a write that would grow them past it
 * writes what fits and reports that count without an error (a short write, as
 * Linux does), the next one fails with ENOSPC. `failNext()` makes a chosen
 * call fail (EIO by default): a rename, a datasync, a truncate. For the
 * outbox's tests where a real small file system cannot be mounted.
 */
export class LimitedFileSystem implements OutboxFileSystem {
  /** Paths written through this file system: their sizes count against the capacity. */
  private readonly files = new Set<string>();
  private readonly failures: { op: FileOperation; code: string; file: string | undefined }[] = [];
  private readonly holds: { op: FileOperation; reach: () => void; released: Promise<void> }[] = [];
  /** Short writes made (the count written was less than asked). */
  shortWrites = 0;

  constructor(public capacityBytes: number) {}

  /** The next `count` calls of `op` (on `file` only, if given: a folder's fsync) fail with `code`. */
  failNext(op: FileOperation, code = 'EIO', count = 1, file?: string): void {
    for (let i = 0; i < count; i++) this.failures.push({ op, code, file });
  }

  /**
   * The next call of `op` waits until `release()` (a disk that stalls);
   * `reached` resolves once that call is made.
   */
  holdNext(op: FileOperation): { reached: Promise<void>; release: () => void } {
    let reach = () => {};
    let release = () => {};
    const reached = new Promise<void>((resolve) => {
      reach = resolve;
    });
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    this.holds.push({ op, reach, released });
    return { reached, release };
  }

  /** Bytes the files take now. */
  used(): number {
    let total = 0;
    for (const file of this.files) {
      try {
        total += statSync(file).size;
      } catch {
        // Renamed over or removed.
      }
    }
    return total;
  }

  /** Waits out a hold of `op`, then throws the injected failure of `op`, if one is due. */
  async pass(op: FileOperation, detail: string): Promise<void> {
    const at = this.holds.findIndex((h) => h.op === op);
    const [hold] = at === -1 ? [] : this.holds.splice(at, 1);
    if (hold) {
      hold.reach();
      await hold.released;
    }
    this.check(op, detail);
  }

  /** Throws the injected failure of `op`, if one is due. */
  check(op: FileOperation, detail: string): void {
    const at = this.failures.findIndex((f) => f.op === op && (f.file === undefined || f.file === detail));
    if (at === -1) return;
    const [failure] = this.failures.splice(at, 1);
    const code = failure?.code ?? 'EIO';
    throw errnoError(code, op, ERRNO[code] ?? -5, detail);
  }

  async open(file: string, flags: string | number, mode?: number): Promise<OutboxFileHandle> {
    await this.pass('open', file);
    const handle = await open(file, flags, mode);
    // A folder opened to fsync it takes no room.
    if ((await handle.stat()).isFile()) this.files.add(file);
    return new LimitedFile(this, handle, file);
  }

  async rename(from: string, to: string): Promise<void> {
    await this.pass('rename', `${from} -> ${to}`);
    await rename(from, to);
    this.files.delete(from);
    this.files.add(to);
  }

  async unlink(file: string): Promise<void> {
    await this.pass('unlink', file);
    await unlink(file);
    this.files.delete(file);
  }
}

class LimitedFile implements OutboxFileHandle {
  constructor(
    private readonly fs: LimitedFileSystem,
    private readonly handle: FileHandle,
    private readonly file: string,
  ) {}

  async read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }> {
    await this.fs.pass('read', this.file);
    return this.handle.read(buffer, offset, length, position);
  }

  async write(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesWritten: number }> {
    await this.fs.pass('write', this.file);
    const size = (await this.handle.stat()).size;
    const growth = Math.max(0, position + length - size);
    const free = Math.max(0, this.fs.capacityBytes - this.fs.used());
    if (growth <= free) return this.handle.write(buffer, offset, length, position);
    const fits = size + free - position;
    if (fits <= 0) throw errnoError('ENOSPC', 'write', ERRNO.ENOSPC as number, 'no space left on device');
    this.fs.shortWrites += 1;
    return this.handle.write(buffer, offset, fits, position);
  }

  async truncate(length: number): Promise<void> {
    await this.fs.pass('truncate', this.file);
    await this.handle.truncate(length);
  }

  async datasync(): Promise<void> {
    await this.fs.pass('datasync', this.file);
    await this.handle.datasync();
  }

  async sync(): Promise<void> {
    await this.fs.pass('sync', this.file);
    await this.handle.sync();
  }

  async chmod(mode: number): Promise<void> {
    await this.handle.chmod(mode);
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}
