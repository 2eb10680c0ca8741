import type { Iaas } from '@faultline/cloud-controller';
import type { Clock, Logger } from '@faultline/core';
import {
  type ClusterStat,
  type EnvelopeOf,
  type MemberStats,
  type StatEventName,
  statEventType,
} from '@faultline/protocol';
import type { ClusterStatus, MonitorCounts } from './autoscaler-status.js';
import { Backoff } from './backoff.js';
import { ClusterFaults, type Retirement } from './cluster-faults.js';
import { ClusterMembers, type MemberCompletion } from './cluster-members.js';
import { ClusterRules } from './cluster-rules.js';
import { type ClusterSink, clusterSink, type MonitorSink } from './decisions.js';
import { activatedAtOf, baseOf, isPending, type MemberContext } from './member.js';
import type { ClusterPolicy } from './policy.js';
import { SerialQueue } from './serial-queue.js';

export interface ClusterMonitorOptions {
  policy: ClusterPolicy;
  iaas: Iaas;
  sink: MonitorSink;
  clock: Clock;
  logger: Logger;
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

/**
 * One cluster under one deployment policy (Stratos' cluster monitor, README
 * "Autoscaler"). Its parts: ClusterMembers (the context, spawns and
 * terminates through the Iaas), ClusterFaults (MemberFault, fault storm,
 * pending timeout: which members must go) and ClusterRules (minimum,
 * scaling, maximum: how many members run). The monitor feeds them the
 * events, retires the members ClusterFaults names, records the replacement
 * backoff, and handles every completion of a spawn or terminate in one place
 * (`completed`). Every entry point runs on one SerialQueue, so a fault, an
 * instance event, a tick and the completion of a spawn never interleave: the
 * log shows terminate → remove → spawn because the code cannot do otherwise.
 */
export class ClusterMonitor {
  readonly policy: ClusterPolicy;
  private readonly queue = new SerialQueue();
  private readonly iaas: Iaas;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly sink: ClusterSink;
  private readonly backoff: Backoff;
  private readonly members: ClusterMembers;
  private readonly faults: ClusterFaults;
  private readonly rules: ClusterRules;
  private closing = false;

  constructor(options: ClusterMonitorOptions) {
    const { policy, clock } = options;
    this.policy = policy;
    this.iaas = options.iaas;
    this.clock = clock;
    this.log = options.logger.child({ clusterId: policy.id });
    this.sink = clusterSink(options.sink, policy.id);
    this.backoff = new Backoff(options.backoffInitialMs, options.backoffMaxMs);
    this.members = new ClusterMembers({
      policy,
      iaas: options.iaas,
      sink: this.sink,
      clock,
      log: this.log,
      queue: this.queue,
      newMemberId: options.newMemberId,
      terminateGraceMs: options.terminateGraceMs,
      completed: (completion) => this.completed(completion),
    });
    this.faults = new ClusterFaults({
      members: this.members,
      decide: this.sink.decide,
      log: this.log,
      faultStormWindowMs: options.faultStormWindowMs,
      pendingTimeoutMs: options.pendingTimeoutMs,
    });
    this.rules = new ClusterRules({
      policy,
      members: this.members,
      backoff: this.backoff,
      faults: this.faults,
      decide: this.sink.decide,
      clock,
      queue: this.queue,
      log: this.log,
      scaleDownConsecutive: options.scaleDownConsecutive,
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
    return this.queue.run(async () => {
      if (this.closing) return;
      const retirement = this.faults.fault(envelope.data, envelope.id, envelope.epoch, this.clock.now());
      if (retirement) await this.retire(retirement);
    });
  }

  instanceStarted(memberId: string): Promise<void> {
    return this.queue.run(() => this.onInstance(memberId, 'InstanceStartedEvent'));
  }

  instanceActivated(memberId: string): Promise<void> {
    return this.queue.run(() => this.onInstance(memberId, 'InstanceActivatedEvent'));
  }

  /** One cluster summary (`scope: 'cluster'`): the scaling rule's figure, and the end of a fault storm. */
  clusterStat(name: StatEventName, stat: ClusterStat, epoch: number | undefined): Promise<void> {
    return this.queue.run(() => {
      this.rules.clusterSummary(name.kind, name.metric, stat.value, stat.windowTo, epoch);
      this.faults.clusterSummary(statEventType(name), stat.windowTo, epoch, this.clock.now());
    });
  }

  /** One member summary (`scope: 'member'`): the figure of every member of the cluster it lists. */
  memberStats(name: StatEventName, stats: MemberStats): Promise<void> {
    return this.queue.run(() => {
      const type = statEventType(name);
      for (const { memberId, value } of stats.members) {
        this.faults.memberSummary(memberId, stats.windowFrom, type);
        if (name.kind === 'Average' && this.members.get(memberId))
          this.rules.memberAverage(memberId, name.metric, value);
      }
    });
  }

  get counts(): MonitorCounts {
    return { ...this.faults.counts, ...this.members.counts };
  }

  status(): ClusterStatus {
    const p = this.policy;
    return {
      clusterId: p.id,
      cartridgeType: p.cartridgeType,
      min: p.min,
      max: p.max,
      retired: p.retired,
      faultStormHeldSince: this.faults.stormHeldSince ?? null,
      backoff: {
        failures: this.backoff.failureCount,
        retryAt: Number.isFinite(this.backoff.readyAt) ? this.backoff.readyAt : null,
      },
      scaling: this.rules.scalingStatus,
      members: this.members.all().map((m) => ({
        memberId: m.memberId,
        state: m.state,
        partitionId: m.partitionId,
        createdAt: m.createdAt,
        activatedAt: activatedAtOf(m) ?? null,
        address: m.instance ? `${m.instance.address.host}:${m.instance.address.port}` : null,
        heldFault: this.faults.heldReason(m.memberId) ?? null,
      })),
    };
  }

  /** Stops deciding; spawns and terminations under way finish and are recorded. Members keep running. */
  async close(): Promise<void> {
    this.closing = true;
    this.rules.close();
    await this.members.settle();
    await this.queue.idle();
  }

  /** What follows a spawn or a terminate, whichever way it ended. */
  private completed(completion: MemberCompletion): void {
    const { memberId } = completion;
    switch (completion.type) {
      case 'spawned': {
        const { host, port } = completion.instance.address;
        this.log.info('member created', { event: 'autoscaler.member_created', memberId, address: `${host}:${port}` });
        return;
      }
      case 'spawnFailed': {
        this.forget(memberId);
        const retryInMs = this.backoff.failure(this.clock.now());
        const { code } = completion.error as { code?: unknown };
        this.log.warn('spawn failed', {
          event: 'autoscaler.spawn_failed',
          memberId,
          code,
          error: completion.error,
          failures: this.backoff.failureCount,
          retryInMs,
        });
        this.rules.min(undefined);
        return;
      }
      case 'terminated':
        this.forget(memberId);
        this.rules.min(completion.epoch);
        return;
    }
  }

  /** The member left the context: what the faults and the rules kept about it goes too. */
  private forget(memberId: string): void {
    this.faults.forget(memberId);
    this.rules.forget(memberId);
  }

  /**
   * The seed's order: an instance that still runs is terminated
   * (MemberTerminateAction), then removed, then the minimum rule respawns. An
   * instance already gone is removed and respawned without a terminate
   * action; the Iaas is still asked to terminate it, quietly, because its
   * agent may linger (the cloud controller's rule: terminate every member you forget).
   */
  private async retire({ member, reason, epoch }: Retirement): Promise<void> {
    let running = false;
    if (member.instance) {
      try {
        running = await this.iaas.isRunning(member.memberId);
      } catch (error) {
        running = true; // terminate is idempotent: when in doubt, stop it
        this.log.warn('isRunning failed, terminating anyway', {
          event: 'autoscaler.is_running_failed',
          memberId: member.memberId,
          error,
        });
      }
    }
    if (running) {
      const terminate = { action: 'MemberTerminateAction', memberId: member.memberId, epoch } as const;
      this.sink.decide({ ...terminate, reason: `${reason}; instance still running` });
      this.members.terminate(member, reason, epoch);
      return;
    }
    this.members.remove(member, `${reason}; instance not running`, epoch);
    this.members.reap(member.memberId);
    this.completed({ type: 'terminated', memberId: member.memberId, epoch });
  }

  private onInstance(memberId: string, type: 'InstanceStartedEvent' | 'InstanceActivatedEvent'): void {
    const member = this.members.get(memberId);
    if (!member) {
      this.log.debug('instance status of an unknown member ignored', {
        event: 'autoscaler.unknown_member_status',
        memberId,
        type,
      });
      return;
    }
    this.faults.instanceEvent(memberId, type);
    const now = this.clock.now();
    if (type === 'InstanceStartedEvent' && member.state === 'Created') {
      this.members.set({ ...baseOf(member), state: 'Starting', startedAt: now });
      this.log.info('member starting', { event: 'autoscaler.member_starting', memberId });
    } else if (type === 'InstanceActivatedEvent' && isPending(member)) {
      this.members.set({ ...baseOf(member), state: 'Active', activatedAt: now });
      this.backoff.success();
      this.log.info('member active', { event: 'autoscaler.member_active', memberId, afterMs: now - member.createdAt });
    }
  }

  private async enforce(): Promise<void> {
    if (this.closing) return;
    const now = this.clock.now();
    this.members.retryStopping();
    // A storm holds every termination of the cluster, and its stats are not trusted for scaling.
    if (!this.faults.stormHeld) {
      for (const timedOut of this.faults.pendingTimeouts(now)) {
        const retryInMs = this.backoff.failure(now);
        this.log.warn('member not active in time', {
          event: 'autoscaler.pending_timeout',
          memberId: timedOut.member.memberId,
          failures: this.backoff.failureCount,
          retryInMs,
        });
        await this.retire(timedOut);
      }
      for (const confirmed of this.faults.confirmedFaults(now)) await this.retire(confirmed);
      this.rules.enforce(now);
    }
    this.rules.min(undefined);
  }
}
