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

/** Per-file read positions, so following prints each line once. */
class Tail {
  private offset = 0;
  private rest = '';
  constructor(readonly file: string) {}

  read(): string[] {
    const size = statSync(this.file).size;
    if (size < this.offset) this.offset = 0; // truncated or replaced
    if (size === this.offset) return [];
    const buffer = Buffer.alloc(size - this.offset);
    const fd = openSync(this.file, 'r');
    try {
      readSync(fd, buffer, 0, buffer.length, this.offset);
    } finally {
      closeSync(fd);
    }
    this.offset = size;
    const lines = (this.rest + buffer.toString('utf8')).split('\n');
    this.rest = lines.pop() ?? '';
    return lines.filter((line) => line.trim() !== '');
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
      if (!name.endsWith('.jsonl')) continue;
      if (options.service && name !== `${options.service}.jsonl`) continue;
      if (!tails.has(name)) tails.set(name, new Tail(path.join(options.dir, name)));
    }
  };
  pick();
  if (options.service && tails.size === 0) {
    const known = readdirSync(options.dir)
      .filter((n) => n.endsWith('.jsonl'))
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
