import { readdirSync, readFileSync } from 'node:fs';
import { FaultlineError } from '@faultline/core';

/** One process as /proc/<pid>/stat describes it. */
export interface ProcStat {
  pid: number;
  /** `R` running, `S`/`D` sleeping, `T`/`t` stopped, `Z` zombie, `X` dead… (proc(5)) */
  state: string;
  ppid: number;
  /** Process group id (field 5). */
  pgid: number;
  /** Start time after boot in clock ticks (field 22): with the pid, it names one process for the life of the machine. */
  startTime: number;
}

/**
 * The narrow view of the OS process table the local driver needs, so its
 * liveness, pid-reuse and terminate logic is unit-tested against a fake.
 */
export interface ProcessTable {
  /** The process `pid`, or undefined when there is none. */
  stat(pid: number): ProcStat | undefined;
  /** Pids of the processes in group `pgid` that are not zombies. */
  groupMembers(pgid: number): number[];
  /** Changes at every boot: start times count from boot, so they only compare within one. */
  bootId(): string;
  /** process.kill; a negative target is a process group. False when there is no such process (ESRCH). */
  kill(target: number, signal: NodeJS.Signals | 0): boolean;
}

/**
 * Parses one /proc/<pid>/stat line. The command name (field 2) is in
 * parentheses and may itself contain spaces and parentheses, so fields are
 * counted from the last `)`. Returns undefined for anything else.
 */
export function parseProcStat(text: string): ProcStat | undefined {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open <= 0 || close < open) return undefined;
  const pid = Number(text.slice(0, open).trim());
  // Field 3 (state) is the first after the name; field N is rest[N - 3].
  const rest = text
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  const state = rest[0];
  const ppid = Number(rest[1]);
  const pgid = Number(rest[2]);
  const startTime = Number(rest[19]);
  if (!state || ![pid, ppid, pgid, startTime].every(Number.isSafeInteger)) return undefined;
  return { pid, state, ppid, pgid, startTime };
}

export class PlatformError extends FaultlineError {
  constructor(reason: string, cause?: unknown) {
    super('FL_ERR_PLATFORM_UNSUPPORTED', `the local driver cannot run here: ${reason}`, { cause });
  }
}

function readStat(pid: number): ProcStat | undefined {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    // ENOENT (gone) or ESRCH (exited while read): no such process.
    return undefined;
  }
}

/** The real table: Linux procfs and process.kill. */
export const linuxProcessTable: ProcessTable = {
  stat: readStat,
  groupMembers: (pgid) => {
    const members: number[] = [];
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      const stat = readStat(Number(name));
      if (stat && stat.pgid === pgid && stat.state !== 'Z' && stat.state !== 'X') members.push(stat.pid);
    }
    return members;
  },
  bootId: () => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(),
  kill: (target, signal) => {
    try {
      process.kill(target, signal);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
      throw error;
    }
  },
};

/** Fails fast, with one clear error, where there is no procfs to read start times from. */
export function assertProcfs(table: ProcessTable): void {
  let readable: boolean;
  try {
    table.bootId();
    readable = table.stat(process.pid) !== undefined;
  } catch (cause) {
    throw new PlatformError('Linux /proc is not available', cause);
  }
  if (!readable) throw new PlatformError('Linux /proc is not available', `/proc/${process.pid}/stat is unreadable`);
}
