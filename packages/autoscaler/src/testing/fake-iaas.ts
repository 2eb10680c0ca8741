import {
  type AdoptResult,
  type AgentRestartResult,
  type Iaas,
  type MemberInstance,
  type MemberSpec,
  SpawnError,
  type TerminateOptions,
  type TerminateResult,
} from '@faultline/cloud-controller';
import { type Clock, ClosedError, sleep, systemClock } from '@faultline/core';

export interface FakeIaasCall {
  op: 'spawn' | 'terminate' | 'isRunning' | 'adopt' | 'discover' | 'probe' | 'restartAgent';
  memberId: string | undefined;
  /** clock.now() when called. */
  at: number;
  /** terminate: the drain asked for (`TerminateOptions.drainMs`). */
  drainMs?: number;
}

/**
 * An Iaas for unit tests on fake time: members are entries in a map, spawn and
 * terminate take `spawnDelayMs` / `terminateDelayMs` on the injected Clock,
 * and a test decides what fails (`failSpawns`), what died (`kill()`), what
 * leaves processes behind (`stuck`) and what survives a restart
 * (`goneOnAdopt`). An agent restart (`restartAgentDelayMs`) gives the member's
 * handle a new agent number, unless its agent still runs (`agentRunning`) or
 * the restart is told to fail (`failAgentRestarts`). Every call is recorded in order.
 */
export class FakeIaas implements Iaas {
  readonly name = 'fake';
  readonly calls: FakeIaasCall[] = [];
  /** The next this-many spawns fail with FL_ERR_SPAWN_FAILED. */
  failSpawns = 0;
  spawnDelayMs = 0;
  terminateDelayMs = 0;
  /**
   * How long a draining member's workload takes to finish what is in flight
   * (idle): at once by default (a fake serves nothing); undefined: never idle, the drain runs to its `drainMs`.
   */
  drainIdleAfterMs: number | undefined = 0;
  /** Members whose next terminate ends 'stuck' (the id is removed once used). */
  readonly stuck = new Set<string>();
  /** Instances handed to adopt() that are reported gone. */
  readonly goneOnAdopt = new Set<string>();
  /** Running members whose workload does not answer its probe (hung). */
  readonly hung = new Set<string>();
  /** How long restartAgent takes on the injected Clock. */
  restartAgentDelayMs = 0;
  /** Members whose agent restart answers `failed`. */
  readonly failAgentRestarts = new Set<string>();
  /** Members whose agent still runs: restartAgent answers `running`. */
  readonly agentRunning = new Set<string>();
  /** Instances on the infrastructure that this driver never spawned (an earlier life's): discover() finds them. */
  readonly foreign = new Map<string, MemberInstance>();
  private readonly members = new Map<string, { instance: MemberInstance; running: boolean }>();
  private port = 20_000;

  constructor(private readonly clock: Clock = systemClock) {}

  /** Ids of the members the fake runs (spawned or adopted, not terminated). */
  get running(): string[] {
    return [...this.members].filter(([, m]) => m.running).map(([id]) => id);
  }

  /** The member's instance died by itself: isRunning is false, terminate says already-gone. */
  kill(memberId: string): void {
    const member = this.members.get(memberId);
    if (member) member.running = false;
  }

  /** Calls of `op` (and of `memberId`, when given). */
  callsOf(op: FakeIaasCall['op'], memberId?: string): FakeIaasCall[] {
    return this.calls.filter((c) => c.op === op && (memberId === undefined || c.memberId === memberId));
  }

  async spawn(spec: MemberSpec): Promise<MemberInstance> {
    this.record('spawn', spec.memberId);
    if (this.spawnDelayMs > 0) await sleep(this.clock, this.spawnDelayMs);
    if (this.failSpawns > 0) {
      this.failSpawns -= 1;
      throw new SpawnError(spec.memberId, 'the fake was told to fail');
    }
    const { workload: _workload, ...identity } = spec;
    this.port += 1;
    const instance: MemberInstance = {
      ...identity,
      driver: this.name,
      spawnedAt: this.clock.now(),
      address: { host: '127.0.0.1', port: this.port },
      handle: { fake: this.port },
    };
    this.members.set(spec.memberId, { instance, running: true });
    return structuredClone(instance);
  }

  async terminate(memberId: string, options: TerminateOptions = {}): Promise<TerminateResult> {
    const drainMs = options.drainMs ?? 0;
    this.record('terminate', memberId, drainMs > 0 ? { drainMs } : {});
    const member = this.members.get(memberId);
    if (!member) return { memberId, outcome: 'unknown', elapsedMs: 0 };
    let drain: TerminateResult['drain'];
    if (drainMs > 0 && member.running) {
      const idle = this.drainIdleAfterMs;
      const waitMs = idle === undefined ? drainMs : Math.min(idle, drainMs);
      const { signal } = options;
      // Idle at once: no timer (a 0 ms one would wait for the next fake millisecond).
      if (waitMs > 0)
        await new Promise<void>((resolve) => {
          const done = () => {
            this.clock.clearTimeout(timer);
            signal?.removeEventListener('abort', done);
            resolve();
          };
          const timer = this.clock.setTimeout(done, waitMs);
          signal?.addEventListener('abort', done, { once: true });
        });
      if (signal?.aborted) throw new ClosedError('fake iaas terminate (drain aborted)');
      drain = idle !== undefined && idle <= drainMs ? 'idle' : 'timeout';
      // A member terminated meanwhile by another call is already gone.
      if (!this.members.has(memberId)) return { memberId, outcome: 'unknown', elapsedMs: waitMs };
    }
    if (this.terminateDelayMs > 0) await sleep(this.clock, this.terminateDelayMs);
    const drained = drain === undefined ? {} : { drain };
    if (this.stuck.delete(memberId))
      return { memberId, outcome: 'stuck', elapsedMs: this.terminateDelayMs, ...drained };
    this.members.delete(memberId);
    return {
      memberId,
      outcome: member.running ? 'terminated' : 'already-gone',
      elapsedMs: this.terminateDelayMs,
      ...drained,
    };
  }

  async isRunning(memberId: string): Promise<boolean> {
    this.record('isRunning', memberId);
    return this.members.get(memberId)?.running ?? false;
  }

  async discover(): Promise<MemberInstance[]> {
    this.record('discover', undefined);
    for (const [memberId, instance] of this.foreign) {
      this.members.set(memberId, { instance: structuredClone(instance), running: true });
      this.foreign.delete(memberId);
    }
    return [...this.members.values()].filter((m) => m.running).map((m) => structuredClone(m.instance));
  }

  async probe(memberId: string): Promise<'answering' | 'failing' | 'gone'> {
    this.record('probe', memberId);
    const member = this.members.get(memberId);
    if (!member?.running) return 'gone';
    return this.hung.has(memberId) ? 'failing' : 'answering';
  }

  async restartAgent(memberId: string): Promise<AgentRestartResult> {
    this.record('restartAgent', memberId);
    if (this.restartAgentDelayMs > 0) await sleep(this.clock, this.restartAgentDelayMs);
    const member = this.members.get(memberId);
    if (!member?.running) return { outcome: 'gone', reason: 'the fake does not run it' };
    if (this.failAgentRestarts.has(memberId)) return { outcome: 'failed', reason: 'the fake was told to fail' };
    if (this.agentRunning.has(memberId))
      return { outcome: 'running', reason: 'its agent still runs: none was started' };
    const handle = member.instance.handle as { fake: number; agent?: number };
    member.instance = { ...member.instance, handle: { ...handle, agent: (handle.agent ?? 0) + 1 } };
    return { outcome: 'restarted', instance: structuredClone(member.instance), reason: 'a new agent runs' };
  }

  /** An instance an earlier life of the driver started and nobody recorded. */
  plant(instance: MemberInstance): void {
    this.foreign.set(instance.memberId, structuredClone(instance));
  }

  async list(): Promise<MemberInstance[]> {
    return [...this.members.values()].map((m) => structuredClone(m.instance));
  }

  async adopt(instances: readonly unknown[]): Promise<AdoptResult> {
    this.record('adopt', undefined);
    const result: AdoptResult = { adopted: [], gone: [], invalid: [] };
    for (const [index, value] of instances.entries()) {
      const instance = value as MemberInstance;
      if (instance?.driver !== this.name) {
        result.invalid.push({ index, memberId: instance?.memberId, reason: 'not a fake instance' });
      } else if (this.goneOnAdopt.has(instance.memberId)) {
        result.gone.push({ memberId: instance.memberId, reason: 'the workload exited' });
      } else {
        this.members.set(instance.memberId, { instance: structuredClone(instance), running: true });
        result.adopted.push(structuredClone(instance));
      }
    }
    return result;
  }

  async close(): Promise<void> {}

  private record(op: FakeIaasCall['op'], memberId: string | undefined, extra: { drainMs?: number } = {}): void {
    this.calls.push({ op, memberId, at: this.clock.now(), ...extra });
  }
}
