import type { Iaas } from '@faultline/cloud-controller';
import type { Clock, Logger } from '@faultline/core';
import {
  type ClusterStat,
  type EnvelopeOf,
  type InstanceService,
  isNewerServiceEvent,
  type MemberStats,
  type StatEventName,
  statEventType,
} from '@faultline/protocol';
import type { ClusterStatus, MonitorCounts } from './autoscaler-status.js';
import { Backoff, type BackoffState } from './backoff.js';
import { ClusterFaults, type FaultsState, memberFaultClaim, type Retirement } from './cluster-faults.js';
import { ClusterMembers, type MemberCompletion } from './cluster-members.js';
import { ClusterRules } from './cluster-rules.js';
import { type ClusterSink, clusterSink, type MonitorSink } from './decisions.js';
import type { DetectorSignals } from './detector-signals.js';
import { type ClusterMaintenance, describeMaintenance, type MaintenanceEntry, NO_MAINTENANCE } from './maintenance.js';
import { activatedAtOf, baseOf, isLive, isPending, type LiveMember, type MemberContext } from './member.js';
import type { ClusterPolicy } from './policy.js';
import type { StabilizationState } from './scaling-rule.js';
import { type AgentRestarts, SecondWitness, type WitnessVerdict } from './second-witness.js';
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
  /** An Active member no member summary listed for this long is faulted (`absent`). */
  absentAfterMs: number;
  /** A storm hold ends after this long at the latest. */
  stormMaxHoldMs: number;
  /** Failure-free time after which the replacement backoff starts again. */
  backoffResetMs: number;
  /** Shared by every monitor: which network partitions the detector sees. */
  signals: DetectorSignals;
  /** Whether the registry answers: spawns wait while it does not. */
  registryReachable: () => boolean;
  /** What must survive a restart changed: the core persists it. */
  saveState: (clusterId: string, state: MonitorState) => void;
}

/** A monitor's state persisted across restarts (besides its members' rows). */
export interface MonitorState {
  backoff: BackoffState;
  faults: FaultsState;
  /** For status readers (`stack status`); derived again from the summaries after a restart. */
  detectorSilent?: { networkPartitionId: string; since: number }[];
  /** Scale stabilization: the last scale action (the cooldown) and the scale-down window's recommendations. */
  scaling?: StabilizationState;
  /**
   * The maintenance this monitor last saw in the registry and announced
   * (MaintenanceOn): a restart or a takeover announces only what changed since.
   */
  maintenance?: { cluster: boolean; members: string[] };
  /** The second witness' agent restarts of each member within its window (its bound), and when it replaced an agent. */
  agentRestarts?: AgentRestarts[];
  /** Each member's last readiness event (README "Probes"): `stack status` and the console show who is out of service. */
  service?: MemberService[];
}

/** A member's last readiness event as the monitor keeps it: its (life, seq) orders the next ones. */
export interface ServiceState {
  life: number;
  seq: number;
  /** Out of service (its readiness probe fails), or back in. */
  out: boolean;
  reason: string | null;
  /** Autoscaler time the event was taken. */
  since: number;
}

export interface MemberService extends ServiceState {
  memberId: string;
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
  private readonly witness: SecondWitness;
  private readonly signals: DetectorSignals;
  private readonly absentAfterMs: number;
  /** A member faulted within this of its activation (the fault timeout) did not really start: a failed replacement. */
  private readonly crashWindowMs: number;
  private readonly saveState: ClusterMonitorOptions['saveState'];
  /** memberId → autoscaler time a member summary last listed it. */
  private readonly listed = new Map<string, number>();
  /** Network partitions of this cluster the detector is silent about → since when. */
  private readonly silent = new Map<string, number>();
  /**
   * Each member's last readiness event, persisted with the monitor state: a
   * restart or a takeover keeps showing a member out of service, and still
   * refuses an older event that arrives late.
   */
  private readonly service = new Map<string, ServiceState>();
  /** The maintenance rows of this cluster as last read from the registry (kept while it cannot be read). */
  private maint: ClusterMaintenance = NO_MAINTENANCE;
  /** What of it was announced (MaintenanceOn) and not yet ended (MaintenanceOff). */
  private readonly announced = { cluster: false, members: new Set<string>() };
  private startedAt: number;
  private closing = false;

  constructor(options: ClusterMonitorOptions) {
    const { policy, clock } = options;
    this.policy = policy;
    this.iaas = options.iaas;
    this.clock = clock;
    this.log = options.logger.child({ clusterId: policy.id });
    this.sink = clusterSink(options.sink, policy.id);
    this.backoff = new Backoff(options.backoffInitialMs, options.backoffMaxMs, options.backoffResetMs);
    this.signals = options.signals;
    this.absentAfterMs = options.absentAfterMs;
    this.crashWindowMs = options.faultStormWindowMs;
    this.saveState = options.saveState;
    this.startedAt = clock.now();
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
      iaas: options.iaas,
      decide: this.sink.decide,
      log: this.log,
      faultStormWindowMs: options.faultStormWindowMs,
      stormMaxHoldMs: options.stormMaxHoldMs,
      pendingTimeoutMs: options.pendingTimeoutMs,
      minMembers: policy.min,
      changed: () => this.persistState(),
      maintained: (memberId) => this.maintained(memberId),
    });
    this.rules = new ClusterRules({
      policy,
      members: this.members,
      backoff: this.backoff,
      // A member in maintenance is never chosen for a scale down, as one whose fault is held.
      faults: { isHeld: (memberId) => this.faults.isHeld(memberId) || this.maintained(memberId) },
      // A whole cluster in maintenance: no spawn of the minimum rule (its backoff retry included).
      paused: () => this.maint.cluster !== undefined,
      decide: this.sink.decide,
      clock,
      queue: this.queue,
      log: this.log,
      scaleDownConsecutive: options.scaleDownConsecutive,
      registryReachable: options.registryReachable,
      changed: () => this.persistState(),
    });
    this.witness = new SecondWitness({
      policy: policy.secondWitness,
      iaas: options.iaas,
      clock,
      log: this.log,
      queue: this.queue,
      changed: () => this.persistState(),
    });
  }

  /**
   * Takes the members adopted after a restart, what the last life persisted
   * (backoff, storm hold, held faults, the maintenance it had announced) and
   * the maintenance rows read now, then applies the rules at once (max, min).
   */
  start(adopted: readonly MemberContext[], state?: MonitorState, maintenance?: ClusterMaintenance): Promise<void> {
    return this.queue.run(async () => {
      this.startedAt = this.clock.now();
      for (const member of adopted) this.members.adopt(member);
      if (state) {
        this.backoff.restore(state.backoff);
        this.faults.restore(state.faults);
        if (state.scaling) this.rules.restoreStabilization(state.scaling);
        this.witness.restore(state.agentRestarts ?? [], (memberId) => this.members.knows(memberId));
        this.announced.cluster = state.maintenance?.cluster ?? false;
        for (const memberId of state.maintenance?.members ?? []) this.announced.members.add(memberId);
        for (const { memberId, ...kept } of state.service ?? [])
          if (this.members.knows(memberId)) this.service.set(memberId, kept);
      }
      this.applyMaintenance(maintenance ?? NO_MAINTENANCE);
      await this.enforce();
    });
  }

  /**
   * This cluster's maintenance rows as just read from the registry (every
   * tick, before reconciliation and the rules): what began is announced
   * (MaintenanceOn), what ended too (MaintenanceOff; its held faults are
   * verified at this tick). Level-triggered: what the rules do follows the
   * rows read, not these announcements.
   */
  maintenance(view: ClusterMaintenance): Promise<void> {
    return this.queue.run(() => {
      if (!this.closing) this.applyMaintenance(view);
    });
  }

  /** Whether the member is in maintenance: its own, or its cluster's. */
  maintained(memberId: string): boolean {
    return this.maint.cluster !== undefined || this.maint.members.has(memberId);
  }

  /** Whether the member (or what is left of it) is this cluster's. */
  owns(memberId: string): boolean {
    return this.members.knows(memberId);
  }

  /** What this monitor persists. */
  state(): MonitorState {
    const agentRestarts = this.witness.state();
    const service = [...this.service]
      .filter(([memberId]) => this.members.knows(memberId))
      .map(([memberId, s]) => ({ memberId, ...s }));
    return {
      backoff: this.backoff.state(),
      faults: this.faults.state(),
      detectorSilent: [...this.silent].map(([networkPartitionId, since]) => ({ networkPartitionId, since })),
      scaling: this.rules.stabilizationState(),
      maintenance: { cluster: this.announced.cluster, members: [...this.announced.members] },
      ...(agentRestarts.length > 0 ? { agentRestarts } : {}),
      ...(service.length > 0 ? { service } : {}),
    };
  }

  /**
   * Registry against infrastructure (every monitor interval): a member with an
   * instance that the Iaas did not find running when asked at `askedAt` is
   * gone — removed (and replaced by the rules) once the Iaas confirms it; in
   * maintenance, held instead (and verified once the maintenance ends).
   */
  reconcile(running: ReadonlySet<string>, askedAt: number): Promise<void> {
    return this.queue.run(async () => {
      if (this.closing) return;
      const missing = this.members
        .all()
        .filter(
          (m): m is LiveMember =>
            isLive(m) && m.instance !== undefined && m.instance.spawnedAt < askedAt && !running.has(m.memberId),
        );
      for (const member of missing) {
        const still = this.members.get(member.memberId);
        if (!still || !isLive(still)) continue;
        // Held already and in maintenance: nothing will be done before it ends, nothing to ask. Held for
        // a maintenance that has ended: verifyHeld checks it at this tick, keeping when it was found.
        const cause = this.faults.heldCause(still.memberId);
        if (cause !== undefined && (cause === 'maintenance' || this.maintained(still.memberId))) continue;
        const alive = await this.iaas.isRunning(member.memberId).catch(() => true);
        if (alive) continue;
        this.log.warn('member without a running instance', {
          event: 'autoscaler.instance_missing',
          memberId: member.memberId,
        });
        const current = this.members.get(member.memberId);
        if (current && isLive(current) && this.maintained(current.memberId)) {
          const why = 'its instance is not running on the infrastructure (reconciliation)';
          this.faults.holdGone(current, why, this.clock.now());
          continue;
        }
        await this.retire({
          member: still,
          reason: 'its instance is not running on the infrastructure (reconciliation)',
          epoch: undefined,
          faulted: true,
          // Found gone before its stats were missed: no MemberFault states its last stat.
          fault: { kind: 'gone', lastStatAt: null, declaredAt: this.clock.now() },
        });
      }
    });
  }

  /** The monitor interval: pending timeouts, re-checks after a storm, the scaling rule, max, min. */
  tick(): Promise<void> {
    return this.queue.run(() => this.enforce());
  }

  fault(envelope: EnvelopeOf<'MemberFaultEvent'>): Promise<void> {
    return this.queue.run(async () => {
      if (this.closing) return;
      const now = this.clock.now();
      const member = this.members.get(envelope.data.memberId);
      const silent = member !== undefined && this.isSilent(member, now);
      const claim = memberFaultClaim(envelope.data, envelope.time);
      // The second witness is looking at the member, or the fault is of an agent it replaced: no news.
      const covered = this.witness.covers(claim);
      if (covered !== undefined) {
        this.log.info('fault ignored', {
          event: 'autoscaler.fault_ignored',
          memberId: claim.memberId,
          why: covered,
          faultId: envelope.id,
          epoch: envelope.epoch ?? null,
        });
        return;
      }
      const retirement = this.faults.fault(claim, envelope.id, envelope.epoch, now, silent);
      if (retirement) await this.retire(retirement);
    });
  }

  instanceStarted(memberId: string): Promise<void> {
    return this.queue.run(() => this.onInstance(memberId, 'InstanceStartedEvent'));
  }

  instanceActivated(memberId: string): Promise<void> {
    return this.queue.run(() => this.onInstance(memberId, 'InstanceActivatedEvent'));
  }

  /**
   * A readiness event of a member's agent (README "Probes"): out of service,
   * or back in. Shown, never acted upon (a member out of service is not
   * faulted). Events come late, twice or out of order: the one with the
   * greatest (life, seq) of each member wins.
   */
  instanceService(type: 'InstanceOutOfServiceEvent' | 'InstanceInServiceEvent', data: InstanceService): Promise<void> {
    return this.queue.run(() => {
      const { memberId } = data;
      if (!this.members.get(memberId)) return;
      const last = this.service.get(memberId);
      if (!isNewerServiceEvent(data, last)) {
        this.log.debug('readiness event older than the last one ignored', {
          event: 'autoscaler.service_event_stale',
          memberId,
          type,
        });
        return;
      }
      const out = type === 'InstanceOutOfServiceEvent';
      this.service.set(memberId, {
        life: data.life,
        seq: data.seq,
        out,
        reason: data.reason ?? null,
        since: this.clock.now(),
      });
      this.persistState();
      this.log.info(out ? 'member out of service: its readiness probe fails' : 'member back in service', {
        event: out ? 'autoscaler.member_out_of_service' : 'autoscaler.member_in_service',
        memberId,
        ...(out ? { why: data.reason ?? null } : {}),
      });
    });
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
      const now = this.clock.now();
      for (const { memberId, value } of stats.members) {
        if (this.members.get(memberId)) this.listed.set(memberId, now);
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
      maintenance: this.maint.cluster ?? null,
      detectorSilent: [...this.silent].map(([networkPartitionId, since]) => ({ networkPartitionId, since })),
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
        maintenance: this.maint.cluster ?? this.maint.members.get(m.memberId) ?? null,
        outOfService: this.outOfService(m.memberId),
        drainingUntil: m.state === 'Terminating' ? (m.drainUntil ?? null) : null,
      })),
    };
  }

  /** The member's out-of-service state from its readiness probe, or null while it is in service (or not known). */
  private outOfService(memberId: string): { reason: string | null; since: number } | null {
    const s = this.service.get(memberId);
    if (!this.members.get(memberId)) this.service.delete(memberId);
    return s?.out ? { reason: s.reason, since: s.since } : null;
  }

  /** Stops deciding; spawns and terminations under way finish and are recorded. Members keep running. */
  async close(): Promise<void> {
    this.closing = true;
    this.rules.close();
    await this.witness.settle();
    this.members.abortDrains();
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
      case 'spawnNotRecorded':
        // No backoff: the cluster did nothing wrong. The next tick's minimum rule tries again once the registry answers.
        this.forget(memberId);
        return;
      case 'spawnFailed': {
        this.forget(memberId);
        const retryInMs = this.backoff.failure(this.clock.now());
        this.persistState();
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
    this.listed.delete(memberId);
    this.witness.forget(memberId);
    this.service.delete(memberId);
  }

  private persistState(): void {
    this.saveState(this.policy.id, this.state());
  }

  /**
   * Whether the detector is silent about the member's network partition now:
   * no summary listed any member there for a fault timeout (or it is listed
   * again since less than a fault timeout after such a silence, or this
   * autoscaler started less than a fault timeout ago; `announced` leaves the
   * start out: that is no news about the detector), while one of this
   * cluster's members there has been Active longer than that (so a partition
   * whose first members are still starting is not called silent).
   */
  private isSilent(member: { networkPartitionId: string }, now: number, announced = false): boolean {
    const np = member.networkPartitionId;
    const { silentAfterMs } = this.signals;
    // Listed again after a silence: a silence only if the detector should have listed someone before that,
    // a member Active for longer than silentAfterMs then. The first listing of a partition whose members
    // had just started (a fresh stack) resumes nothing.
    const resumed = this.signals.resumedAt(np, now);
    const settling =
      resumed !== undefined &&
      this.members
        .all()
        .some((m) => m.state === 'Active' && m.networkPartitionId === np && resumed - m.activatedAt > silentAfterMs);
    const doubtful =
      this.signals.silentSince(np, now) !== undefined || settling || (!announced && this.signals.starting(now));
    if (!doubtful) return false;
    return this.members
      .all()
      .some((m) => m.state === 'Active' && m.networkPartitionId === np && now - m.activatedAt > silentAfterMs);
  }

  /**
   * A fault of a member that never activated, or within one fault timeout of
   * its activation, is a replacement that did not work: it backs the next
   * spawn off (a workload that crashes at start is not respawned in a loop).
   */
  private faultBackoff(member: LiveMember, now: number): void {
    const activatedAt = activatedAtOf(member);
    if (activatedAt !== undefined && now - activatedAt > this.crashWindowMs) return;
    const retryInMs = this.backoff.failure(now);
    this.persistState();
    this.log.info('faulted soon after it started: replacement backs off', {
      event: 'autoscaler.fault_backoff',
      memberId: member.memberId,
      failures: this.backoff.failureCount,
      retryInMs,
    });
  }

  /** DetectorSilent / DetectorResumed, once each, for the network partitions where this cluster has Active members. */
  private watchDetector(now: number): void {
    const partitions = new Set<string>();
    for (const m of this.members.all()) {
      if (m.state === 'Active' && !partitions.has(m.networkPartitionId) && this.isSilent(m, now, true))
        partitions.add(m.networkPartitionId);
    }
    for (const np of partitions) {
      if (this.silent.has(np)) continue;
      const since = this.signals.silentSince(np, now) ?? now;
      this.silent.set(np, since);
      this.persistState();
      this.sink.decide({
        action: 'DetectorSilent',
        reason: `no member summary listed any member of network partition ${np} for ${now - since} ms: the SP pair or the brokers may be failing, not the members; fault-driven actions there are held and each held member is verified through the Iaas`,
      });
    }
    for (const [np, since] of [...this.silent]) {
      if (partitions.has(np)) continue;
      this.silent.delete(np);
      this.persistState();
      const listed = this.signals.silentSince(np, now) === undefined;
      this.sink.decide({
        action: 'DetectorResumed',
        reason: listed
          ? `member summaries list network partition ${np} again (silent for ${now - since} ms)`
          : `no member of this cluster in network partition ${np} has served long enough to be watched (silent for ${now - since} ms)`,
      });
    }
    this.faults.detectorResumed((member) => this.isSilent(member, now));
  }

  /** Active members no member summary listed for absentAfterMs (since activation, or this monitor's start). */
  private async absences(now: number): Promise<void> {
    for (const member of this.members.all()) {
      if (member.state !== 'Active' || !member.instance || this.faults.isHeld(member.memberId)) continue;
      const seen = Math.max(this.listed.get(member.memberId) ?? 0, member.activatedAt, this.startedAt);
      const silentForMs = now - seen;
      if (silentForMs <= this.absentAfterMs) continue;
      const claim = {
        memberId: member.memberId,
        kind: 'absent' as const,
        reason: `absent: no member summary listed it for ${silentForMs} ms`,
        lastStatAt: null,
        declaredAt: now,
      };
      const retirement = this.faults.fault(
        claim,
        `absent:${member.memberId}:${seen}`,
        undefined,
        now,
        this.isSilent(member, now),
      );
      if (retirement) await this.retire(retirement);
    }
  }

  /**
   * The seed's order: an instance that still runs is terminated
   * (MemberTerminateAction), then removed, then the minimum rule respawns. An
   * instance already gone is removed and respawned without a terminate
   * action; the Iaas is still asked to terminate it, quietly, because its
   * agent may linger (the cloud controller's rule: terminate every member you forget).
   */
  private async retire(retirement: Retirement, witnessed = false): Promise<void> {
    if (!witnessed && this.witnessFirst(retirement)) return;
    const { member, reason, epoch, faulted, fault } = retirement;
    if (faulted) this.faultBackoff(member, this.clock.now());
    this.rules.retiring(member.memberId);
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
      this.sink.decide({ ...terminate, reason: `${reason}; instance still running`, fault });
      this.members.terminate(member, reason, epoch);
      return;
    }
    this.members.remove(member, `${reason}; instance not running`, epoch, fault);
    this.members.reap(member.memberId);
    this.completed({ type: 'terminated', memberId: member.memberId, epoch });
  }

  /**
   * The cluster's second witness (README "Autoscaler → Second witness"): a
   * retirement it applies to (a silent agent, an instance) is handed to it and
   * decided on its verdict (`witnessed`); true when it took it. A member it is
   * looking at already is left to that verdict.
   */
  private witnessFirst(retirement: Retirement): boolean {
    if (!this.witness.applies(retirement)) return false;
    const { memberId } = retirement.member;
    if (this.witness.busy(memberId)) return true;
    // Not absent while it is looked at: the absence rule counts from now.
    this.listed.set(memberId, this.clock.now());
    this.witness.witness(retirement, (verdict) => this.witnessed(retirement, verdict));
    return true;
  }

  /**
   * The witness' verdict, on the queue, on the member as it is now: kept with
   * its new agent (AgentRestarted; its instance persisted; no failed
   * replacement), or retired as without a witness, saying what it saw.
   */
  private async witnessed(retirement: Retirement, verdict: WitnessVerdict): Promise<void> {
    const { memberId } = retirement.member;
    const current = this.members.get(memberId);
    if (!current || !isLive(current)) {
      this.log.info('second witness verdict on a member no longer live', {
        event: 'autoscaler.witness_moot',
        memberId,
        kept: verdict.kept,
      });
      return;
    }
    if (verdict.kept) {
      this.members.set({ ...current, instance: verdict.instance });
      // A new agent starts in service (its readiness passes until it fails) and says so only on a change:
      // what the old agent last said is over. The old life's (life, seq) stays, so its late events are refused.
      const service = this.service.get(memberId);
      if (service?.out) this.service.set(memberId, { ...service, out: false, reason: null, since: this.clock.now() });
      // Persists the monitor state (the restart, and the readiness above).
      this.witness.kept(memberId, retirement.fault?.lastStatAt ?? null);
      // Listed again once its new agent reports: the absence rule counts from now.
      this.listed.set(memberId, this.clock.now());
      this.sink.decide({ action: 'AgentRestarted', memberId, reason: verdict.reason, epoch: retirement.epoch });
      return;
    }
    // Closing: no new decision; the fault is re-announced, or the absence found again, in the next life.
    if (this.closing) return;
    const reason = `${retirement.reason}; second witness: ${verdict.saw}`;
    // Put in maintenance while the witness looked: held like any fault there, verified when it ends.
    if (this.maintained(memberId)) {
      this.faults.holdMaintained(current, reason, retirement.fault, retirement.epoch, this.clock.now());
      return;
    }
    await this.retire({ ...retirement, member: current, reason }, true);
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
      this.log.info('member active', { event: 'autoscaler.member_active', memberId, afterMs: now - member.createdAt });
    }
  }

  /**
   * Activation from state: a member pending for longer than one fault timeout
   * whose workload answers the autoscaler's own probe (the very check its agent
   * activates on) is Active. Its InstanceActivatedEvent may be lost for good:
   * consumed by an autoscaler that died before it could record it, so no
   * message will ever come again, and the pending timeout would kill a member
   * that serves.
   */
  private async activateAnswering(now: number): Promise<void> {
    // A custom startup probe: only the agent can tell it passed; the pending timeout bounds the wait.
    if (!this.policy.activateByProbe) return;
    const due = this.members
      .all()
      .filter(
        (m) =>
          isPending(m) &&
          m.instance !== undefined &&
          now - m.createdAt > this.crashWindowMs &&
          !this.faults.isHeld(m.memberId),
      );
    if (due.length === 0) return;
    const answers = await Promise.all(due.map((m) => this.iaas.probe(m.memberId).catch(() => undefined)));
    due.forEach((m, i) => {
      const current = this.members.get(m.memberId);
      if (answers[i] !== 'answering' || !current || !isPending(current)) return;
      this.members.set({ ...baseOf(current), state: 'Active', activatedAt: this.clock.now() });
      this.log.info('member active: its workload answers the autoscaler’s own probe (no InstanceActivatedEvent came)', {
        event: 'autoscaler.member_active_by_probe',
        memberId: m.memberId,
        afterMs: now - current.createdAt,
      });
    });
  }

  private async enforce(): Promise<void> {
    if (this.closing) return;
    const now = this.clock.now();
    this.members.retryStopping();
    this.watchDetector(now);
    await this.activateAnswering(now);
    await this.absences(now);
    for (const verified of await this.faults.verifyHeld()) await this.retire(verified);
    this.faults.expireStorm(this.clock.now());
    // A storm holds every termination of the cluster, and its stats are not trusted for scaling.
    if (!this.faults.stormHeld) {
      for (const timedOut of this.faults.pendingTimeouts(now)) {
        const retryInMs = this.backoff.failure(now);
        this.persistState();
        this.log.warn('member not active in time', {
          event: 'autoscaler.pending_timeout',
          memberId: timedOut.member.memberId,
          failures: this.backoff.failureCount,
          retryInMs,
        });
        await this.retire(timedOut);
      }
      for (const confirmed of this.faults.confirmedFaults(now)) await this.retire(confirmed);
      // A whole cluster in maintenance: no scaling either way (and no scale-down above max).
      if (this.maint.cluster === undefined) this.rules.enforce(now);
    }
    this.rules.min(undefined);
  }

  /** Takes the rows read, and announces what began and what ended since the last read. */
  private applyMaintenance(view: ClusterMaintenance): void {
    this.maint = view;
    let changed = false;
    const on = (entry: MaintenanceEntry) => {
      changed = true;
      const what =
        entry.memberId === null
          ? 'faults of its members are held, not acted on; the minimum rule and the scaling rule pause'
          : 'its faults are held, not acted on';
      this.sink.decide({
        action: 'MaintenanceOn',
        memberId: entry.memberId ?? undefined,
        reason: `maintenance ${describeMaintenance(entry)}; ${what}`,
      });
    };
    const off = (memberId: string | undefined) => {
      changed = true;
      // Verified at this tick (verifyHeld): back and answering, cleared; gone or not answering, retired and replaced.
      const held = this.faults
        .heldFor('maintenance')
        .filter((id) => (memberId === undefined || id === memberId) && !this.maintained(id)).length;
      const rules = memberId === undefined ? '; the minimum rule and the scaling rule resume' : '';
      this.sink.decide({
        action: 'MaintenanceOff',
        memberId,
        reason: `maintenance ended: ${held} fault(s) held for it verified through the Iaas now${rules}`,
      });
    };
    if (view.cluster && !this.announced.cluster) on(view.cluster);
    if (!view.cluster && this.announced.cluster) off(undefined);
    this.announced.cluster = view.cluster !== undefined;
    for (const [memberId, entry] of view.members) {
      if (this.announced.members.has(memberId)) continue;
      this.announced.members.add(memberId);
      on(entry);
    }
    for (const memberId of [...this.announced.members]) {
      if (view.members.has(memberId)) continue;
      this.announced.members.delete(memberId);
      off(memberId);
    }
    if (changed) this.persistState();
  }
}
