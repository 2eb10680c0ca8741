import type { Clock, Logger, TimerHandle } from '@faultline/core';
import type { Metric, StatKind } from '@faultline/protocol';
import type { Backoff } from './backoff.js';
import type { ClusterFaults } from './cluster-faults.js';
import type { ClusterMembers } from './cluster-members.js';
import type { ClusterSink } from './decisions.js';
import { isLive, isPending, type LiveMember } from './member.js';
import { choosePartition, LoadBook, leastLoaded } from './placement.js';
import type { ClusterPolicy } from './policy.js';
import {
  recommendedMembers,
  type ScaleAction,
  type ScaleDecision,
  ScaleStabilizer,
  ScalingRule,
  type ScalingStatus,
  type StabilizationState,
} from './scaling-rule.js';
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
  /** What stabilization persists changed (its last scale action, its window): the monitor saves its state. */
  changed: () => void;
  /** While true (the cluster in maintenance) the minimum rule spawns nothing. @default never */
  paused?: () => boolean;
}

const iso = (ms: number): string => new Date(ms).toISOString();

/**
 * How many members one cluster runs (README "Autoscaler", rules 3, 5 and 7):
 * the minimum rule (with the replacement backoff), the scaling rule on the
 * latest cluster summaries (least loaded member first on a scale down) with
 * its stabilization (cooldown, scale-down window, steps), and the maximum.
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
  /** The cooldown after each scale action and the scale-down window (README "Autoscaler", rule 5). */
  private readonly stabilizer: ScaleStabilizer;
  private readonly changed: () => void;
  /** What the latest decision recommended. */
  private recommended: number | undefined;
  /** Why the last decision that asked for a scale action did not act. */
  private held: string | undefined;
  /** The last hold logged (action and kind): a hold is logged once until a scale action ends it. */
  private heldLogged: string | undefined;
  private readonly load = new LoadBook();
  private readonly registryReachable: () => boolean;
  private readonly paused: () => boolean;
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
    this.paused = options.paused ?? (() => false);
    this.scaling = new ScalingRule(options.policy.thresholds, options.scaleDownConsecutive);
    this.stabilizer = new ScaleStabilizer(options.policy.scaling);
    this.changed = options.changed;
  }

  /** What the scaling rule predicts and recommends, its run of low decisions, and stabilization. */
  get scalingStatus(): ScalingStatus {
    return {
      predicted: this.scaling.predicted(),
      consecutiveBelow: this.scaling.consecutiveBelow,
      recommended: this.recommended ?? null,
      held: this.held ?? null,
      ...this.stabilizer.status(this.clock.monotonicNow(), this.clock.now()),
    };
  }

  /** What stabilization persists with the monitor's state: its last scale action and its window. */
  stabilizationState(): StabilizationState {
    return this.stabilizer.state();
  }

  /** Takes back what an earlier life (or the other autoscaler node) persisted. */
  restoreStabilization(state: StabilizationState): void {
    this.stabilizer.restore(state, this.clock.monotonicNow(), this.clock.now());
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
    if (this.closed || this.paused()) return;
    // Members stopped without a drain still count: their replacement follows their removal, in that order.
    // Draining ones do not: they leave by the rules' decision and may take the whole drain timeout.
    let count = this.members.countedCount();
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

  /**
   * The scaling rule with stabilization: every decision records what its
   * predictions recommend (the scale-down window's input); a scale action
   * waits out the cooldown after the last one; a scale down goes no lower
   * than the highest recommendation within the window; a step is as many
   * members as recommended, at most maxStep. The minimum rule, fault
   * replacements and the maximum never pass through here.
   */
  private scale(now: number): void {
    const decision = this.scaling.decide();
    if (!decision) return;
    const live = this.members.liveCount();
    const mono = this.clock.monotonicNow();
    const { min, max, thresholds } = this.policy;
    const recommended = recommendedMembers(decision.predicted, thresholds, live, { min, max });
    this.recommended = recommended;
    if (this.stabilizer.recommend(recommended, mono, now)) this.changed();
    if (decision.kind === 'up') this.scaleUp(decision, live, recommended, now, mono);
    else if (decision.kind === 'down') this.scaleDown(decision, live, recommended, now, mono);
    else this.hold(undefined);
  }

  private scaleUp(decision: ScaleDecision, live: number, recommended: number, now: number, mono: number): void {
    const { max, scaling } = this.policy;
    // One step at a time: the next waits until the last one's members are active (or gone).
    // Members stopped without a drain still count against max, draining ones do not (as in the minimum rule).
    const counted = this.members.countedCount();
    const blocked = counted >= max || this.members.all().some(isPending) || !this.registryReachable();
    const step = Math.min(recommended - live, scaling.maxStep, max - counted);
    if (blocked || !this.backoff.isReady(now) || step < 1) {
      this.hold(undefined);
      return;
    }
    // Below what the last scale action left (members lost to faults since, above min, which the minimum
    // rule does not refill): the scaling rule refills them at once, the cooldown does not hold a replacement.
    const lastScale = this.stabilizer.state().lastScale;
    const refilling = lastScale !== null && live < lastScale.members;
    if (!refilling && this.cooling('ScaleUpAction', now, mono)) return;
    const to = live + step;
    this.acted('ScaleUpAction', to, now, mono);
    const bound = step === scaling.maxStep ? `maxStep ${scaling.maxStep}` : `max ${max}`;
    const why = recommended === to ? undefined : `${recommended} recommended, step bounded by ${bound}`;
    for (let i = 1; i <= step; i++) {
      const reason = `${decision.reason}; ${live} → ${to} members${stepNote(why, i, step)}`;
      this.spawn('ScaleUpAction', reason, decision.epoch);
    }
  }

  private scaleDown(decision: ScaleDecision, live: number, recommended: number, now: number, mono: number): void {
    const { min, scaling } = this.policy;
    if (live <= min) {
      this.hold(undefined);
      return;
    }
    if (this.cooling('ScaleDownAction', now, mono)) return;
    const target = Math.max(recommended, this.stabilizer.floor(mono) ?? recommended);
    if (target >= live) {
      const until = this.stabilizer.status(mono, now).scaleDownFloor?.until;
      const leaves = until === undefined ? '' : ` (the highest leaves it at ${iso(until)})`;
      const reason = `scale-down window: ${target} members recommended within the last ${scaling.scaleDownWindowMs} ms${leaves}`;
      this.hold({ action: 'ScaleDownAction', kind: 'window', reason });
      return;
    }
    const step = Math.min(live - target, scaling.maxStep, live - min);
    const candidates = this.activeMembers();
    const victims: LiveMember[] = [];
    while (victims.length < step) {
      const victim = this.leastLoaded(candidates.filter((m) => !victims.includes(m)));
      if (!victim) break;
      victims.push(victim);
    }
    if (victims.length === 0) {
      this.hold(undefined);
      return;
    }
    const to = live - victims.length;
    this.acted('ScaleDownAction', to, now, mono);
    const bound = victims.length < step ? 'the active members' : `maxStep ${scaling.maxStep}`;
    const why =
      target > recommended
        ? `${recommended} recommended, the scale-down window holds ${target}`
        : target < to
          ? `${target} recommended, step bounded by ${bound}`
          : undefined;
    victims.forEach((victim, i) => {
      const reason = `${decision.reason}; least loaded member; ${live} → ${to} members${stepNote(why, i + 1, victims.length)}`;
      this.decide({ action: 'ScaleDownAction', memberId: victim.memberId, reason, epoch: decision.epoch });
      // A member that serves is drained first (README "Autoscaler → Graceful drain").
      this.members.terminate(victim, 'scale down', decision.epoch, victim.state === 'Active');
    });
  }

  /**
   * A scale action is taken: Stratos' run of low decisions starts again, the
   * cooldown starts, and the state is queued for the registry ahead of the
   * action's own rows (one write queue, in order): a spawn or terminate starts
   * only after its row is written, so its cooldown is written before it
   * (a failed write is retried at the next tick, as every cluster state).
   */
  private acted(action: ScaleAction, to: number, now: number, mono: number): void {
    this.hold(undefined);
    this.heldLogged = undefined;
    this.scaling.acted();
    this.stabilizer.acted(action, to, mono, now);
    this.changed();
  }

  /** Whether the cooldown after the last scale action holds this one. */
  private cooling(action: ScaleAction, now: number, mono: number): boolean {
    const until = this.stabilizer.coolingDownUntil(mono);
    const last = this.stabilizer.state().lastScale;
    if (until === undefined || !last) return false;
    const reason = `cooldown until ${iso(now + (until - mono))} after the ${last.action} at ${iso(last.at)}`;
    this.hold({ action, kind: 'cooldown', reason });
    return true;
  }

  /**
   * Records why a scale action waits, or that none does. Logged once per
   * action and kind of hold until a scale action is taken: load noise
   * between the decisions does not repeat it every minute.
   */
  private hold(held: { action: ScaleAction; kind: 'cooldown' | 'window'; reason: string } | undefined): void {
    this.held = held?.reason;
    if (!held) return;
    const key = `${held.action} ${held.kind}`;
    if (key === this.heldLogged) return;
    this.heldLogged = key;
    this.log.info('scale action held', { event: 'autoscaler.scale_held', action: held.action, why: held.reason });
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
      // Only an Active member serves: a pending one has nothing to drain.
      this.members.terminate(victim, reason, undefined, victim.state === 'Active');
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

/** What a step's reason adds: why it is not the recommended count, and which of the step's members this is. */
function stepNote(why: string | undefined, i: number, step: number): string {
  const parts = [why, step > 1 ? `${i} of ${step}` : undefined].filter((p): p is string => p !== undefined);
  return parts.length === 0 ? '' : ` (${parts.join('; ')})`;
}
