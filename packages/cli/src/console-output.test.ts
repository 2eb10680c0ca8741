import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { guardConsole } from './console-output.js';

/** A stream whose reader is gone after `accepted` writes: each later one fails with EPIPE. */
function closingStream(accepted: number) {
  const written: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, callback) {
      if (written.length >= accepted) {
        callback(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
        return;
      }
      written.push(String(chunk));
      callback();
    },
  });
  return { stream, written };
}

describe('guardConsole', () => {
  it('survives EPIPE on stdout (`stack up | tee`, Ctrl-C) and stops writing after it', async () => {
    const stdout = closingStream(1);
    const stderr = closingStream(0);
    const terminal = guardConsole({ stdout: stdout.stream, stderr: stderr.stream });
    terminal.write('one');
    terminal.write('two');
    // Unguarded, this 'error' would be an uncaught exception: the supervisor dead halfway through its stop.
    await new Promise((resolve) => setImmediate(resolve));
    expect(terminal.broken).toBe(true);
    terminal.write('three');
    terminal.print('four\n');
    stderr.stream.write('a log line\n');
    await new Promise((resolve) => setImmediate(resolve));
    expect(stdout.written).toEqual(['one\n']);
  });
});
