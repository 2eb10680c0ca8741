import type { Iaas, MemberIdentity, MemberSpec } from '@faultline/cloud-controller';
import type { Clock, Logger, TimerHandle } from '@faultline/core';
import type { ClusterStat, EnvelopeOf, MemberFault, MemberStats, Metric, StatKind } from '@faultline/protocol';
import { Backoff } from './backoff.js';
import { baseOf, ClusterMembers, type MonitorSink } from './cluster-members.js';
import type { Decision } from './decisions.js';
import { FaultStorm, type StormVerdict } from './fault-storm.js';
import { activatedAtOf, isLive, isPending, type LiveMember, type MemberContext } from './member.js';
import { choosePartition, leastLoaded } from './placement.js';
import type { ClusterPolicy } from './policy.js';
import { ScalingRule } from './scaling-rule.js';
import { SerialQueue } from './serial-queue.js';
import { type ClusterStatus, LoadBook, type MonitorCounters } from './status.js';

export type { MonitorSink } from './cluster-members.js';

export interface ClusterMonitorOptions {
  policy: ClusterPolicy;
  iaas: Iaas;
  sink: MonitorSink;
  clock: Clock;
  logger: Logger;
  counters: MonitorCounters;
  /** The full spec (agent settings) of a member to spawn. */
  spec(identity: MemberIdentity): MemberSpec;
  newMemberId(clusterId: string): string;
  pendingTimeoutMs: number;
  backoffInitialMs: number;
  backoffMaxMs: number;
  scaleDownConsecutive: number;
  /** The fault-storm window: the CEP's fault timeout. */
  faultStormWindowMs: number;
  /** Grace between the soft and the forced stop; undefined: the driver's default. */
  terminateGraceMs: number | undefined;
}

/** A fault not acted upon because the cluster was in a fault storm. */
interface HeldFault {
  reason: string;
  /** From the MemberFault: agent timestamp of the last stat of the faulted life. */
  lastStatAt: number | null;
  epoch: number | undefined;
  /** Set when the storm ends: the fault is carried out at this time unless the member shows life first. */
  recheckUntil: number | undefined;
}

const faultReason = (f: MemberFault): string =>
  `MemberFault (${f.reason}${f.reason === 'timeout' ? `, silent ${f.silentForMs} ms` : ''})`;

/**
 * One cluster under one deployment policy (Stratos' cluster monitor): every
 * rule of DESIGN.md "Autoscaler" — the seed's MemberFault handling, the
 * minimum rule, the pending timeout with its backoff, the scaling rule, the
 * fault-storm guard. Every entry point runs on one SerialQueue, so a fault,
 * an instance event, a tick and the completion of a spawn never interleave:
 * the log shows terminate → remove → spawn because the code cannot do otherwise.
 */
export class ClusterMonitor {
  readonly policy: ClusterPolicy;
  private readonly queue = new SerialQueue();
  private readonly members: ClusterMembers;
  private readonly held = new Map<string, HeldFault>();
  private readonly load = new LoadBook();
  private readonly storm: FaultStorm;
  private readonly backoff: Backoff;
  private readonly rule: ScalingRule;
  private readonly log: Logger;
  private retryTimer: TimerHandle | undefined;
  private closing = false;

  constructor(private readonly o: ClusterMonitorOptions) {
    this.policy = o.policy;
    this.log = o.logger.child({ clusterId: o.policy.id });
    this.storm = new FaultStorm(o.faultStormWindowMs);
    this.backoff = new Backoff(o.backoffInitialMs, o.backoffMaxMs);
    this.rule = new ScalingRule(o.policy.thresholds, o.scaleDownConsecutive);
    this.members = new ClusterMembers({
      ...o,
      log: this.log,
      queue: this.queue,
      forget: (memberId) => {
        this.held.delete(memberId);
        this.load.forget(memberId);
      },
      terminated: (epoch) => this.minRule(epoch),
      spawnFailed: (memberId, error) => {
        const retryInMs = this.backoff.failure(this.o.clock.now());
        const { code } = error as { code?: unknown };
        this.log.warn('spawn failed', { memberId, code, error, failures: this.backoff.failureCount, retryInMs });
        this.minRule(undefined);
      },
    });
  }

  /** Takes the members adopted after a restart, then applies the rules at once (max, min). */
  start(adopted: readonly MemberContext[]): Promise<void> {
    return this.queue.run(async () => {
      for (const member of adopted) this.members.adopt(member);
      await this.enforce();
    });
  }

  /** The monitor interval: pending timeouts, re-checks after a storm, the scaling rule, max, min. */
  tick(): Promise<void> {
    return this.queue.run(() => this.enforce());
  }

  fault(envelope: EnvelopeOf<'MemberFaultEvent'>): Promise<void> {
    return this.queue.run(() => this.onFault(envelope.data, envelope.id, envelope.epoch));
  }

  instanceStarted(memberId: string): Promise<void> {
    return this.queue.run(() => this.onInstance(memberId, 'InstanceStartedEvent'));
  }

  instanceActivated(memberId: string): Promise<void> {
    return this.queue.run(() => this.onInstance(memberId, 'InstanceActivatedEvent'));
  }

  clusterStat(kind: StatKind, metric: Metric, stat: ClusterStat, epoch: number | undefined): Promise<void> {
    return this.queue.run(() => {
      this.rule.observe(kind, metric, stat.value, stat.windowTo, epoch);
      const since = this.storm.heldSince;
      // Release rule: a cluster summary of a window that ends after the hold began — the SP is
      // summarizing this cluster again. A summary computed before the hold but delivered late does not count.
      if (since !== undefined && stat.windowTo > since) this.release(`${kind}${metric}Event`, stat.windowTo, epoch);
    });
  }

  /** One member-summary event: the figure of every member of the cluster it lists. */
  memberStats(kind: StatKind, metric: Metric, stats: MemberStats): Promise<void> {
    return this.queue.run(() => {
      for (const { memberId, value } of stats.members) {
        const held = this.held.get(memberId);
        // A window that starts at or after the faulted life's last stat holds only samples of a new life.
        if (held && (held.lastStatAt === null || stats.windowFrom >= held.lastStatAt)) {
          this.clearHeld(memberId, `Member${kind}${metric}Event of a window from ${stats.windowFrom}`);
        }
        if (kind === 'Average' && this.members.get(memberId)) this.load.observe(memberId, metric, value);
      }
    });
  }

  status(): ClusterStatus {
    const p = this.policy;
    return {
      clusterId: p.id,
      cartridgeType: p.cartridgeType,
      min: p.min,
      max: p.max,
      retired: p.retired,
      faultStormHeldSince: this.storm.heldSince ?? null,
      backoff: {
        failures: this.backoff.failureCount,
        retryAt: Number.isFinite(this.backoff.readyAt) ? this.backoff.readyAt : null,
      },
      scaling: { predicted: this.rule.predicted(), consecutiveBelow: this.rule.consecutiveBelow },
      members: this.members.all().map((m) => ({
        memberId: m.memberId,
        state: m.state,
        partitionId: m.partitionId,
        createdAt: m.createdAt,
        activatedAt: activatedAtOf(m) ?? null,
        address: m.instance ? `${m.instance.address.host}:${m.instance.address.port}` : null,
        heldFault: this.held.get(m.memberId)?.reason ?? null,
      })),
    };
  }

  /** Stops deciding; spawns and terminations under way finish and are recorded. Members keep running. */
  async close(): Promise<void> {
    this.closing = true;
    this.o.clock.clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    await this.members.settle();
    await this.queue.idle();
  }

  // ── the seed: MemberFault ────────────────────────────────────────────────

  private async onFault(fault: MemberFault, faultId: string, epoch: number | undefined): Promise<void> {
    if (this.closing) return;
    const member = this.members.get(fault.memberId);
    // Idempotent by state: unknown and already terminated members are not in the context.
    let ignored: string | undefined;
    if (!member) ignored = 'unknown or already terminated member';
    else if (!isLive(member)) ignored = 'already terminating';
    else if (this.held.has(member.memberId)) ignored = 'a fault of this member is already held';
    if (ignored !== undefined || !member || !isLive(member)) {
      this.o.counters.faultsIgnored += 1;
      this.log.info('fault ignored', { memberId: fault.memberId, why: ignored, faultId, epoch: epoch ?? null });
      return;
    }
    this.o.counters.faults += 1;
    const reason = faultReason(fault);
    const verdict = this.storm.record(member.memberId, this.o.clock.now(), this.members.liveCount());
    if (verdict.type !== 'normal') {
      this.hold(member, fault, reason, epoch, verdict);
      return;
    }
    await this.retire(member, reason, epoch);
  }

  /**
   * The seed's order: an instance that still runs is terminated
   * (MemberTerminateAction), then removed, then the minimum rule respawns. An
   * instance already gone is removed and respawned without a terminate
   * action; the Iaas is still asked to terminate it, quietly, because its
   * agent may linger (the cloud controller's rule: terminate every member you forget).
   */
  private async retire(member: LiveMember, reason: string, epoch: number | undefined): Promise<void> {
    let running = false;
    if (member.instance) {
      try {
        running = await this.o.iaas.isRunning(member.memberId);
      } catch (error) {
        running = true; // terminate is idempotent: when in doubt, stop it
        this.log.warn('isRunning failed, terminating anyway', { memberId: member.memberId, error });
      }
    }
    if (running) {
      const terminate = { action: 'MemberTerminateAction', memberId: member.memberId, epoch } as const;
      this.decide({ ...terminate, reason: `${reason}; instance still running` });
      this.members.terminate(member, reason, epoch);
      return;
    }
    this.members.remove(member, `${reason}; instance not running`, epoch);
    this.members.reap(member.memberId);
    this.minRule(epoch);
  }

  private hold(
    member: LiveMember,
    fault: MemberFault,
    reason: string,
    epoch: number | undefined,
    verdict: StormVerdict,
  ) {
    this.held.set(member.memberId, { reason, lastStatAt: fault.lastStatAt, epoch, recheckUntil: undefined });
    this.o.counters.faultsHeld += 1;
    if (verdict.type === 'tipped') {
      const { faultedMemberIds, clusterSize } = verdict;
      const windowMs = this.o.faultStormWindowMs;
      this.decide({
        action: 'FaultStormHeld',
        reason: `${faultedMemberIds.length} of ${clusterSize} members faulted within ${windowMs} ms: terminations held, the monitor is the likely fault`,
        epoch,
        storm: { faultedMemberIds, clusterSize, windowMs },
      });
    }
    this.log.warn('fault held', { memberId: member.memberId, reason, epoch: epoch ?? null });
  }

  private release(type: string, windowTo: number, epoch: number | undefined): void {
    this.storm.release();
    const windowMs = this.o.faultStormWindowMs;
    const until = this.o.clock.now() + windowMs;
    for (const held of this.held.values()) held.recheckUntil = until;
    this.decide({
      action: 'FaultStormReleased',
      reason: `cluster stats resumed (${type} of the window ending ${new Date(windowTo).toISOString()}); ${this.held.size} held faults carried out in ${windowMs} ms unless their members report`,
      epoch,
    });
  }

  private clearHeld(memberId: string, evidence: string): void {
    if (!this.held.delete(memberId)) return;
    this.log.info('held fault cleared: the member reported again', { memberId, evidence });
  }

  // ── member lifecycle from the agents' events ─────────────────────────────

  private onInstance(memberId: string, type: 'InstanceStartedEvent' | 'InstanceActivatedEvent'): void {
    const member = this.members.get(memberId);
    if (!member) {
      this.log.debug('instance status of an unknown member ignored', { memberId, type });
      return;
    }
    this.clearHeld(memberId, type);
    const now = this.o.clock.now();
    if (type === 'InstanceStartedEvent' && member.state === 'Created') {
      this.members.set({ ...baseOf(member), state: 'Starting', startedAt: now });
      this.log.info('member starting', { memberId });
    } else if (type === 'InstanceActivatedEvent' && isPending(member)) {
      this.members.set({ ...baseOf(member), state: 'Active', activatedAt: now });
      this.backoff.success();
      this.log.info('member active', { memberId, afterMs: now - member.createdAt });
    }
  }

  // ── the rules, every tick ────────────────────────────────────────────────

  private async enforce(): Promise<void> {
    if (this.closing) return;
    const now = this.o.clock.now();
    this.members.retryStopping();
    // A storm holds every termination of the cluster, and its stats are not trusted for scaling.
    if (!this.storm.held) {
      for (const member of this.members.all()) {
        if (!isLive(member) || !isPending(member) || !member.instance || this.held.has(member.memberId)) continue;
        if (now - member.createdAt < this.o.pendingTimeoutMs) continue;
        this.o.counters.pendingTimeouts += 1;
        const retryInMs = this.backoff.failure(now);
        const failures = this.backoff.failureCount;
        this.log.warn('member not active in time', { memberId: member.memberId, failures, retryInMs });
        await this.retire(member, `not active within ${this.o.pendingTimeoutMs} ms (pending timeout)`, undefined);
      }
      for (const [memberId, held] of [...this.held]) {
        if (held.recheckUntil === undefined || now < held.recheckUntil) continue;
        this.held.delete(memberId);
        const member = this.members.get(memberId);
        const confirmed = `${held.reason}, held in a fault storm and confirmed: no stats in ${this.o.faultStormWindowMs} ms after it`;
        if (member && isLive(member)) await this.retire(member, confirmed, held.epoch);
      }
      if (!this.policy.retired) this.scale(now);
      this.enforceMax();
    }
    this.minRule(undefined);
  }

  /** The minimum rule: spawn while the cluster has fewer than min non-terminated members. */
  private minRule(epoch: number | undefined): void {
    if (this.closing) return;
    // Terminating members still count: their replacement follows their removal, in that order.
    let count = this.members.size;
    const now = this.o.clock.now();
    while (count < this.policy.min) {
      if (!this.backoff.isReady(now)) {
        this.scheduleRetry(now);
        return;
      }
      this.spawn('MemberSpawnAction', `minimum rule: ${count} < min ${this.policy.min}`, epoch);
      count += 1;
    }
  }

  private scheduleRetry(now: number): void {
    if (this.retryTimer !== undefined) return;
    const retryInMs = Math.max(0, this.backoff.readyAt - now);
    this.log.info('spawns backing off', { failures: this.backoff.failureCount, retryInMs });
    this.retryTimer = this.o.clock.setTimeout(() => {
      this.retryTimer = undefined;
      void this.queue.run(() => this.minRule(undefined));
    }, retryInMs);
  }

  private scale(now: number): void {
    const decision = this.rule.decide();
    if (!decision || decision.kind === 'steady') return;
    const live = this.members.liveCount();
    if (decision.kind === 'up') {
      // One member at a time: the next step waits until the last one is active (or gone).
      const blocked = this.members.size >= this.policy.max || this.members.all().some(isPending);
      if (blocked || !this.backoff.isReady(now)) return;
      this.rule.acted();
      this.spawn('ScaleUpAction', `${decision.reason}; ${live} → ${live + 1} members`, decision.epoch);
      return;
    }
    const victim = live > this.policy.min ? this.leastLoaded(this.activeMembers()) : undefined;
    if (!victim) return;
    this.rule.acted();
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

  // ── helpers ──────────────────────────────────────────────────────────────

  private spawn(action: 'MemberSpawnAction' | 'ScaleUpAction', reason: string, epoch: number | undefined): void {
    this.members.spawn(action, reason, epoch, choosePartition(this.policy.partitions, this.members.all()));
  }

  private activeMembers(): LiveMember[] {
    return this.members
      .all()
      .filter((m): m is LiveMember => m.state === 'Active' && m.instance !== undefined && !this.held.has(m.memberId));
  }

  private leastLoaded(candidates: LiveMember[]): LiveMember | undefined {
    return leastLoaded(candidates, this.load, this.policy.thresholds);
  }

  private decide(decision: Omit<Decision, 'clusterId'>): void {
    this.o.sink.decide({ ...decision, clusterId: this.policy.id });
  }
}
