import type { Clock, Logger, TimerHandle } from '@faultline/core';
import type { Metric, StatKind } from '@faultline/protocol';
import type { Backoff } from './backoff.js';
import type { ClusterFaults } from './cluster-faults.js';
import type { ClusterMembers } from './cluster-members.js';
import type { ClusterSink } from './decisions.js';
import { isLive, isPending, type LiveMember } from './member.js';
import { choosePartition, LoadBook, leastLoaded } from './placement.js';
import type { ClusterPolicy } from './policy.js';
import { type Predictions, ScalingRule } from './scaling-rule.js';
import type { SerialQueue } from './serial-queue.js';

/** Retired members remembered for the spawns that replace them; older ones are forgotten first. */
const MAX_AWAITING = 1_000;

export interface ClusterRulesOptions {
  policy: ClusterPolicy;
  members: ClusterMembers;
  /** Read only: the monitor records the failures and successes of replacements. */
  backoff: Pick<Backoff, 'isReady' | 'readyAt' | 'failureCount'>;
  /** Read only: members with a fault held in a storm are not chosen for a scale down. */
  faults: Pick<ClusterFaults, 'isHeld'>;
  decide: ClusterSink['decide'];
  clock: Clock;
  /** The monitor's queue: the minimum rule retried after a backoff runs on it. */
  queue: SerialQueue;
  log: Logger;
  scaleDownConsecutive: number;
  /** Whether the registry answers: no spawn starts while it does not (its intent could not be recorded). */
  registryReachable: () => boolean;
}

/**
 * How many members one cluster runs (README "Autoscaler", rules 3, 5 and 7):
 * the minimum rule (with the replacement backoff), the scaling rule on the
 * latest cluster summaries (least loaded member first on a scale down), and
 * the maximum.
 */
export class ClusterRules {
  /** Members retired, oldest first, whose replacing spawn is still to come (in memory: a new term starts empty). */
  private awaiting: string[] = [];
  private readonly policy: ClusterPolicy;
  private readonly members: ClusterMembers;
  private readonly backoff: ClusterRulesOptions['backoff'];
  private readonly faults: ClusterRulesOptions['faults'];
  private readonly decide: ClusterSink['decide'];
  private readonly clock: Clock;
  private readonly queue: SerialQueue;
  private readonly log: Logger;
  private readonly scaling: ScalingRule;
  private readonly load = new LoadBook();
  private readonly registryReachable: () => boolean;
  private retryTimer: TimerHandle | undefined;
  private waitingForRegistry = false;
  private closed = false;

  constructor(options: ClusterRulesOptions) {
    this.policy = options.policy;
    this.members = options.members;
    this.backoff = options.backoff;
    this.faults = options.faults;
    this.decide = options.decide;
    this.clock = options.clock;
    this.queue = options.queue;
    this.log = options.log;
    this.registryReachable = options.registryReachable;
    this.scaling = new ScalingRule(options.policy.thresholds, options.scaleDownConsecutive);
  }

  /** What the scaling rule predicts, and its run of low decisions. */
  get scalingStatus(): { predicted: Predictions; consecutiveBelow: number } {
    return { predicted: this.scaling.predicted(), consecutiveBelow: this.scaling.consecutiveBelow };
  }

  /** A cluster summary for the scaling rule. */
  clusterSummary(kind: StatKind, metric: Metric, value: number, windowTo: number, epoch: number | undefined): void {
    this.scaling.observe(kind, metric, value, windowTo, epoch);
  }

  /** A member's latest average, for "least loaded". */
  memberAverage(memberId: string, metric: Metric, value: number): void {
    this.load.observe(memberId, metric, value);
  }

  /** The member left the context. */
  forget(memberId: string): void {
    this.load.forget(memberId);
  }

  /** At a tick outside a fault storm: the scaling rule (not for a retired cluster), then the maximum. */
  enforce(now: number): void {
    if (!this.policy.retired) this.scale(now);
    this.enforceMax();
  }

  /**
   * A member retired (a fault, a pending timeout, its instance gone): once it
   * is removed, the next minimum-rule spawn that refills the cluster names it
   * as the member it replaces (its causal chain, `faultline explain`).
   */
  retiring(memberId: string): void {
    if (this.awaiting.includes(memberId)) return;
    this.awaiting.push(memberId);
    if (this.awaiting.length > MAX_AWAITING) this.awaiting.shift();
  }

  /** The minimum rule: spawn while the cluster has fewer than min non-terminated members. */
  min(epoch: number | undefined): void {
    if (this.closed) return;
    // Terminating members still count: their replacement follows their removal, in that order.
    let count = this.members.size;
    const removed = (memberId: string) => this.members.get(memberId) === undefined;
    // Removed while the cluster kept its minimum (it was above it): no spawn replaces them.
    if (count >= this.policy.min) this.awaiting = this.awaiting.filter((id) => !removed(id));
    const now = this.clock.now();
    if (count < this.policy.min && !this.registryReachable()) {
      if (!this.waitingForRegistry)
        this.log.warn('spawns wait for the registry: a spawn is recorded before it starts', {
          event: 'autoscaler.spawns_wait_for_registry',
          members: count,
          min: this.policy.min,
        });
      this.waitingForRegistry = true;
      return;
    }
    this.waitingForRegistry = false;
    while (count < this.policy.min) {
      if (!this.backoff.isReady(now)) {
        this.scheduleRetry(now);
        return;
      }
      const at = this.awaiting.findIndex(removed);
      const replaces = at < 0 ? undefined : this.awaiting.splice(at, 1)[0];
      this.spawn('MemberSpawnAction', `minimum rule: ${count} < min ${this.policy.min}`, epoch, replaces);
      count += 1;
    }
  }

  /** No spawn from now on, and no retry timer left behind. */
  close(): void {
    this.closed = true;
    this.clock.clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }

  private scheduleRetry(now: number): void {
    if (this.retryTimer !== undefined) return;
    const retryInMs = Math.max(0, this.backoff.readyAt - now);
    this.log.info('spawns backing off', {
      event: 'autoscaler.spawns_backing_off',
      failures: this.backoff.failureCount,
      retryInMs,
    });
    this.retryTimer = this.clock.setTimeout(() => {
      this.retryTimer = undefined;
      void this.queue.run(() => this.min(undefined));
    }, retryInMs);
  }

  private scale(now: number): void {
    const decision = this.scaling.decide();
    if (!decision || decision.kind === 'steady') return;
    const live = this.members.liveCount();
    if (decision.kind === 'up') {
      // One member at a time: the next step waits until the last one is active (or gone).
      const blocked =
        this.members.size >= this.policy.max || this.members.all().some(isPending) || !this.registryReachable();
      if (blocked || !this.backoff.isReady(now)) return;
      this.scaling.acted();
      this.spawn('ScaleUpAction', `${decision.reason}; ${live} → ${live + 1} members`, decision.epoch);
      return;
    }
    const victim = live > this.policy.min ? this.leastLoaded(this.activeMembers()) : undefined;
    if (!victim) return;
    this.scaling.acted();
    const reason = `${decision.reason}; least loaded member; ${live} → ${live - 1} members`;
    this.decide({ action: 'ScaleDownAction', memberId: victim.memberId, reason, epoch: decision.epoch });
    this.members.terminate(victim, 'scale down', decision.epoch);
  }

  /** Over max (after a restart, a lowered policy, a retired cluster): the least loaded go first. */
  private enforceMax(): void {
    let live = this.members.liveCount();
    while (live > this.policy.max) {
      const pending = this.members
        .all()
        .filter((m): m is LiveMember => isLive(m) && isPending(m) && m.instance !== undefined);
      const victim = this.leastLoaded(this.activeMembers()) ?? this.leastLoaded(pending);
      if (!victim) return;
      const reason = this.policy.retired
        ? `cluster ${this.policy.id} is no longer configured`
        : `above max: ${live} members > max ${this.policy.max}`;
      this.decide({ action: 'ScaleDownAction', memberId: victim.memberId, reason });
      this.members.terminate(victim, reason, undefined);
      live -= 1;
    }
  }

  private spawn(
    action: 'MemberSpawnAction' | 'ScaleUpAction',
    reason: string,
    epoch: number | undefined,
    replaces?: string,
  ): void {
    this.members.spawn(action, reason, epoch, choosePartition(this.policy.partitions, this.members.all()), replaces);
  }

  private activeMembers(): LiveMember[] {
    return this.members
      .all()
      .filter(
        (m): m is LiveMember => m.state === 'Active' && m.instance !== undefined && !this.faults.isHeld(m.memberId),
      );
  }

  private leastLoaded(candidates: LiveMember[]): LiveMember | undefined {
    return leastLoaded(candidates, this.load, this.policy.thresholds);
  }
}
