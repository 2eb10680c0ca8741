import { readdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import path from 'node:path';

/** One process as /proc shows it. */
export interface Proc {
  pid: number;
  ppid: number;
  pgid: number;
  /** R, S, D, T (stopped), Z… */
  state: string;
  /** Field 22 of /proc/<pid>/stat: with the pid, it names one process for the life of the machine. */
  startTime: number;
  cwd: string;
  cmdline: string;
}

/** A process named so it is never mistaken for another after its pid is reused. */
export interface ProcRef {
  pid: number;
  startTime: number;
}

/** `/proc/<pid>/stat`'s fields after the command (which may hold spaces and parentheses). */
export function parseStat(text: string): Pick<Proc, 'pid' | 'state' | 'ppid' | 'pgid' | 'startTime'> | undefined {
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  const pid = Number(text.slice(0, text.indexOf(' ')));
  const rest = text
    .slice(close + 2)
    .trim()
    .split(/\s+/);
  const [state, ppid, pgid] = [rest[0], Number(rest[1]), Number(rest[2])];
  const startTime = Number(rest[19]);
  if (!state || ![pid, ppid, pgid, startTime].every(Number.isSafeInteger)) return undefined;
  return { pid, state, ppid, pgid, startTime };
}

export function readProc(pid: number): Proc | undefined {
  try {
    const stat = parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    if (!stat) return undefined;
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
    let cwd = '';
    try {
      cwd = readlinkSync(`/proc/${pid}/cwd`);
    } catch {
      // a zombie has none
    }
    return { ...stat, cwd, cmdline };
  } catch {
    return undefined;
  }
}

export function allProcs(): Proc[] {
  const out: Proc[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const p = readProc(Number(entry));
    if (p) out.push(p);
  }
  return out;
}

/** Whether `p` belongs to the stack in `dir` (a real path): it runs in the folder or below it, or names it. */
export function inStack(p: Pick<Proc, 'cwd' | 'cmdline'>, dir: string): boolean {
  return p.cwd === dir || p.cwd.startsWith(`${dir}/`) || p.cmdline.includes(`${dir}/`);
}

/** The processes of the stack in `dir` (never this process, never a zombie). */
export function stackProcs(dir: string): Proc[] {
  const real = realpathSync(dir);
  return allProcs().filter((p) => p.pid !== process.pid && p.state !== 'Z' && inStack(p, real));
}

/** What a process of the stack is. */
export type Role =
  | { kind: 'supervisor' }
  | { kind: 'broker'; name: string }
  | { kind: 'sp'; node: string }
  | { kind: 'autoscaler'; node: string }
  | { kind: 'postmaster' }
  | { kind: 'postgres' }
  | { kind: 'workload'; memberId: string | null }
  | { kind: 'agent'; memberId: string | null }
  | { kind: 'other' };

/** The member a process works for, from its working folder `…/member-<id>`. */
function memberOf(cwd: string): string | null {
  const m = /^member-(.+)$/.exec(path.basename(cwd));
  return m ? (m[1] as string) : null;
}

/**
 * A stack process' role from its command line and folder (`dir` the stack's
 * real path, `pgDataDir` its PostgreSQL data folder). Pure.
 */
export function roleOf(p: Pick<Proc, 'cwd' | 'cmdline'>, dir: string, pgDataDir: string): Role {
  const c = p.cmdline;
  if (p.cwd === pgDataDir || p.cwd.startsWith(`${pgDataDir}/`) || c.includes(`-D ${pgDataDir}`)) {
    return /\/bin\/postgres\s+-D\s/.test(c) ? { kind: 'postmaster' } : { kind: 'postgres' };
  }
  if (c.includes('cloud-controller/dist/workload-main.js')) return { kind: 'workload', memberId: memberOf(p.cwd) };
  if (c.includes('cartridge-agent/dist/main.js')) return { kind: 'agent', memberId: memberOf(p.cwd) };
  if (p.cwd !== dir) return { kind: 'other' };
  if (/cli\/dist\/main\.js\s+stack\s+up\b/.test(c)) return { kind: 'supervisor' };
  const broker = /broker\/dist\/main\.js\s+--name\s+(\S+)/.exec(c) ?? /\/broker-([^/\s]+)\/mosquitto\.conf/.exec(c);
  if (broker) return { kind: 'broker', name: broker[1] as string };
  const sp = /stream-processor\/dist\/main\.js\s+--node\s+(\S+)/.exec(c);
  if (sp) return { kind: 'sp', node: sp[1] as string };
  const autoscaler = /autoscaler\/dist\/main\.js(?:\s+--node\s+(\S+))?/.exec(c);
  if (autoscaler) return { kind: 'autoscaler', node: autoscaler[1] ?? 'autoscaler' };
  return { kind: 'other' };
}

/** Sends `signal` to the process only if it is still the one recorded (pid and start time). */
export function signalRef(ref: ProcRef, signal: NodeJS.Signals): boolean {
  const now = readProc(ref.pid);
  if (!now || now.startTime !== ref.startTime || now.state === 'Z') return false;
  try {
    process.kill(ref.pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Sends `signal` to a process group, only while its leader `ref` is still the one recorded. */
export function signalGroup(leader: ProcRef, signal: NodeJS.Signals): boolean {
  const now = readProc(leader.pid);
  if (!now || now.startTime !== leader.startTime || now.state === 'Z' || now.pgid !== leader.pid) return false;
  try {
    process.kill(-leader.pid, signal);
    return true;
  } catch {
    return false;
  }
}
