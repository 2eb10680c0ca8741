import type { AgentRestartResult, Iaas, MemberInstance } from '@faultline/cloud-controller';
import type { Clock, Logger } from '@faultline/core';
import type { FaultClaim, Retirement } from './cluster-faults.js';
import type { SecondWitnessPolicy } from './policy.js';
import type { SerialQueue } from './serial-queue.js';

/** Members whose agent restarts are remembered at most (a larger stored list is cut). */
const MAX_REMEMBERED = 100_000;

/**
 * What the second witness found of a member to retire: its agent restarted
 * and the instance kept (`instance` is the one to keep), or what it saw that
 * leaves the member to be terminated as without a witness.
 */
export type WitnessVerdict = { kept: true; instance: MemberInstance; reason: string } | { kept: false; saw: string };

/** The agent restarts of one member the witness remembers (persisted with the monitor's state). */
export interface AgentRestarts {
  memberId: string;
  /** Epoch ms of each restart within the policy's withinMs, oldest first. */
  at: number[];
  /**
   * A timeout fault whose last stat is not after this (the latest restart, or
   * the last stat of the fault it repaired, whichever is later) is of an agent that was replaced.
   */
  lastStatAt: number | null;
}

/** Restarts remembered per member at most: more than any bound a configuration sets is of no use. */
const MAX_TIMES = 1_000;

/**
 * The remembered restarts of a persisted monitor state (`agentRestarts`),
 * checked entry by entry: what is malformed is dropped (a member whose count
 * is lost gets its bound afresh), never a reason to refuse the state.
 */
export function parseAgentRestarts(value: unknown): AgentRestarts[] {
  if (!Array.isArray(value)) return [];
  const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
  const out: AgentRestarts[] = [];
  for (const entry of value.slice(0, MAX_REMEMBERED)) {
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) continue;
    const { memberId, at, lastStatAt } = entry as Record<string, unknown>;
    if (typeof memberId !== 'string' || memberId.length === 0 || memberId.length > 256) continue;
    if (!Array.isArray(at) || !(lastStatAt === null || finite(lastStatAt))) continue;
    out.push({ memberId, at: at.filter(finite).slice(-MAX_TIMES), lastStatAt });
  }
  return out;
}

export interface SecondWitnessOptions {
  policy: SecondWitnessPolicy;
  iaas: Pick<Iaas, 'probe' | 'restartAgent'>;
  clock: Clock;
  log: Logger;
  /** The monitor's queue: each verdict is handled on it. */
  queue: SerialQueue;
  /** What must survive a restart changed (the remembered restarts). */
  changed: () => void;
}

/**
 * A second witness before a kill (README "Autoscaler → Second witness"): a
 * member to retire for a `timeout` or an `absence` (its agent is silent)
 * whose instance still runs is first looked at through the cloud controller's
 * own path. Its workload answers its probe: its agent alone is silent, and the
 * smallest repair is a new agent in the same instance (`restartAgent`), which
 * keeps the member. Anything else, or a repair that did not hold (more than
 * `maxRestarts` restarts of the member within `withinMs`): it is terminated as
 * without a witness, the reason saying what the witness saw.
 *
 * The probe and the restart run off the monitor's queue (they take seconds:
 * another member's fault must not wait), one per member at a time; the
 * verdict is handled on the queue, from the member's context as it is then.
 * While a member is witnessed, and for repeats of the fault its agent was
 * restarted for (the CEP re-announces a fault until the new agent's first
 * stat), its faults are no news (`covers`).
 */
export class SecondWitness {
  private readonly policy: SecondWitnessPolicy;
  private readonly iaas: SecondWitnessOptions['iaas'];
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly queue: SerialQueue;
  private readonly changed: () => void;
  /** Members being witnessed now. */
  private readonly witnessing = new Set<string>();
  private readonly restarts = new Map<string, AgentRestarts>();
  private readonly tasks = new Set<Promise<unknown>>();

  constructor(options: SecondWitnessOptions) {
    this.policy = options.policy;
    this.iaas = options.iaas;
    this.clock = options.clock;
    this.log = options.log;
    this.queue = options.queue;
    this.changed = options.changed;
  }

  /** Whether this retirement is the witness's to look at first: on, a silent agent, an instance. */
  applies(retirement: Retirement): boolean {
    const kind = retirement.fault?.kind;
    return this.policy.enabled && retirement.member.instance !== undefined && (kind === 'timeout' || kind === 'absent');
  }

  /** Whether the member is being witnessed now (its verdict decides what becomes of it). */
  busy(memberId: string): boolean {
    return this.witnessing.has(memberId);
  }

  /**
   * Why a fault of a member is no news, or undefined when it is: the member
   * is being witnessed, or the fault is of an agent that was replaced (its
   * last stat is not after the last restart, see `kept`).
   */
  covers(claim: FaultClaim): string | undefined {
    if (this.witnessing.has(claim.memberId)) return 'the second witness is looking at it (its agent may be restarting)';
    const kept = this.restarts.get(claim.memberId);
    if (
      kept !== undefined &&
      claim.kind === 'timeout' &&
      kept.lastStatAt !== null &&
      claim.lastStatAt !== null &&
      claim.lastStatAt <= kept.lastStatAt
    )
      return 'it is a fault of the agent that was replaced (its last stat is not after the restart)';
    return undefined;
  }

  /**
   * Looks at the member off the queue; `decide` gets the verdict on the
   * queue, once the witness has let go of the member.
   */
  witness(retirement: Retirement, decide: (verdict: WitnessVerdict) => void | Promise<void>): void {
    const { memberId } = retirement.member;
    this.witnessing.add(memberId);
    const task = this.look(retirement)
      .catch((error: unknown): WitnessVerdict => ({ kept: false, saw: `the witness failed (${String(error)})` }))
      .then((verdict) =>
        this.queue.run(() => {
          this.witnessing.delete(memberId);
          return decide(verdict);
        }),
      )
      .catch((error: unknown) =>
        this.log.error('second witness verdict not handled', {
          event: 'autoscaler.witness_failed',
          memberId,
          error,
        }),
      );
    this.tasks.add(task);
    void task.finally(() => this.tasks.delete(task));
  }

  /** The member left the context: its restarts are forgotten. */
  forget(memberId: string): void {
    if (this.restarts.delete(memberId)) this.changed();
  }

  /** What the monitor persists: each member's restarts still within the window. */
  state(): AgentRestarts[] {
    const since = this.clock.now() - this.policy.withinMs;
    return [...this.restarts.values()].map((r) => ({ ...r, at: r.at.filter((at) => at > since) }));
  }

  /** Takes back what an earlier life persisted, for the members `known` (those still in the context). */
  restore(state: readonly AgentRestarts[], known: (memberId: string) => boolean): void {
    for (const entry of state.slice(0, MAX_REMEMBERED)) {
      if (known(entry.memberId)) this.restarts.set(entry.memberId, { ...entry, at: [...entry.at] });
    }
  }

  /** Resolves once every witness under way has given its verdict and it was handled. */
  async settle(): Promise<void> {
    while (this.tasks.size > 0) await Promise.allSettled([...this.tasks]);
  }

  /** Agent restarts of the member within the window, as of now. */
  private recent(memberId: string, now: number): number[] {
    return (this.restarts.get(memberId)?.at ?? []).filter((at) => at > now - this.policy.withinMs);
  }

  /**
   * The member was kept with its new agent: the restart counts toward the
   * bound, and a timeout fault whose last stat is not after the restart (nor
   * after the last stat of the fault it repaired, `lastStatAt`) is of the
   * agent that was replaced: no news from now on. The CEP re-announces the
   * repaired fault until the new agent's first stat, and one lost on the way
   * may come after an absence was repaired; a new agent's stats are later.
   */
  kept(memberId: string, lastStatAt: number | null): void {
    const now = this.clock.now();
    const at = [...this.recent(memberId, now), now];
    const before = this.restarts.get(memberId)?.lastStatAt ?? null;
    const bar = Math.max(now, before ?? now, lastStatAt ?? now);
    this.restarts.set(memberId, { memberId, at, lastStatAt: bar });
    this.changed();
  }

  /** The probe, then the repair: what the witness saw, and whether the instance is kept. */
  private async look({ member, reason }: Retirement): Promise<WitnessVerdict> {
    const { memberId } = member;
    const { maxRestarts, withinMs } = this.policy;
    const done = this.recent(memberId, this.clock.now()).length;
    if (done >= maxRestarts) {
      return {
        kept: false,
        saw: `its agent was restarted ${done} times within ${withinMs} ms (secondWitness.maxRestarts ${maxRestarts}): the repair did not hold`,
      };
    }
    const answer = await this.iaas.probe(memberId);
    if (answer === 'gone') return { kept: false, saw: 'its instance is gone' };
    if (answer === 'failing') return { kept: false, saw: 'its workload does not answer the probe either' };
    const result: AgentRestartResult = await this.iaas.restartAgent(memberId);
    switch (result.outcome) {
      case 'restarted':
        return {
          kept: true,
          instance: result.instance,
          reason: `${reason}; second witness: its workload answers the cloud controller's probe, only its agent was silent: ${result.reason}; the instance is kept`,
        };
      case 'running':
        return {
          kept: false,
          saw: `its workload answers, but ${result.reason}; a silent agent that runs is not restarted`,
        };
      case 'gone':
        return { kept: false, saw: `its instance is gone (${result.reason})` };
      case 'failed':
        return { kept: false, saw: `its workload answers, but its agent was not restarted: ${result.reason}` };
    }
  }
}
