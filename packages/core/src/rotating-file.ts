import {
  closeSync,
  existsSync,
  fstatSync,
  ftruncateSync,
  openSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';
import TransportStream from 'winston-transport';

const MESSAGE = Symbol.for('message');

/**
 * A JSON-lines log file rotated by size: `<name>.jsonl` always holds the
 * newest records, `<name>.1.jsonl` the ones before it, up to `maxFiles` files
 * in all; the oldest is deleted. Each record is written whole between two
 * rotations (winston's own tailable rotation dropped the records written
 * while it renamed); one a full disk cut short is cut off again, so no line
 * is ever half a record. Several processes may write one file (both
 * autoscaler nodes write `autoscaler.jsonl`): each writes where the path
 * points now (a file another one rotated away is left at once) and rotates by
 * the file's real size. Files are created mode 0600.
 */
export class RotatingFile extends TransportStream {
  private fd: number;
  private readonly ext: string;
  private readonly base: string;
  /** The last failure reported on stderr, and how many records failed alike since. */
  private failure: { message: string; repeats: number } | undefined;

  constructor(
    private readonly file: string,
    private readonly maxFileBytes: number,
    private readonly maxFiles: number,
    options: TransportStream.TransportStreamOptions = {},
  ) {
    super(options);
    this.ext = path.extname(file);
    this.base = file.slice(0, file.length - this.ext.length);
    this.fd = openSync(file, 'a', 0o600);
  }

  override log(info: Record<string | symbol, unknown>, callback: () => void): void {
    const line = Buffer.from(`${String(info[MESSAGE])}\n`);
    try {
      this.follow();
      const size = fstatSync(this.fd).size;
      if (size > 0 && size + line.length > this.maxFileBytes) this.rotate();
      this.writeWhole(line);
      this.failure = undefined;
    } catch (error) {
      // A full disk or a lost folder: the record is dropped, the service goes on; stderr says why, once.
      const message = (error as Error).message;
      if (this.failure?.message === message) this.failure.repeats += 1;
      else {
        process.stderr.write(`log file ${this.file}: ${message} (the record is dropped; so are the next ones alike)\n`);
        this.failure = { message, repeats: 0 };
      }
    }
    callback();
  }

  /** `<name>.<n>.jsonl`. */
  private numbered(n: number): string {
    return `${this.base}.${n}${this.ext}`;
  }

  /** Writes to the file the path names now: another process may have rotated it, or it was removed. */
  private follow(): void {
    let current: number | undefined;
    try {
      current = statSync(this.file).ino;
    } catch {
      current = undefined;
    }
    if (current === fstatSync(this.fd).ino) return;
    this.reopen();
  }

  /** The path opened afresh; the old descriptor closed only once the new one is open. */
  private reopen(): void {
    const fd = openSync(this.file, 'a', 0o600);
    closeSync(this.fd);
    this.fd = fd;
  }

  /** Renames while the file is still open (a failed rename leaves everything as it was), then reopens. */
  private rotate(): void {
    const last = this.numbered(this.maxFiles - 1);
    if (existsSync(last)) rmSync(last, { force: true });
    for (let n = this.maxFiles - 2; n >= 1; n--) {
      if (existsSync(this.numbered(n))) renameSync(this.numbered(n), this.numbered(n + 1));
    }
    renameSync(this.file, this.numbered(1));
    this.reopen();
  }

  /** The whole line, or none of it: what a short write left is cut off. */
  private writeWhole(line: Buffer): void {
    const start = fstatSync(this.fd).size;
    let done = 0;
    try {
      while (done < line.length) {
        const written = writeSync(this.fd, line, done);
        if (!(written > 0)) throw new Error(`short write: ${done} of ${line.length} bytes`);
        done += written;
      }
    } catch (error) {
      if (done > 0) ftruncateSync(this.fd, start);
      throw error;
    }
  }

  override close(): void {
    closeSync(this.fd);
  }
}
