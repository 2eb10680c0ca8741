/** The supervisor's own stdout and stderr (tests pass streams of their own). */
export interface ConsoleStreams {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

/** The supervisor's console, which outlives its reader. */
export interface ConsoleOutput {
  /** One line to stdout; nothing once stdout has failed. */
  write(line: string): void;
  /** Text to stdout as it is; nothing once stdout has failed. */
  print(text: string): void;
  /** Whether a write to stdout has failed (its reader is gone). */
  readonly broken: boolean;
}

/**
 * Guards the supervisor's stdout and stderr: a write that fails there
 * (EPIPE: `npm run stack | tee log` and Ctrl-C, which ends `tee` first; EIO:
 * the terminal was closed, SIGHUP) is an 'error' event, and one nobody
 * listens for ends the process: the supervisor would die in the middle of
 * stopping the stack, leaving its services and members running. So the
 * errors are listened for and dropped, and the console output stops after
 * the first one (the log file still gets everything).
 */
export function guardConsole(streams: ConsoleStreams = process): ConsoleOutput {
  let broken = false;
  streams.stdout.on('error', () => {
    broken = true;
  });
  streams.stderr.on('error', () => {});
  const print = (text: string) => {
    if (broken) return;
    try {
      streams.stdout.write(text);
    } catch {
      // A stream already destroyed throws on some Node versions: the same failure.
      broken = true;
    }
  };
  return {
    write: (line) => print(`${line}\n`),
    print,
    get broken() {
      return broken;
    },
  };
}
