import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { type Clock, type Logger, sleep } from '@faultline/core';
import { PostgresInUseError } from './errors.js';
import { killTree, type ServiceProcessTable } from './process-table.js';
import type { ServiceRecord } from './service-records.js';

/** Whose a running postmaster is: this folder's dead supervisor's (services.json), nobody's, or a live parent's. */
export type PostmasterOwner = { kind: 'recorded' } | { kind: 'orphan' } | { kind: 'supervised'; parent: number };

/** Whether `parent` holds the other end of `pid`'s stdin pipe; undefined when that cannot be told. */
export type HoldsStdin = (parent: number, pid: number) => boolean | undefined;

/**
 * The supervisor's own test: it starts every service with a stdin pipe only
 * it holds. A parent holding the pipe is the postmaster's live supervisor; a
 * parent that does not (a subreaper, `systemd --user`, that adopted the
 * orphan of a dead one) is not. Undefined when stdin is no pipe or the
 * descriptors cannot be read.
 */
export const parentHoldsStdin: HoldsStdin = (parent, pid) => {
  try {
    const stdin = readlinkSync(`/proc/${pid}/fd/0`);
    if (!stdin.startsWith('pipe:')) return undefined;
    return readdirSync(`/proc/${parent}/fd`).some((fd) => {
      try {
        return readlinkSync(`/proc/${parent}/fd/${fd}`) === stdin;
      } catch {
        return false;
      }
    });
  } catch {
    return undefined;
  }
};

export interface OwnerOptions {
  table: ServiceProcessTable;
  /** What this folder's last supervisor recorded of its PostgreSQL. */
  records: readonly ServiceRecord[];
  /** @default parentHoldsStdin */
  holdsStdin?: HoldsStdin;
}

/**
 * Whose the running postmaster `pid` is. Recorded (same pid, start time and
 * boot in this folder's services.json, whose supervisor is dead: this one
 * holds the folder's lock): ours to stop. Its parent init (pid 1), or a
 * parent that does not hold its stdin pipe: an orphan, ours to stop too.
 * Anything else (a live parent holding the pipe, or one that cannot be told):
 * another supervisor's.
 */
export function ownerOf(pid: number, options: OwnerOptions): PostmasterOwner | undefined {
  const { table, records } = options;
  const stat = table.stat(pid);
  if (!stat || stat.state === 'Z') return undefined;
  const boot = table.bootId();
  if (records.some((r) => r.pid === pid && r.startTime === stat.startTime && r.bootId === boot)) {
    return { kind: 'recorded' };
  }
  if (stat.ppid <= 1) return { kind: 'orphan' };
  const holds = (options.holdsStdin ?? parentHoldsStdin)(stat.ppid, pid);
  return holds === false ? { kind: 'orphan' } : { kind: 'supervised', parent: stat.ppid };
}

/** Whether `pid` is a postmaster (its command line `…/postgres -D <dir> …`), serving `dataDir` when one is given. */
function isPostmaster(pid: number, dataDir?: string): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const at = argv.indexOf('-D');
    if (!(argv[0] ?? '').endsWith('postgres') || at <= 0) return false;
    return dataDir === undefined || path.resolve(argv[at + 1] ?? '') === dataDir;
  } catch {
    return false;
  }
}

/** The pid in `<dataDir>/postmaster.pid` when it names a live postmaster of that folder. */
function postmasterOf(dataDir: string): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    return undefined;
  }
  // A stale file (its postmaster gone, the pid reused by anything else) is PostgreSQL's own to ignore.
  return Number.isSafeInteger(pid) && pid > 1 && isPostmaster(pid, dataDir) ? pid : undefined;
}

export interface StopLeftoverPostmasterOptions extends OwnerOptions {
  clock: Clock;
  logger: Logger;
  /** Fast shutdown (SIGINT) to immediate (SIGQUIT), and that to SIGKILL. */
  graceMs: number;
}

/**
 * The PostgreSQL a dead supervisor left running: the one its records name
 * (`records`, alive under the same pid and start time) and the one the data
 * folder's `postmaster.pid` names. Each is stopped only if it is this
 * folder's (recorded) or an orphan (ownerOf); one another live process runs
 * fails the start (PostgresInUseError, naming it) and is left alone. Stopped
 * with care: SIGCONT, a fast shutdown (SIGINT), an immediate one (SIGQUIT),
 * `graceMs` apart, and only then SIGKILL, its backends first (killTree).
 * Returns the pids it stopped.
 */
export async function stopLeftoverPostmaster(
  dataDir: string | undefined,
  options: StopLeftoverPostmasterOptions,
): Promise<number[]> {
  const { table, clock, logger, graceMs, records } = options;
  const dir = dataDir === undefined ? undefined : path.resolve(dataDir);
  const recorded = records
    .filter((r) => table.stat(r.pid)?.startTime === r.startTime && isPostmaster(r.pid))
    .map((r) => r.pid);
  const inFolder = dir === undefined ? undefined : postmasterOf(dir);
  const candidates = [...new Set([...recorded, ...(inFolder === undefined ? [] : [inFolder])])];
  const stopped: number[] = [];
  for (const pid of candidates) {
    const owner = ownerOf(pid, options);
    if (!owner) continue;
    if (owner.kind === 'supervised') throw new PostgresInUseError(pid, owner.parent, dir ?? '(its data folder)');
    const startTime = table.stat(pid)?.startTime;
    const alive = () => {
      const stat = table.stat(pid);
      return stat !== undefined && stat.state !== 'Z' && stat.startTime === startTime;
    };
    logger.warn('stopping the PostgreSQL a previous supervisor left running', {
      event: 'stack.leftover_postgres_stopping',
      pid,
      owner: owner.kind,
      ...(dir === undefined ? {} : { dataDir: dir }),
    });
    const leadsGroup = table.stat(pid)?.pgid === pid;
    table.kill(leadsGroup ? -pid : pid, 'SIGCONT');
    for (const signal of ['SIGINT', 'SIGQUIT'] as const) {
      if (!alive()) break;
      table.kill(pid, signal);
      const deadline = clock.monotonicNow() + graceMs;
      while (alive() && clock.monotonicNow() < deadline) await sleep(clock, 100);
    }
    if (alive()) {
      logger.warn('the leftover PostgreSQL did not stop: killed, its backends first', {
        event: 'stack.leftover_postgres_killed',
        pid,
      });
      killTree(table, pid);
      const deadline = clock.monotonicNow() + graceMs;
      while (alive() && clock.monotonicNow() < deadline) await sleep(clock, 100);
    }
    stopped.push(pid);
  }
  return stopped;
}
