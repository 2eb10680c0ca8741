import { closeSync, existsSync, fstatSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import TransportStream from 'winston-transport';

const MESSAGE = Symbol.for('message');

/**
 * A JSON-lines log file rotated by size: `<name>.jsonl` always holds the
 * newest records, `<name>1.jsonl` the ones before it, up to `maxFiles` files
 * in all; the oldest is deleted. Each record is written whole, at once, and a
 * rotation happens between two records, so none is lost or split (winston's
 * own tailable rotation dropped the records written while it renamed).
 * Files are created mode 0600.
 */
export class RotatingFile extends TransportStream {
  private fd: number;
  private size: number;
  private readonly base: string;

  constructor(
    private readonly file: string,
    private readonly maxFileBytes: number,
    private readonly maxFiles: number,
    options: TransportStream.TransportStreamOptions = {},
  ) {
    super(options);
    this.base = path.join(path.dirname(file), path.basename(file, path.extname(file)));
    this.fd = openSync(file, 'a', 0o600);
    this.size = fstatSync(this.fd).size;
  }

  override log(info: Record<string | symbol, unknown>, callback: () => void): void {
    const line = Buffer.from(`${String(info[MESSAGE])}\n`);
    try {
      if (this.size > 0 && this.size + line.length > this.maxFileBytes) this.rotate();
      writeSync(this.fd, line);
      this.size += line.length;
    } catch (error) {
      // A full disk or a lost folder: the record is dropped, the service goes on (stderr says why).
      process.stderr.write(`log file ${this.file}: ${(error as Error).message}\n`);
    }
    callback();
  }

  private rotate(): void {
    closeSync(this.fd);
    const ext = path.extname(this.file);
    const numbered = (n: number) => `${this.base}${n}${ext}`;
    if (existsSync(numbered(this.maxFiles - 1))) rmSync(numbered(this.maxFiles - 1), { force: true });
    for (let n = this.maxFiles - 2; n >= 1; n--) if (existsSync(numbered(n))) renameSync(numbered(n), numbered(n + 1));
    renameSync(this.file, numbered(1));
    this.fd = openSync(this.file, 'a', 0o600);
    this.size = 0;
  }

  override close(): void {
    closeSync(this.fd);
  }
}
