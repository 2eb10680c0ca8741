import { closeSync, existsSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import path from 'node:path';
import { type Clock, formatPretty, sleep } from '@faultline/core';

export interface LogsOptions {
  dir: string;
  /** Only this service (`sp-1`, `autoscaler`, `broker-a`, …). */
  service?: string;
  follow: boolean;
  /** Print the JSON lines as they are instead of the readable form. */
  json: boolean;
  colors: boolean;
  clock: Clock;
  write: (line: string) => void;
  /** Stops following (Ctrl-C). */
  signal?: AbortSignal;
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

function render(line: string, options: LogsOptions): string {
  if (options.json) return line;
  try {
    const record = JSON.parse(line) as { level: string; message: string; service: string; timestamp?: string };
    return formatPretty(record, options.colors);
  } catch {
    return line; // not JSON: print as it is rather than hide it
  }
}

/**
 * `faultline logs`: the per-service JSON-lines files under the logs folder,
 * merged by timestamp, readable or raw; `--follow` keeps printing new lines.
 */
export async function showLogs(options: LogsOptions): Promise<void> {
  if (!existsSync(options.dir)) throw new Error(`no logs yet: ${options.dir} does not exist (start the stack first)`);
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
    throw new Error(`no logs for service ${options.service}; known: ${known.join(', ') || 'none'}`);
  }
  const flush = () => {
    const lines = [...tails.values()].flatMap((tail) => tail.read());
    const at = (line: string) => {
      try {
        return (JSON.parse(line) as { timestamp?: string }).timestamp ?? '';
      } catch {
        return '';
      }
    };
    lines.sort((a, b) => (at(a) < at(b) ? -1 : at(a) > at(b) ? 1 : 0));
    for (const line of lines) options.write(render(line, options));
  };
  flush();
  while (options.follow && !options.signal?.aborted) {
    await sleep(options.clock, 250);
    pick();
    flush();
  }
}
