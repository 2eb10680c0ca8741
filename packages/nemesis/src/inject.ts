import type { InjectedFault } from './model.js';
import type { LiveRow, StackPaths } from './observe.js';
import { memberProcesses, processesState } from './observe.js';
import { type Proc, type ProcRef, roleOf, signalGroup, signalRef, stackProcs } from './procs.js';
import type { PlannedFault } from './schedule.js';

export interface InjectorContext {
  paths: StackPaths;
  spNodes: readonly { id: string; statusPort: number }[];
  autoscalerNodes: readonly { id: string; healthPort: number }[];
  /** The registry's live members as last read (PostgreSQL may be paused right now). */
  liveMembers: () => readonly LiveRow[];
}

/** A process stopped by the nemesis and what continues it. */
interface Stopped {
  refs: ProcRef[];
  timer?: NodeJS.Timeout;
  fault: InjectedFault;
}

/** Time PostgreSQL runs between two stops of a slow-postgres fault. */
const SLOW_RUN_MS = 100;

const ref = (p: Proc): ProcRef => ({ pid: p.pid, startTime: p.startTime });

/** A node's role from its status (SP) or health (autoscaler) call; undefined when it does not answer (down, paused, restarting). */
async function roleAt(port: number, route: '/status' | '/health'): Promise<string | undefined> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}${route}`, { signal: AbortSignal.timeout(700) });
    if (!response.ok) return undefined;
    return ((await response.json()) as { role?: string }).role;
  } catch {
    return undefined;
  }
}

/**
 * Injects planned faults into the stack of `context.paths.dir`, by signals to
 * the pids of that stack's process table only (pid and start time checked
 * right before each signal). Pauses are continued after their duration;
 * `continueAll()` continues whatever is still stopped (at the end, on Ctrl-C).
 */
export class Injector {
  /** Member id → when the nemesis first harmed it. */
  readonly harmed = new Map<string, number>();
  private readonly stopped = new Set<Stopped>();
  /** pid:startTime → how many pauses under way hold it stopped (overlapping pauses of one target). */
  private readonly holds = new Map<string, number>();

  constructor(private readonly context: InjectorContext) {}

  private procs(): { proc: Proc; role: ReturnType<typeof roleOf> }[] {
    const { dir, pgDataDir } = this.context.paths;
    return stackProcs(dir).map((proc) => ({ proc, role: roleOf(proc, dir, pgDataDir) }));
  }

  async inject(f: PlannedFault): Promise<InjectedFault> {
    const fault: InjectedFault = {
      id: f.id,
      kind: f.kind,
      ...(f.target === undefined ? {} : { target: f.target }),
      burst: f.burst,
      at: Date.now(),
      targets: [],
      pids: [],
      memberIds: [],
      healedAt: null,
    };
    const skip = (why: string) => {
      fault.skipped = why;
      return fault;
    };
    switch (f.kind) {
      case 'kill-sp':
      case 'pause-sp': {
        const wanted = f.target === 'passive' ? 'PASSIVE' : 'ACTIVE';
        const roles = await Promise.all(
          this.context.spNodes.map(async (n) => [n.id, await roleAt(n.statusPort, '/status')]),
        );
        const node = roles.find(([, role]) => role === wanted)?.[0];
        if (!node)
          return skip(
            `no SP node answers as ${wanted} (${roles.map(([n, r]) => `${n}: ${r ?? 'no answer'}`).join(', ')})`,
          );
        const proc = this.procs().find((p) => p.role.kind === 'sp' && p.role.node === node)?.proc;
        if (!proc) return skip(`no process of ${node}`);
        fault.at = Date.now();
        if (!signalRef(ref(proc), f.kind === 'kill-sp' ? 'SIGKILL' : 'SIGSTOP'))
          return skip(`${node} exited meanwhile`);
        fault.targets.push(node);
        fault.pids.push(proc.pid);
        if (f.kind === 'pause-sp') this.continueLater(fault, [ref(proc)], f.durationMs ?? 1_000);
        return fault;
      }
      case 'kill-broker':
      case 'pause-broker': {
        const names = f.target === 'both' ? ['a', 'b'] : [f.target ?? 'a'];
        const procs = this.procs();
        const hit: Proc[] = [];
        fault.at = Date.now();
        for (const name of names) {
          const proc = procs.find((p) => p.role.kind === 'broker' && p.role.name === name)?.proc;
          if (!proc || !signalRef(ref(proc), f.kind === 'kill-broker' ? 'SIGKILL' : 'SIGSTOP')) continue;
          fault.targets.push(`broker-${name}`);
          fault.pids.push(proc.pid);
          hit.push(proc);
        }
        if (hit.length === 0) return skip(`no running broker ${names.join(' or ')}`);
        if (f.kind === 'pause-broker') this.continueLater(fault, hit.map(ref), f.durationMs ?? 1_000);
        return fault;
      }
      case 'pause-postgres': {
        fault.at = Date.now();
        const refs = this.stopPostgres();
        if (!refs) return skip('no postmaster of this stack');
        fault.targets.push('postgres');
        fault.pids.push(...refs.map((r) => r.pid));
        // Continued in reverse: the backends, then the postmaster.
        this.continueLater(fault, [...refs].reverse(), f.durationMs ?? 1_000);
        return fault;
      }
      case 'slow-postgres': {
        // Statement latency: PostgreSQL stopped latencyMs, running SLOW_RUN_MS, again, for durationMs.
        if (!this.procs().some((p) => p.role.kind === 'postmaster')) return skip('no postmaster of this stack');
        fault.at = Date.now();
        fault.targets.push('postgres');
        this.stutter(fault, f.latencyMs ?? 1_000, f.durationMs ?? 1_000);
        return fault;
      }
      case 'kill-autoscaler': {
        const wanted = f.target === 'passive' ? 'PASSIVE' : 'ACTIVE';
        const roles = await Promise.all(
          this.context.autoscalerNodes.map(async (n) => [n.id, await roleAt(n.healthPort, '/health')]),
        );
        const node = roles.find(([, role]) => role === wanted)?.[0];
        if (!node)
          return skip(
            `no autoscaler node answers as ${wanted} (${roles.map(([n, r]) => `${n}: ${r ?? 'no answer'}`).join(', ')})`,
          );
        const proc = this.procs().find((p) => p.role.kind === 'autoscaler' && p.role.node === node)?.proc;
        if (!proc) return skip(`no process of ${node}`);
        fault.at = Date.now();
        if (!signalRef(ref(proc), 'SIGKILL')) return skip(`${node} exited meanwhile`);
        fault.targets.push(node);
        fault.pids.push(proc.pid);
        return fault;
      }
      case 'kill-member':
      case 'hang-member':
      case 'kill-agent': {
        const byMember = memberProcesses(
          this.procs().map((p) => p.proc),
          this.context.paths,
        );
        // Active in the registry (as last read), both processes running, never harmed before.
        const candidates = this.context
          .liveMembers()
          .filter((m) => m.state === 'Active' && !this.harmed.has(m.memberId))
          .filter((m) => processesState(byMember.get(m.memberId)?.[0]) === 'running')
          .map((m) => m.memberId)
          .sort();
        const memberId = candidates[Math.min(candidates.length - 1, Math.floor(f.pick * candidates.length))];
        if (memberId === undefined) return skip('no healthy Active member to harm');
        const procs = byMember.get(memberId)?.[0];
        const workload = procs?.workload;
        const agent = procs?.agent;
        if (!workload || !agent) return skip(`${memberId} lost a process meanwhile`);
        fault.at = Date.now();
        const ok =
          f.kind === 'kill-agent'
            ? signalRef(ref(agent), 'SIGKILL')
            : signalGroup(ref(workload), f.kind === 'kill-member' ? 'SIGKILL' : 'SIGSTOP');
        if (!ok) return skip(`${memberId} exited meanwhile`);
        this.harmed.set(memberId, fault.at);
        fault.targets.push(memberId);
        fault.memberIds.push(memberId);
        fault.pids.push(...(f.kind === 'kill-agent' ? [agent.pid] : [workload.pid, agent.pid]));
        // Nothing for the nemesis to undo: terminating and replacing it is the autoscaler's job.
        fault.healedAt = fault.at;
        return fault;
      }
    }
  }

  /** SIGSTOP of the postmaster (first, so it forks nothing meanwhile), then of every other process of its data folder. */
  private stopPostgres(): ProcRef[] | undefined {
    const postmaster = this.procs().find((p) => p.role.kind === 'postmaster')?.proc;
    if (!postmaster || !signalRef(ref(postmaster), 'SIGSTOP')) return undefined;
    const refs = [ref(postmaster)];
    for (const { proc, role } of this.procs()) {
      if (role.kind === 'postgres' && signalRef(ref(proc), 'SIGSTOP')) refs.push(ref(proc));
    }
    return refs;
  }

  /**
   * A slow-postgres fault: short pauses, one after another, each continued
   * after `latencyMs` (a held pause of another fault keeps its processes
   * stopped), until `durationMs` has passed. Each stop is one pause of the
   * fault's; the fault heals when the last is continued.
   */
  private stutter(fault: InjectedFault, latencyMs: number, durationMs: number): void {
    const endAt = Date.now() + durationMs;
    // Stands for the whole fault among the pauses under way: continueAll() ends it, and with it the cycle.
    const whole: Stopped = { refs: [], fault };
    this.stopped.add(whole);
    const cycle = () => {
      if (!this.stopped.has(whole)) return;
      if (Date.now() >= endAt) {
        this.resume(whole);
        return;
      }
      const refs = this.stopPostgres() ?? [];
      for (const r of refs) if (!fault.pids.includes(r.pid)) fault.pids.push(r.pid);
      // One stop, continued in reverse (the backends, then the postmaster); its healedAt is its own, not the fault's.
      this.continueLater({ ...fault }, [...refs].reverse(), Math.min(latencyMs, endAt - Date.now()), () => {
        whole.timer = setTimeout(cycle, SLOW_RUN_MS);
      });
    };
    cycle();
  }

  private continueLater(fault: InjectedFault, refs: ProcRef[], ms: number, then: () => void = () => {}): void {
    for (const r of refs)
      this.holds.set(`${r.pid}:${r.startTime}`, (this.holds.get(`${r.pid}:${r.startTime}`) ?? 0) + 1);
    const entry: Stopped = { refs, fault };
    entry.timer = setTimeout(() => {
      this.resume(entry);
      then();
    }, ms);
    this.stopped.add(entry);
  }

  private resume(entry: Stopped): void {
    clearTimeout(entry.timer);
    if (!this.stopped.delete(entry)) return;
    for (const r of entry.refs) {
      const key = `${r.pid}:${r.startTime}`;
      const left = (this.holds.get(key) ?? 1) - 1;
      if (left > 0) {
        this.holds.set(key, left); // another pause still holds it: continued when that one ends
        continue;
      }
      this.holds.delete(key);
      signalRef(r, 'SIGCONT'); // a process killed meanwhile is skipped
    }
    // This pause is over; a process another pause still holds is that pause's to heal.
    entry.fault.healedAt = Date.now();
  }

  /** Pauses still under way. */
  get pausesPending(): number {
    return this.stopped.size;
  }

  /** Continues every process the nemesis stopped and has not continued yet (not hung members). */
  continueAll(): void {
    for (const entry of [...this.stopped]) this.resume(entry);
  }
}
