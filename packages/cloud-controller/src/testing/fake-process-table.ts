import type { ProcessTable, ProcStat } from '../proc-table.js';

interface FakeProcess extends ProcStat {
  /** Keeps running on SIGTERM (a workload stuck in its shutdown). */
  ignoresTerm: boolean;
  /** A SIGTERM that arrived while stopped, delivered on SIGCONT (as the kernel does). */
  termPending: boolean;
}

export interface FakeProcessInit {
  pid: number;
  /** @default pid (its own group leader) */
  pgid?: number;
  /** @default 1 */
  ppid?: number;
  /** @default pid × 10 */
  startTime?: number;
  /** @default 'S' */
  state?: string;
  /** @default false */
  ignoresTerm?: boolean;
}

/**
 * An in-memory process table for unit tests of the local driver: processes
 * with groups and start times, signals with their kernel semantics (SIGKILL
 * ends even a stopped process; SIGTERM stays pending while stopped until
 * SIGCONT), pid reuse and reboots on demand. Every signal is recorded.
 */
export class FakeProcessTable implements ProcessTable {
  readonly signals: { target: number; signal: NodeJS.Signals | 0 }[] = [];
  /**
   * Called after each signal delivered to a live process (a test plays what
   * the process does on it: a workload starting a new agent on SIGUSR2).
   */
  onSignal: ((target: number, signal: NodeJS.Signals | 0) => void) | undefined;
  private readonly processes = new Map<number, FakeProcess>();
  private boot = 'boot-1';

  add(init: FakeProcessInit): ProcStat {
    const process: FakeProcess = {
      pid: init.pid,
      ppid: init.ppid ?? 1,
      pgid: init.pgid ?? init.pid,
      startTime: init.startTime ?? init.pid * 10,
      state: init.state ?? 'S',
      ignoresTerm: init.ignoresTerm ?? false,
      termPending: false,
    };
    this.processes.set(init.pid, process);
    return { ...process };
  }

  /** The process exits; with `zombie`, it stays in the table as Z (nobody reaped it yet). */
  exit(pid: number, options: { zombie?: boolean } = {}): void {
    const process = this.processes.get(pid);
    if (!process) return;
    if (options.zombie) process.state = 'Z';
    else this.processes.delete(pid);
  }

  /** A new boot: every process is gone and start times count from zero again. */
  reboot(): void {
    this.processes.clear();
    this.boot = `boot-${Number(this.boot.slice(5)) + 1}`;
  }

  has(pid: number): boolean {
    return this.processes.has(pid);
  }

  stat(pid: number): ProcStat | undefined {
    const process = this.processes.get(pid);
    if (!process) return undefined;
    const { ignoresTerm: _i, termPending: _t, ...stat } = process;
    return stat;
  }

  groupMembers(pgid: number): number[] {
    return [...this.processes.values()].filter((p) => p.pgid === pgid && p.state !== 'Z').map((p) => p.pid);
  }

  bootId(): string {
    return this.boot;
  }

  kill(target: number, signal: NodeJS.Signals | 0): boolean {
    this.signals.push({ target, signal });
    const targets =
      target < 0
        ? [...this.processes.values()].filter((p) => p.pgid === -target)
        : [this.processes.get(target)].filter((p) => p !== undefined);
    if (targets.length === 0) return false;
    for (const process of targets) this.deliver(process, signal);
    this.onSignal?.(target, signal);
    return true;
  }

  private deliver(process: FakeProcess, signal: NodeJS.Signals | 0): void {
    if (process.state === 'Z') return;
    switch (signal) {
      case 'SIGKILL':
        this.processes.delete(process.pid);
        return;
      case 'SIGSTOP':
        process.state = 'T';
        return;
      case 'SIGCONT':
        if (process.state !== 'T') return;
        process.state = 'S';
        if (process.termPending && !process.ignoresTerm) this.processes.delete(process.pid);
        return;
      case 'SIGTERM':
        if (process.state === 'T') process.termPending = true;
        else if (!process.ignoresTerm) this.processes.delete(process.pid);
        return;
      default:
        return;
    }
  }
}
