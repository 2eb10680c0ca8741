import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { PassThrough } from 'node:stream';
import type { ProcStat } from '@faultline/cloud-controller';
import type { ServiceProcessTable } from '../process-table.js';
import type { SpawnProcess } from '../supervisor-options.js';

/** How a fake process answers a stop signal. */
export type FakeStopBehaviour = 'exits' | 'ignores';

/** One process the supervisor spawned, as the test sees and drives it. */
export class FakeChild extends EventEmitter {
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  stopped = false;
  /** What SIGTERM, SIGINT and SIGQUIT do to it. */
  onStopSignal: FakeStopBehaviour = 'exits';
  readonly stdin = new PassThrough();
  readonly stdout = new PassThrough();
  readonly stderr = new PassThrough();
  private pendingStop = false;

  constructor(
    readonly pid: number,
    readonly command: string,
    readonly args: readonly string[],
    readonly options: SpawnOptions,
  ) {
    super();
  }

  get alive(): boolean {
    return this.exitCode === null && this.signalCode === null;
  }

  /**
   * The process exits by itself (after a microtask, as a real exit is seen
   * later): 'exit', then its stdout and stderr end and 'close' follows.
   * With `outputOpen`, they stay open (a child that outlived it holds them,
   * or its last output is still unread) until closeOutput().
   */
  exit(code: number | null, signal: NodeJS.Signals | null = null, options: { outputOpen?: boolean } = {}): void {
    if (!this.alive) return;
    this.exitCode = code;
    this.signalCode = signal;
    queueMicrotask(() => {
      this.emit('exit', code, signal);
      if (!options.outputOpen) this.closeOutput();
    });
  }

  /** Its stdout and stderr end; once both have been read to the end, 'close'. */
  closeOutput(): void {
    let open = 2;
    const ended = () => {
      open -= 1;
      if (open === 0) this.emit('close', this.exitCode, this.signalCode);
    };
    for (const stream of [this.stdout, this.stderr]) {
      stream.once('end', ended);
      stream.end();
    }
  }

  /** ChildProcess.kill, the supervisor's fallback. */
  kill(signal: NodeJS.Signals = 'SIGTERM'): boolean {
    return this.deliver(signal);
  }

  /** A signal with its kernel semantics: SIGKILL ends even a stopped process; others wait for SIGCONT. */
  deliver(signal: NodeJS.Signals | 0): boolean {
    if (!this.alive) return false;
    switch (signal) {
      case 'SIGKILL':
        this.exit(null, 'SIGKILL');
        break;
      case 'SIGSTOP':
        this.stopped = true;
        break;
      case 'SIGCONT':
        this.stopped = false;
        if (this.pendingStop) this.stopSignal();
        break;
      case 'SIGTERM':
      case 'SIGINT':
      case 'SIGQUIT':
        if (this.stopped) this.pendingStop = true;
        else this.stopSignal();
        break;
      default:
        break;
    }
    return true;
  }

  private stopSignal(): void {
    this.pendingStop = false;
    if (this.onStopSignal === 'exits') this.exit(0);
  }
}

/** A process a service started, which the supervisor did not (a PostgreSQL backend): alive until SIGKILL. */
export interface FakeDescendant {
  pid: number;
  ppid: number;
  pgid: number;
  alive: boolean;
}

/**
 * The processes a Supervisor spawns, faked: `spawn` hands out FakeChild
 * processes with increasing pids, each the leader of its own group, and the
 * ProcessTable side (start times, children, signals to a pid or a group)
 * acts on them and on their descendants. Every signal is recorded.
 */
export class FakeProcesses implements ServiceProcessTable {
  readonly children: FakeChild[] = [];
  readonly descendants: FakeDescendant[] = [];
  readonly signals: { target: number; signal: NodeJS.Signals | 0 }[] = [];
  /** Called by spawn before it hands out a process: a test makes it throw (EPERM, EAGAIN). */
  onSpawn: (command: string, args: readonly string[]) => void = () => {};
  private nextPid = 1_000;

  readonly spawn = ((command: string, args: readonly string[], options: SpawnOptions) => {
    this.onSpawn(command, args);
    const child = new FakeChild(this.nextPid++, command, args, options);
    this.children.push(child);
    return child as unknown as ChildProcess;
  }) as unknown as SpawnProcess;

  /** The processes of the service whose command line ends with `name`, oldest first. */
  of(name: string): FakeChild[] {
    return this.children.filter((c) => c.args.at(-1) === name);
  }

  /** The newest process of the service `name`. */
  last(name: string): FakeChild {
    const child = this.of(name).at(-1);
    if (!child) throw new Error(`no process of ${name}`);
    return child;
  }

  /**
   * A process `parent` started, in a session of its own unless `pgid` says
   * otherwise (a PostgreSQL backend): it outlives its parent until SIGKILLed.
   */
  addDescendant(parent: number, options: { pgid?: number } = {}): FakeDescendant {
    const pid = this.nextPid++;
    const descendant = { pid, ppid: parent, pgid: options.pgid ?? pid, alive: true };
    this.descendants.push(descendant);
    return descendant;
  }

  stat(pid: number): ProcStat | undefined {
    const child = this.children.find((c) => c.pid === pid && c.alive);
    if (child) return { pid, state: child.stopped ? 'T' : 'S', ppid: 1, pgid: pid, startTime: pid * 10 };
    const descendant = this.descendants.find((d) => d.pid === pid && d.alive);
    if (!descendant) return undefined;
    // Its parent gone, it is an orphan: init's.
    const ppid = this.children.some((c) => c.pid === descendant.ppid && c.alive) ? descendant.ppid : 1;
    return { pid, state: 'S', ppid, pgid: descendant.pgid, startTime: pid * 10 };
  }

  groupMembers(pgid: number): number[] {
    const leader = this.children.some((c) => c.pid === pgid && c.alive) ? [pgid] : [];
    return [...leader, ...this.descendants.filter((d) => d.alive && d.pgid === pgid).map((d) => d.pid)];
  }

  childrenOf(ppid: number): number[] {
    return this.descendants.filter((d) => d.alive && this.stat(d.pid)?.ppid === ppid).map((d) => d.pid);
  }

  bootId(): string {
    return 'boot-1';
  }

  kill(target: number, signal: NodeJS.Signals | 0): boolean {
    this.signals.push({ target, signal });
    const pid = Math.abs(target);
    const child = this.children.find((c) => c.pid === pid && c.alive);
    const descendants = this.descendants.filter((d) => d.alive && (target < 0 ? d.pgid === pid : d.pid === pid));
    for (const descendant of descendants) if (signal === 'SIGKILL') descendant.alive = false;
    const delivered = child ? child.deliver(signal) : false;
    return delivered || descendants.length > 0;
  }
}
