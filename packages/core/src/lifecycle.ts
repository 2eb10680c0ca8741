import { ConfigError, isFaultlineError } from './errors.js';
import type { Logger } from './logger.js';

/** Anything with an idempotent async close (README "Conventions"). */
export interface Closeable {
  close(): Promise<void>;
}

/**
 * Wraps `fn` so it runs once; every later call returns the first call's
 * promise. This is how every `close()` in the project is made safe to call
 * twice (aedes' close() is the model).
 */
export function once<T>(fn: () => Promise<T>): () => Promise<T> {
  let pending: Promise<T> | undefined;
  return () => {
    pending ??= fn();
    return pending;
  };
}

/** Closes children in reverse order of start; one failure does not stop the rest. */
export async function closeAll(children: readonly (Closeable | undefined)[], log?: Logger): Promise<void> {
  for (const child of [...children].reverse()) {
    if (!child) continue;
    try {
      await child.close();
    } catch (error) {
      log?.warn('close failed', { event: 'lifecycle.close_failed', error });
    }
  }
}

/**
 * Set to `1` by the stack supervisor in the environment of every service it
 * starts, whose stdin is then a pipe the supervisor holds open: runMain stops
 * the service when that pipe ends (README "The stack: run it, break it, watch it").
 */
export const SUPERVISED_ENV = 'FAULTLINE_SUPERVISED';

export interface MainContext {
  logger: Logger;
  /** Aborted when a signal asks the process to stop. */
  signal: AbortSignal;
}

export interface RunMainOptions {
  /** Longest wait for close() on SIGINT/SIGTERM before exiting anyway. @default 10_000 */
  closeTimeoutMs?: number;
  /** The process to attach to (tests pass a fake). @default process */
  proc?: NodeJS.Process;
}

/**
 * The one way a `main.ts` runs a service: builds it with `start`, closes it on
 * SIGINT/SIGTERM (a second signal exits at once), exits 2 on a ConfigError with
 * its message (naming the key), 1 on any other start failure or an uncaught
 * error. `makeLogger` runs after config loading so the level can come from it.
 * Started by the stack supervisor (`FAULTLINE_SUPERVISED=1`), it also closes
 * the service when stdin ends: the supervisor is gone.
 */
export async function runMain(
  makeLogger: () => Logger & { flush?(): Promise<void> },
  start: (ctx: MainContext) => Promise<Closeable>,
  options: RunMainOptions = {},
): Promise<void> {
  const { proc, closeTimeoutMs } = withDefaults({ proc: process, closeTimeoutMs: 10_000 }, options);
  let logger: (Logger & { flush?(): Promise<void> }) | undefined;
  const controller = new AbortController();
  let service: Closeable | undefined;
  const exit = async (code: number): Promise<never> => {
    await logger?.flush?.().catch(() => {});
    proc.exit(code);
    // proc.exit does not return in production; a test's fake may.
    return undefined as never;
  };
  const shutdown = once(async () => {
    controller.abort();
    // A deadline, not a timer of the service: the process exits regardless.
    const deadline = setTimeout(() => {
      logger?.error('close timed out, exiting', { event: 'main.close_timed_out', closeTimeoutMs });
      void exit(1);
    }, closeTimeoutMs);
    deadline.unref();
    try {
      await service?.close();
      logger?.info('stopped', { event: 'main.stopped' });
      clearTimeout(deadline);
      await exit(0);
    } catch (error) {
      logger?.error('close failed', { event: 'main.close_failed', error });
      await exit(1);
    }
  });
  let signals = 0;
  const onSignal = (name: string) => () => {
    signals += 1;
    if (signals > 1) {
      logger?.warn('second signal, exiting now', { event: 'main.second_signal', signal: name });
      void exit(1);
      return;
    }
    logger?.info('signal received, stopping', { event: 'main.signal', signal: name });
    void shutdown();
  };
  proc.on('SIGINT', onSignal('SIGINT'));
  proc.on('SIGTERM', onSignal('SIGTERM'));
  // The supervisor holds the write end of stdin. The kernel closes it when the supervisor dies,
  // even of SIGKILL, which no handler of the supervisor sees: then nobody will ever stop this
  // service, and a new `stack up` would start a second one beside it. So it stops itself.
  if (proc.env?.[SUPERVISED_ENV] === '1' && proc.stdin) {
    const gone = once(async () => {
      logger?.warn('stdin ended: the supervisor is gone, stopping', { event: 'main.supervisor_gone' });
      await shutdown();
    });
    proc.stdin.on('end', () => void gone());
    proc.stdin.on('close', () => void gone());
    // A read error on the pipe (EPIPE, ECONNRESET) means the same: it is not there any more.
    proc.stdin.on('error', () => void gone());
    // What the supervisor might write is not read: the pipe says only whether it is still there.
    proc.stdin.on('data', () => {});
  }
  proc.on('uncaughtException', (error) => {
    logger?.error('uncaught exception', { event: 'main.uncaught_exception', error, stack: error.stack });
    void shutdown();
  });
  proc.on('unhandledRejection', (reason) => {
    logger?.error('unhandled rejection', {
      event: 'main.unhandled_rejection',
      error: reason instanceof Error ? reason : String(reason),
    });
    void shutdown();
  });
  try {
    logger = makeLogger();
    service = await start({ logger, signal: controller.signal });
  } catch (error) {
    if (error instanceof ConfigError) {
      proc.stderr.write(`${error.message}\n`);
      await exit(2);
      return;
    }
    const code = isFaultlineError(error) ? error.code : undefined;
    if (logger) logger.error('start failed', { event: 'main.start_failed', error, code });
    else proc.stderr.write(`start failed: ${error instanceof Error ? error.message : String(error)}\n`);
    await exit(1);
  }
}

/**
 * Resolves options once (docs/architecture.md, "Conventions"): every field of `defaults` that `input`
 * leaves undefined keeps its default. A plain spread would let an explicit
 * `undefined` (an unset config key passed through) replace the default.
 */
export function withDefaults<D extends object, I extends object>(defaults: D, input: I): D & I {
  const out = { ...defaults } as Record<string, unknown>;
  for (const [key, value] of Object.entries(input)) if (value !== undefined) out[key] = value;
  return out as D & I;
}
