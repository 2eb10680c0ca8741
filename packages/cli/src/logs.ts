import { closeSync, existsSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import path from 'node:path';
import { escapeControlChars, formatPretty, sleep } from '@faultline/core';
import { LogsNotFoundError } from './errors.js';
import { type LogsOptions, type ResolvedLogsOptions, resolveLogsOptions } from './logs-options.js';

/** A record of a service's JSON-lines log, as core's logger writes it. */
type LogRecord = Parameters<typeof formatPretty>[0];

/** One line of a log file, parsed once. */
interface LogLine {
  text: string;
  /** undefined when the line is not JSON; not checked to be a record (render() does, and falls back to the text). */
  record: unknown;
}

function parseLine(text: string): LogLine {
  try {
    return { text, record: JSON.parse(text) as unknown };
  } catch {
    return { text, record: undefined };
  }
}

/** The file a service's log rotated to first (core's RotatingFile): `<service>.1.jsonl`. */
const rotatedOnce = (file: string) => file.replace(/\.jsonl$/, '.1.jsonl');

/** A rotated file of a service's log (`<service>.<n>.jsonl`), not a service of its own. */
export const isRotatedLog = (name: string) => /\.\d+\.jsonl$/.test(name);

/**
 * Per-file read positions, so following prints each line once. Across a
 * rotation (the file renamed to `<service>.1.jsonl`, a new one started) the
 * rest of the old file is read there first, then the new one from its start.
 */
class Tail {
  private offset = 0;
  private rest = '';
  private ino: number | undefined;
  constructor(readonly file: string) {}

  read(): string[] {
    const now = statSync(this.file);
    let text = '';
    if (this.ino !== undefined && now.ino !== this.ino) {
      const rotated = rotatedOnce(this.file);
      if (existsSync(rotated) && statSync(rotated).ino === this.ino) text += this.readFrom(rotated, this.offset);
      this.offset = 0;
    } else if (now.size < this.offset) this.offset = 0; // truncated
    this.ino = now.ino;
    text += this.readFrom(this.file, this.offset);
    const lines = (this.rest + text).split('\n');
    this.rest = lines.pop() ?? '';
    return lines.filter((line) => line.trim() !== '');
  }

  /** The bytes of `file` from `offset` to its end as text; `this.offset` moves to that end when it is the current file. */
  private readFrom(file: string, offset: number): string {
    const size = statSync(file).size;
    if (size <= offset) return '';
    const buffer = Buffer.alloc(size - offset);
    const fd = openSync(file, 'r');
    try {
      readSync(fd, buffer, 0, buffer.length, offset);
    } finally {
      closeSync(fd);
    }
    if (file === this.file) this.offset = size;
    return buffer.toString('utf8');
  }
}

/**
 * One line as printed: formatPretty escapes what it prints (but its own
 * colors); a raw line (`--json`, or not a record) has every control character
 * escaped. JSON stays JSON: `\u001b` inside a string is the same string.
 */
function render(line: LogLine, options: ResolvedLogsOptions): string {
  const { record } = line;
  if (options.json || !isRecord(record)) return escapeControlChars(line.text); // not a record: print it rather than hide it
  return formatPretty(record, options.colors);
}

/** Whether a parsed line has what formatPretty prints: level, message and service as strings. */
function isRecord(value: unknown): value is LogRecord {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const { level, message, service, timestamp } = value as Record<string, unknown>;
  return (
    typeof level === 'string' &&
    typeof message === 'string' &&
    typeof service === 'string' &&
    (timestamp === undefined || typeof timestamp === 'string')
  );
}

/**
 * `faultline logs`: the per-service JSON-lines files under the logs folder,
 * merged by timestamp, readable or raw; `--follow` keeps printing new lines.
 */
export async function showLogs(input: LogsOptions): Promise<void> {
  const options = resolveLogsOptions(input);
  if (!existsSync(options.dir)) {
    throw new LogsNotFoundError(`no logs yet: ${options.dir} does not exist (start the stack first)`);
  }
  const tails = new Map<string, Tail>();
  const pick = () => {
    for (const name of readdirSync(options.dir)) {
      if (!name.endsWith('.jsonl') || isRotatedLog(name)) continue;
      if (options.service && name !== `${options.service}.jsonl`) continue;
      if (!tails.has(name)) tails.set(name, new Tail(path.join(options.dir, name)));
    }
  };
  pick();
  if (options.service && tails.size === 0) {
    const known = readdirSync(options.dir)
      .filter((n) => n.endsWith('.jsonl') && !isRotatedLog(n))
      .map((n) => n.replace(/\.jsonl$/, ''));
    throw new LogsNotFoundError(`no logs for service ${options.service}; known: ${known.join(', ') || 'none'}`);
  }
  const flush = () => {
    const lines = [...tails.values()].flatMap((tail) => tail.read()).map(parseLine);
    const at = (line: LogLine) => (isRecord(line.record) ? (line.record.timestamp ?? '') : '');
    lines.sort((a, b) => (at(a) < at(b) ? -1 : at(a) > at(b) ? 1 : 0));
    for (const line of lines) options.write(render(line, options));
  };
  flush();
  while (options.follow && !options.signal?.aborted) {
    await sleep(options.clock, options.pollIntervalMs);
    pick();
    flush();
  }
}
