import { chmodSync, createWriteStream, existsSync, type WriteStream } from 'node:fs';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { escapeControlChars, type Logger, mkdirPrivate } from '@faultline/core';

/** Lines of stderr kept per process, and characters of the reason made of them. */
const TAIL_LINES = 20;
const REASON_CHARS = 600;
/** A line longer than this (a service printing without newlines) is passed on in pieces, not buffered without bound. */
const MAX_LINE_CHARS = 64 * 1024;

/**
 * A service's output file (Mosquitto's, PostgreSQL's), mode 0600 in a folder
 * created 0700. A failure to open or write it (a full disk, a folder in the
 * way) is logged once (`supervisor.output_failed`) and ends the file, never
 * the supervisor; nothing is written after end() (a PostgreSQL backend that
 * outlived its postmaster may still write to the pipe).
 */
export class OutputFile {
  private stream: WriteStream | undefined;
  private failed = false;

  constructor(
    readonly file: string,
    private readonly log: Logger,
    private readonly service: string,
  ) {
    try {
      // Like the services' own logs: a created folder 0700, the file 0600 (also one left by an older run).
      mkdirPrivate(path.dirname(file));
      if (existsSync(file)) chmodSync(file, 0o600);
      this.stream = createWriteStream(file, { flags: 'a', mode: 0o600 });
      this.stream.on('error', (error) => this.fail(error));
    } catch (error) {
      this.fail(error);
    }
  }

  write(chunk: Buffer): void {
    const { stream } = this;
    if (this.failed || !stream || stream.writableEnded || stream.destroyed) return;
    stream.write(chunk);
  }

  /** Ends the file once what was written is flushed. Safe to call twice. */
  end(): void {
    const { stream } = this;
    if (stream && !stream.writableEnded && !stream.destroyed) stream.end();
  }

  private fail(error: unknown): void {
    if (!this.failed) {
      this.log.warn('cannot write a service’s output file: its output goes on without it', {
        event: 'supervisor.output_failed',
        service: this.service,
        file: this.file,
        error,
      });
    }
    this.failed = true;
    this.stream?.destroy();
  }
}

export interface OutputTarget {
  /** The service's name: the console prefix of a service that does not write its own. */
  name: string;
  /** Set for a service that does not write its own JSON log (Mosquitto, PostgreSQL): its lines get a prefix. */
  outputFile: string | undefined;
  /** The open `outputFile`, which gets every byte. */
  file: OutputFile | undefined;
  /** Whether its lines go to the supervisor's console. */
  console: boolean;
  write: (line: string) => void;
  /** Where its last lines are kept (stderr: the reason it gives when it fails). */
  tail?: string[];
}

/** A forwarded stream: `flush()` passes on an unfinished last line (its end is not waited for any longer). */
export interface ForwardedOutput {
  flush(): void;
}

/**
 * A stream of a service's output, line by line, to its file, the console and
 * its tail. Decoded as UTF-8 across chunks (a character split between two
 * reads stays whole); an unfinished last line is passed on when the stream
 * ends, or on flush().
 */
export function forwardOutput(stream: NodeJS.ReadableStream | null, to: OutputTarget): ForwardedOutput {
  const decoder = new StringDecoder('utf8');
  let rest = '';
  const line = (text: string) => {
    if (text.trim() === '') return;
    if (to.tail) {
      to.tail.push(escapeControlChars(text.trim()).slice(0, REASON_CHARS));
      if (to.tail.length > TAIL_LINES) to.tail.shift();
    }
    if (!to.console) return;
    // A Faultline service's console is formatPretty's (escaped but for its colors); anything
    // else (Mosquitto, which prints client ids) is escaped whole.
    to.write(
      to.outputFile
        ? `${to.name.padEnd(12)} ${escapeControlChars(text)}`
        : escapeControlChars(text, { keepColors: true }),
    );
  };
  const take = (text: string) => {
    if (text === '') return;
    const lines = (rest + text).split('\n');
    rest = lines.pop() ?? '';
    for (const each of lines) line(each);
    while (rest.length > MAX_LINE_CHARS) {
      line(rest.slice(0, MAX_LINE_CHARS));
      rest = rest.slice(MAX_LINE_CHARS);
    }
  };
  const flush = () => {
    take(decoder.end());
    line(rest);
    rest = '';
  };
  stream?.on('data', (chunk: Buffer) => {
    to.file?.write(chunk);
    take(decoder.write(chunk));
  });
  stream?.on('end', flush);
  // A read error (the pipe gone) ends the stream as far as the supervisor is concerned.
  stream?.on('error', flush);
  return { flush };
}

/** Why a process ended, in its own words where it gave any: its last lines on stderr, joined. */
export function reasonOf(tail: readonly string[]): string {
  return tail.join(' ').slice(-REASON_CHARS);
}
