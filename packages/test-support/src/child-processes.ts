import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { withDefaults } from '@faultline/core';
import { canConnect } from './ports.js';

/** The last bytes a child wrote to stdout and stderr, for error messages. */
export interface OutputTail {
  text(): string;
}

const TAIL_BYTES = 16 * 1024;
const live = new Set<ChildProcess>();
const tempDirs = new Set<string>();
let exitHookInstalled = false;

function reap(): void {
  for (const child of live) child.kill('SIGKILL');
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
}

/**
 * Children of a test must not outlive it. 'exit' covers a process that ends
 * by itself; SIGTERM needs its own handler because its default action skips
 * 'exit' hooks, and it is how vitest stops each fork worker when its file is
 * done. Only synchronous work runs, which is enough for SIGKILL. A runner
 * killed with -9 itself is beyond any hook.
 */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', reap);
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    const onSignal = () => {
      reap();
      // Alone, restore the default action (terminate) by raising it again;
      // with other listeners, their owner decides.
      if (process.listenerCount(signal) === 1) {
        process.off(signal, onSignal);
        process.kill(process.pid, signal);
      }
    };
    process.on(signal, onSignal);
  }
}

/** A temp folder to remove on exit if nobody removed it before (forgetting stop()). */
export function trackTempDir(dir: string): () => void {
  installExitHook();
  tempDirs.add(dir);
  return () => tempDirs.delete(dir);
}

function isRunning(child: ChildProcess): boolean {
  // No pid: the spawn itself failed (ENOENT, EACCES) and 'exit' may never come.
  return child.pid !== undefined && child.exitCode === null && child.signalCode === null;
}

/**
 * Registers a spawned child for the exit hook and keeps the tail of its output.
 * The child and its pipes are unref'd: a test that forgets stop() must not
 * hang the runner, and the exit hook then kills the child.
 */
export function trackChild(child: ChildProcess): OutputTail {
  installExitHook();
  live.add(child);
  child.once('exit', () => live.delete(child));
  let tail = '';
  const keep = (chunk: Buffer | string) => {
    tail = (tail + chunk.toString()).slice(-TAIL_BYTES);
  };
  // Without a listener, a failed spawn would throw in the test process.
  child.on('error', (error) => keep(`${error.message}\n`));
  for (const stream of [child.stdout, child.stderr]) {
    if (!stream) continue;
    // Always read, so a chatty child never blocks on a full pipe.
    stream.on('data', keep);
    (stream as Readable & { unref?: () => void }).unref?.();
  }
  child.unref();
  return { text: () => tail };
}

/**
 * Resolves when the child has exited (at once if it already has). The child is
 * ref'd meanwhile: an unref'd child would let a script end with this promise
 * pending.
 */
export function onceExited(child: ChildProcess): Promise<void> {
  if (!isRunning(child)) return Promise.resolve();
  child.ref();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Signals a child (SIGKILL by default) and resolves once it has exited; nothing if it is not running. */
export async function killAndWait(child: ChildProcess | undefined, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (!child || !isRunning(child)) return;
  const exited = onceExited(child);
  child.kill(signal);
  await exited;
}

export interface UntilListeningOptions {
  /** @default 50 */
  pollMs?: number;
  /** @default 10_000 */
  timeoutMs?: number;
  /**
   * Another process already listened on the port before the child started: a
   * successful connect would prove nothing, so only the child's exit (its
   * "address in use" error) or the timeout ends the wait. @default false
   */
  portTakenBefore?: boolean;
}

/**
 * Polls a TCP connect to `port` until it succeeds. Rejects with the child's
 * output when it exits first (a bad config, a taken port) or on timeout.
 * Plain timers: this is test scaffolding, not product logic.
 */
export async function untilListening(
  child: ChildProcess,
  host: string,
  port: number,
  output: OutputTail,
  options: UntilListeningOptions = {},
): Promise<void> {
  const { pollMs, timeoutMs, portTakenBefore } = withDefaults(
    { pollMs: 50, timeoutMs: 10_000, portTakenBefore: false },
    options,
  );
  const deadline = Date.now() + timeoutMs;
  // 'close' comes after 'exit' once the pipes are drained: the reason a
  // process failed is usually in its very last line.
  const drained = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
  for (;;) {
    if (!isRunning(child)) {
      await Promise.race([drained, pause(1_000)]);
      const how = child.signalCode ? `signal ${child.signalCode}` : `code ${child.exitCode}`;
      throw new Error(`exited with ${how} before listening:\n${output.text().trim()}`);
    }
    // Still running after the connect: the listener is the child's.
    if (!portTakenBefore && (await canConnect(host, port)) && isRunning(child)) return;
    if (Date.now() > deadline) {
      const why = portTakenBefore ? 'port taken by another process' : 'not listening';
      throw new Error(`${why} on ${host}:${port} after ${timeoutMs} ms:\n${output.text().trim()}`);
    }
    await pause(pollMs);
  }
}
