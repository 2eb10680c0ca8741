import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync, realpathSync, rmSync, statSync, writeSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { ProcessTable } from '@faultline/cloud-controller';
import { type Clock, mkdirPrivate } from '@faultline/core';
import { StackRunningError } from './errors.js';

/** Who holds the lock: a process named by pid, start time (/proc/<pid>/stat field 22) and boot. */
export interface LockHolder {
  pid: number;
  startTime: number;
  bootId: string;
}

export interface StackLockOptions {
  /** `.faultline/run/supervisor.lock` */
  file: string;
  table: ProcessTable;
  clock: Clock;
  /** @default this process */
  pid?: number;
}

/**
 * A lock file that is empty or unreadable (its writer died between creating
 * and writing it, or is writing it now) counts as held for this long after it
 * was last written, then as stale.
 */
const UNWRITTEN_GRACE_MS = 5_000;

type Read =
  | { kind: 'missing' }
  | { kind: 'unreadable'; text: string }
  | { kind: 'holder'; text: string; holder: LockHolder };

function read(file: string): Read {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return { kind: 'missing' };
  }
  try {
    const holder = JSON.parse(text) as Partial<LockHolder>;
    if (
      Number.isSafeInteger(holder.pid) &&
      Number.isSafeInteger(holder.startTime) &&
      typeof holder.bootId === 'string'
    ) {
      return { kind: 'holder', text, holder: holder as LockHolder };
    }
  } catch {
    // below
  }
  return { kind: 'unreadable', text };
}

/** Creates `file` only if it does not exist (O_CREAT | O_EXCL), mode 0600, with `text`; false when it exists. */
function createExclusive(file: string, text: string): boolean {
  let fd: number;
  try {
    fd = openSync(file, 'wx', 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
  return true;
}

/**
 * The kernel's half of the lock: a listening Unix socket in the abstract
 * namespace (no file; Linux), named from a hash of the run folder's real
 * path. Only one process can listen on a name, and the kernel closes it when
 * that process dies, SIGKILL and OOM included: no stale state, no race
 * between two supervisors that both found the same stale file. Its
 * descriptor is close-on-exec, so no service inherits it.
 */
export function kernelLockName(file: string): string {
  const dir = path.dirname(file);
  const real = (() => {
    try {
      return realpathSync(dir);
    } catch {
      return path.resolve(dir);
    }
  })();
  return `\0faultline-stack-${createHash('sha256').update(real).digest('hex').slice(0, 40)}`;
}

/** Listens on `name`; undefined when another process listens on it (EADDRINUSE). */
async function listenExclusive(name: string): Promise<net.Server | undefined> {
  const server = net.createServer((socket) => socket.destroy());
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ path: name, exclusive: true }, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    server.close();
    if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') return undefined;
    throw error;
  }
  // Held for the supervisor's life, but never what keeps it alive.
  server.unref();
  return server;
}

/**
 * One stack per state folder: `stack up` takes the lock before it starts
 * anything and gives it back when everything has stopped. Two halves:
 * - the kernel's (kernelLockName): the one that decides. The first
 *   supervisor to listen on the folder's abstract socket holds it until it
 *   releases it or dies; a second one is refused at once;
 * - the file `.faultline/run/supervisor.lock` (O_EXCL, mode 0600): the
 *   holder by pid, start time and boot, for the refusal to name and for
 *   `stack.stale_lock` to report. With the socket held, a file whose holder
 *   is gone (kill -9, a reboot, its pid reused) is stale and replaced; one
 *   that names a live holder (a supervisor the socket cannot see: another
 *   network namespace) still refuses.
 */
export class StackLock {
  private constructor(
    readonly file: string,
    private readonly text: string,
    private readonly server: net.Server,
    /** The dead supervisor whose lock this one replaced, if any. */
    readonly replaced: LockHolder | undefined,
  ) {}

  /** Takes the lock; a StackRunningError when a live supervisor holds it. */
  static async acquire(options: StackLockOptions): Promise<StackLock> {
    const { file, table, clock } = options;
    const pid = options.pid ?? process.pid;
    const stat = table.stat(pid);
    if (!stat) throw new Error(`no process ${pid} in the process table`);
    const text = JSON.stringify({ pid, startTime: stat.startTime, bootId: table.bootId() } satisfies LockHolder);
    mkdirPrivate(path.dirname(file));
    const server = await listenExclusive(kernelLockName(file));
    if (!server) {
      const found = read(file);
      throw new StackRunningError(found.kind === 'holder' ? found.holder.pid : undefined, file);
    }
    try {
      let replaced: LockHolder | undefined;
      // A few rounds: each is lost only to a supervisor the socket does not see, writing the file meanwhile.
      for (let round = 0; round < 5; round++) {
        if (createExclusive(file, text)) return new StackLock(file, text, server, replaced);
        const found = read(file);
        if (found.kind === 'missing') continue;
        if (held(found, file, table, clock)) {
          throw new StackRunningError(found.kind === 'holder' ? found.holder.pid : undefined, file);
        }
        // Stale, and no live supervisor of this folder can be writing it: the socket is ours.
        rmSync(file, { force: true });
        if (found.kind === 'holder') replaced = found.holder;
      }
      const last = read(file);
      throw new StackRunningError(last.kind === 'holder' ? last.holder.pid : undefined, file);
    } catch (error) {
      server.close();
      throw error;
    }
  }

  /** Gives the lock back: the file if it is still this one's, then the socket. Safe to call twice. */
  release(): void {
    const found = read(this.file);
    if (found.kind !== 'missing' && 'text' in found && found.text === this.text) rmSync(this.file, { force: true });
    if (this.server.listening) this.server.close();
  }
}

function mtimeOf(file: string): number {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

/** Whether what was read from `file` names a live holder (or one still writing it). */
function held(found: Read, file: string, table: ProcessTable, clock: Clock): boolean {
  if (found.kind === 'holder') {
    const { holder } = found;
    const stat = table.stat(holder.pid);
    return holder.bootId === table.bootId() && stat?.startTime === holder.startTime && stat.state !== 'Z';
  }
  if (found.kind === 'unreadable') return clock.now() - mtimeOf(file) < UNWRITTEN_GRACE_MS;
  return false;
}
