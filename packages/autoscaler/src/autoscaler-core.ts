import type { Iaas, MemberInstance } from '@faultline/cloud-controller';
import { type Clock, type ClusterConfig, FaultlineError, type Logger, once, type TimerHandle } from '@faultline/core';
import {
  type ClusterStat,
  type Envelope,
  type MemberStats,
  parseStatEventType,
  rootOf,
  TOPIC_ROOTS,
} from '@faultline/protocol';
import type { ActionCount, AutoscalerCounters, AutoscalerStatus, MonitorCounts } from './autoscaler-status.js';
import { ClusterMonitor, type ClusterMonitorOptions, type MonitorState } from './cluster-monitor.js';
import {
  type ActionRecord,
  decisionEnvelope,
  type MonitorSink,
  toActionRecord,
  topologyEnvelope,
} from './decisions.js';
import { DetectorSignals } from './detector-signals.js';
import {
  type ClusterMaintenance,
  MAX_MAINTENANCE_ROWS,
  type MaintenanceEntry,
  maintenanceByCluster,
  NO_MAINTENANCE,
} from './maintenance.js';
import { fromRecord, identityOf, type MemberContext, type MemberRecord, toRecord } from './member.js';
import { parseMonitorState } from './monitor-state.js';
import { type AutoscalerCoreOptions, resolveAutoscalerCoreOptions } from './options.js';
import { type ClusterPolicy, policyFrom, retiredPolicy } from './policy.js';
import type { Registry } from './registry.js';
import { RegistryWriter } from './registry-writer.js';

/**
 * The autoscaler without its broker connections: cluster monitors fed by
 * `handle(envelope)`, the epoch fence, adoption from the registry, the sink
 * that turns each decision into a log record, a registry row and a message.
 * `createAutoscaler()` adds the subscriber and the publisher.
 */
export class AutoscalerCore {
  private readonly clusters: readonly ClusterConfig[];
  private readonly iaas: Iaas;
  private readonly registry: Registry;
  private readonly publish: (envelope: Envelope) => Promise<void>;
  private readonly monitorIntervalMs: number;
  private readonly orphanGraceMs: number;
  private readonly actionHistory: number;
  private readonly signals: DetectorSignals;
  /** Instances no monitor owns → when they were first found. */
  private readonly orphans = new Map<string, number>();
  private ticking = false;
  private readonly clock: Clock;
  private readonly log: Logger;
  /** What every cluster monitor is built with, besides its policy. */
  private readonly monitorSettings: Omit<ClusterMonitorOptions, 'policy'>;
  private readonly monitors = new Map<string, ClusterMonitor>();
  private readonly writer: RegistryWriter;
  /** The core's own counts; the monitors and the registry writer keep theirs. */
  private readonly counted = {
    received: 0,
    staleEpochDropped: 0,
    staleEpochFacts: 0,
    unknownCluster: 0,
    publishErrors: 0,
    orphansTerminated: 0,
  };
  private history: ActionRecord[] = [];
  /** Actions decided in this term, by type and cluster (the `faultline_autoscaler_actions_total` metric). */
  private readonly actionCounts = new Map<string, ActionCount>();
  private newestEpoch: number | undefined;
  /** The SP group's lease epoch as last read from the lease table: what the fence follows. */
  private leaseEpoch: number | undefined;
  /** A read of the lease table under way (a new epoch's first events share it). */
  private leaseRead: Promise<number | undefined> | undefined;
  private ticker: TimerHandle | undefined;
  private state: AutoscalerStatus['state'] = 'idle';
  /** The maintenance rows as last read, by cluster: kept as they are while the registry cannot be read. */
  private maintenance = new Map<string, ClusterMaintenance>();
  /** The last read of the maintenance rows failed (logged once until one succeeds). */
  private maintenanceUnread = false;

  constructor(input: AutoscalerCoreOptions) {
    const options = resolveAutoscalerCoreOptions(input);
    this.clusters = options.clusters;
    this.iaas = options.iaas;
    this.registry = options.registry;
    this.publish = options.publish;
    this.monitorIntervalMs = options.monitorIntervalMs;
    this.orphanGraceMs = options.orphanGraceMs;
    this.signals = new DetectorSignals(options.faultStormWindowMs, options.clock.now());
    this.actionHistory = options.actionHistory;
    this.clock = options.clock;
    this.log = options.logger;
    this.monitorSettings = {
      iaas: options.iaas,
      sink: this.sink,
      clock: options.clock,
      logger: options.logger,
      newMemberId: options.newMemberId,
      pendingTimeoutMs: options.pendingTimeoutMs,
      backoffInitialMs: options.backoffInitialMs,
      backoffMaxMs: options.backoffMaxMs,
      scaleDownConsecutive: options.scaleDownConsecutive,
      faultStormWindowMs: options.faultStormWindowMs,
      terminateGraceMs: options.terminateGraceMs,
      absentAfterMs: options.faultStormWindowMs + options.summaryIntervalMs,
      stormMaxHoldMs: options.stormMaxHoldMs,
      backoffResetMs: options.backoffResetMs,
      signals: this.signals,
      registryReachable: () => this.writer.reachable,
      saveState: (clusterId, state) => this.writer.cluster(clusterId, state),
    };
    this.writer = new RegistryWriter(options.registry, this.log.child({ component: 'registry' }));
  }

  /** Every count of the autoscaler: its own, the registry writer's, and the sum of its monitors'. */
  get counters(): AutoscalerCounters {
    const monitors = [...this.monitors.values()].map((m) => m.counts);
    const sum = (key: keyof MonitorCounts): number => monitors.reduce((n, counts) => n + counts[key], 0);
    return {
      received: this.counted.received,
      faults: sum('faults'),
      faultsIgnored: sum('faultsIgnored'),
      faultsHeld: sum('faultsHeld'),
      faultsAbsent: sum('faultsAbsent'),
      heldVerified: sum('heldVerified'),
      heldConfirmed: sum('heldConfirmed'),
      staleEpochDropped: this.counted.staleEpochDropped,
      staleEpochFacts: this.counted.staleEpochFacts,
      orphansTerminated: this.counted.orphansTerminated,
      unknownCluster: this.counted.unknownCluster,
      spawned: sum('spawned'),
      spawnFailed: sum('spawnFailed'),
      terminated: sum('terminated'),
      pendingTimeouts: sum('pendingTimeouts'),
      publishErrors: this.counted.publishErrors,
      registryWrites: this.writer.counts.writes,
      registryErrors: this.writer.counts.errors,
    };
  }

  /** Loads the registry, adopts what still runs, applies max and min, starts the monitor interval. */
  async start(): Promise<void> {
    if (this.state !== 'idle') {
      const code = this.state === 'closed' ? 'FL_ERR_CLOSED' : 'FL_ERR_ALREADY_STARTED';
      throw new FaultlineError(code, `autoscaler cannot start when ${this.state}`, { context: { state: this.state } });
    }
    this.state = 'starting';
    const { registry } = this;
    const [rows, epoch, actions, stored, maintenance] = await Promise.all([
      registry.liveMembers(),
      registry.newestEpoch(),
      registry.recentActions(this.actionHistory),
      registry.clusterStates(),
      registry.maintenance(),
    ]);
    this.takeMaintenance(maintenance);
    this.newestEpoch = epoch;
    this.history = actions;
    this.signals.start(this.clock.now());
    for (const cluster of this.clusters) this.addMonitor(policyFrom(cluster));
    const adopted = await this.adopt(rows);
    await Promise.all(
      [...this.monitors.values()].map((m) =>
        m.start(adopted.get(m.policy.id) ?? [], this.storedState(m, stored), this.maintenanceOf(m.policy.id)),
      ),
    );
    this.ticker = this.clock.setInterval(() => void this.tickAll(), this.monitorIntervalMs);
    this.state = 'running';
    this.log.info('autoscaler started', {
      event: 'autoscaler.started',
      clusters: this.clusters.map((c) => c.id),
      adopted: [...adopted.values()].reduce((n, list) => n + list.length, 0),
      newestEpoch: this.newestEpoch ?? null,
    });
  }

  /** One envelope from the brokers (after the subscriber's dedupe). */
  async handle(envelope: Envelope): Promise<void> {
    if (this.state !== 'running') return;
    this.counted.received += 1;
    if (!(await this.admit(envelope))) return;
    this.observeSignals(envelope);
    const data = envelope.data as { clusterId?: string; memberId?: string };
    const monitor = data.clusterId === undefined ? undefined : this.monitors.get(data.clusterId);
    if (!monitor) {
      this.counted.unknownCluster += 1;
      const level = envelope.type === 'MemberFaultEvent' ? 'info' : 'debug';
      this.log[level]('event of an unmanaged cluster ignored', {
        event: 'autoscaler.unmanaged_cluster_ignored',
        type: envelope.type,
        clusterId: data.clusterId,
      });
      return;
    }
    switch (envelope.type) {
      case 'MemberFaultEvent':
        return monitor.fault(envelope);
      case 'InstanceStartedEvent':
        return monitor.instanceStarted(envelope.data.memberId);
      case 'InstanceActivatedEvent':
        return monitor.instanceActivated(envelope.data.memberId);
      case 'InstanceOutOfServiceEvent':
      case 'InstanceInServiceEvent':
        return monitor.instanceService(envelope.type, envelope.data);
      default: {
        const stat = parseStatEventType(envelope.type);
        if (!stat) return;
        if (stat.scope === 'member') return monitor.memberStats(stat, envelope.data as MemberStats);
        return monitor.clusterStat(stat, envelope.data as ClusterStat, envelope.epoch);
      }
    }
  }

  status(): AutoscalerStatus {
    return {
      state: this.state,
      newestEpoch: this.newestEpoch ?? null,
      counters: this.counters,
      clusters: [...this.monitors.values()].map((m) => m.status()),
      lastActions: this.history.map((a) => ({ ...a })),
      actionCounts: [...this.actionCounts.values()].map((a) => ({ ...a })),
      registryBacklog: this.writer.backlog,
    };
  }

  /** Stops deciding and lets what is under way finish. Members keep running: a restart adopts them. */
  readonly close = once(async () => {
    this.state = 'closed';
    this.clock.clearInterval(this.ticker);
    await Promise.all([...this.monitors.values()].map((m) => m.close()));
    await this.writer.flush();
    this.log.info('autoscaler stopped, members keep running', {
      event: 'autoscaler.stopped',
      members: [...this.monitors.values()].reduce((n, m) => n + m.status().members.length, 0),
    });
  });

  /** A member summary listing members: the detector sees that network partition (whichever cluster). */
  private observeSignals(envelope: Envelope): void {
    if (rootOf(envelope.type) !== TOPIC_ROOTS.summarizedHealthStats || envelope.type === 'MemberFaultEvent') return;
    const summary = envelope.data as { networkPartitionId?: unknown; members?: unknown };
    if (typeof summary.networkPartitionId !== 'string' || !Array.isArray(summary.members)) return;
    if (summary.members.length > 0) this.signals.listed(summary.networkPartitionId, this.clock.now());
  }

  /** A cluster's persisted state, if the registry has a valid one. */
  private storedState(monitor: ClusterMonitor, stored: Map<string, unknown>): MonitorState | undefined {
    const raw = stored.get(monitor.policy.id);
    if (raw === undefined) return undefined;
    const state = parseMonitorState(raw);
    if (typeof state !== 'string') return state;
    this.log.warn('stored cluster state refused, starting it fresh', {
      event: 'autoscaler.cluster_state_refused',
      clusterId: monitor.policy.id,
      why: state,
    });
    return undefined;
  }

  /**
   * Epoch fencing: the newest SP leader epoch seen (or read from the lease
   * table every tick) wins; an SP summary under an older one (a deposed
   * leader's outbox, a paused node) is dropped. Facts are not fenced, commands
   * are: a MemberFault has a deterministic id and states what happened to a
   * member, so one from an older epoch is still acted upon while its member
   * is live (the state decides, not the sender's rank). Only
   * `summarized-health-stats/` events (published by the SP role alone) carry
   * an epoch: decoding refuses one on any other root, and an envelope handed
   * in with one anyway never moves the fence.
   *
   * The fence follows the SP group's lease table, not only the highest epoch
   * ever seen: an epoch above the table's (a leader from before a database
   * restore, late from a broker) is checked against a fresh read and dropped
   * if the table is still below it, so a reset lease is not fenced for good.
   */
  private async admit(envelope: Envelope): Promise<boolean> {
    const { epoch } = envelope;
    if (epoch === undefined || rootOf(envelope.type) !== TOPIC_ROOTS.summarizedHealthStats) return true;
    if (this.leaseEpoch !== undefined && epoch > this.leaseEpoch) {
      const lease = await this.readLeaseEpoch();
      if (lease !== undefined && epoch > lease) {
        if (envelope.type === 'MemberFaultEvent') return true; // a fact, acted upon by state; the fence stays
        this.counted.staleEpochDropped += 1;
        this.log.warn('event of an SP epoch above the lease table dropped (a leader from before a database restore)', {
          event: 'autoscaler.epoch_ahead_dropped',
          type: envelope.type,
          id: envelope.id,
          epoch,
          leaseEpoch: lease,
        });
        return false;
      }
    }
    const newest = this.newestEpoch;
    if (newest !== undefined && epoch < newest && envelope.type === 'MemberFaultEvent') {
      this.counted.staleEpochFacts += 1;
      this.log.info('MemberFault of an older SP epoch: a fact, acted upon by state', {
        event: 'autoscaler.stale_epoch_fact',
        id: envelope.id,
        epoch,
        newestEpoch: newest,
      });
      return true;
    }
    if (newest !== undefined && epoch < newest) {
      this.counted.staleEpochDropped += 1;
      this.log.warn('event of a stale SP epoch dropped', {
        event: 'autoscaler.stale_epoch_dropped',
        type: envelope.type,
        id: envelope.id,
        epoch,
        newestEpoch: newest,
      });
      return false;
    }
    if (newest === undefined || epoch > newest) {
      this.newestEpoch = epoch;
      this.writer.epoch(epoch);
      this.log.info('newer SP epoch', { event: 'autoscaler.epoch_advanced', epoch, previous: newest ?? null });
    }
    return true;
  }

  private async tickAll(): Promise<void> {
    if (this.ticking) return; // a slow registry or Iaas: the next interval catches up
    this.ticking = true;
    try {
      this.writer.retry();
      await this.rereadFence();
      await this.rereadMaintenance();
      await this.reconcileInfrastructure();
      await this.tickMonitors();
    } finally {
      this.ticking = false;
    }
  }

  /**
   * The lease table's epoch moves the fence at once: up, so a deposed leader
   * is fenced before the new one speaks; down, when the database was restored
   * or failed over to a replica that lost the last acquires (the lease hands
   * out lower epochs again, and a fence kept above them would drop every SP
   * event for good).
   */
  private async rereadFence(): Promise<void> {
    const leader = await this.readLeaseEpoch();
    if (leader === undefined || leader === this.newestEpoch) return;
    const previous = this.newestEpoch;
    if (previous !== undefined && leader < previous) {
      this.log.warn('the SP lease epoch went back (database restored or failed over): the fence follows it', {
        event: 'autoscaler.epoch_reset',
        epoch: leader,
        previous,
      });
    } else {
      this.log.info('newer SP epoch', {
        event: 'autoscaler.epoch_advanced',
        epoch: leader,
        previous: previous ?? null,
      });
    }
    this.newestEpoch = leader;
    this.writer.epoch(leader);
  }

  /**
   * The maintenance rows, read whole at every tick (one query for every
   * cluster) and handed to each monitor before reconciliation and the rules,
   * so a row written or deleted in the registry (by `faultline maintenance`,
   * or by hand) takes effect at the next tick, on whichever node acts. When
   * the registry cannot be read, the last rows read stay in force: dropping
   * them would act on faults an operator said to expect (terminate the member
   * being worked on, respawn the cluster being drained), which cannot be
   * undone, while keeping them only delays what the rules would do, which the
   * first read after the outage catches up on; no spawn could start during
   * the outage anyway (its intent could not be recorded).
   */
  private async rereadMaintenance(): Promise<void> {
    let entries: MaintenanceEntry[];
    try {
      entries = await this.registry.maintenance();
    } catch (error) {
      // Not the registry's health: a missing table (an external database not yet migrated) must not stop spawns.
      if (!this.maintenanceUnread)
        this.log.warn('maintenance rows not read: the last ones read stay in force', {
          event: 'autoscaler.maintenance_unread',
          error,
        });
      this.maintenanceUnread = true;
      return;
    }
    if (this.maintenanceUnread)
      this.log.info('maintenance rows read again', { event: 'autoscaler.maintenance_read', rows: entries.length });
    this.maintenanceUnread = false;
    this.takeMaintenance(entries);
    await Promise.all([...this.monitors.values()].map((m) => m.maintenance(this.maintenanceOf(m.policy.id))));
  }

  private takeMaintenance(entries: readonly MaintenanceEntry[]): void {
    if (entries.length >= MAX_MAINTENANCE_ROWS)
      this.log.warn('more maintenance rows than are read: the rest are not in force', {
        event: 'autoscaler.maintenance_truncated',
        rows: entries.length,
      });
    this.maintenance = maintenanceByCluster(entries);
  }

  private maintenanceOf(clusterId: string): ClusterMaintenance {
    return this.maintenance.get(clusterId) ?? NO_MAINTENANCE;
  }

  /** The SP group's lease epoch, read now (one read shared by concurrent callers); undefined when unknown. */
  private readLeaseEpoch(): Promise<number | undefined> {
    this.leaseRead ??= this.registry
      .leaderEpoch()
      .then(
        (epoch) => {
          this.writer.observed(true);
          if (epoch !== undefined) this.leaseEpoch = epoch;
          return epoch;
        },
        (error: unknown) => {
          this.writer.observed(false);
          this.log.warn('registry unreachable: spawns wait, the fence stays', {
            event: 'autoscaler.registry_unreachable',
            error,
          });
          return undefined;
        },
      )
      .finally(() => {
        this.leaseRead = undefined;
      });
    return this.leaseRead;
  }

  /**
   * Registry against infrastructure: members whose instance is not running
   * are removed (each monitor, on its queue), and instances no member owns
   * (spawned by an earlier life that died before recording them) are
   * terminated once they have been seen for orphanGraceMs.
   */
  private async reconcileInfrastructure(): Promise<void> {
    const askedAt = this.clock.now();
    let instances: MemberInstance[];
    try {
      instances = await this.iaas.discover();
    } catch (error) {
      this.log.warn('infrastructure not listed: reconciliation skipped this tick', {
        event: 'autoscaler.discover_failed',
        error,
      });
      return;
    }
    const running = new Set(instances.map((i) => i.memberId));
    await Promise.all([...this.monitors.values()].map((m) => m.reconcile(running, askedAt)));
    const now = this.clock.now();
    for (const id of [...this.orphans.keys()]) if (!running.has(id)) this.orphans.delete(id);
    for (const instance of instances) {
      const { memberId } = instance;
      if ([...this.monitors.values()].some((m) => m.owns(memberId))) {
        this.orphans.delete(memberId);
        continue;
      }
      const since = this.orphans.get(memberId);
      if (since === undefined) {
        this.orphans.set(memberId, now);
        this.log.warn('instance no registry member owns: terminated after the grace period', {
          event: 'autoscaler.orphan_found',
          memberId,
          clusterId: instance.clusterId,
          graceMs: this.orphanGraceMs,
        });
        continue;
      }
      if (now - since < this.orphanGraceMs) continue;
      this.orphans.delete(memberId);
      this.counted.orphansTerminated += 1;
      this.sink.decide({
        action: 'OrphanTerminated',
        clusterId: instance.clusterId,
        memberId,
        reason: `instance running for ${now - since} ms that no registry member owns (spawned by an earlier life that did not record it)`,
      });
      this.iaas.terminate(memberId).then(
        (result) =>
          this.log.info('orphan terminated', {
            event: 'autoscaler.orphan_terminated',
            memberId,
            outcome: result.outcome,
          }),
        (error: unknown) =>
          this.log.warn('orphan terminate failed, retried when found again', {
            event: 'autoscaler.orphan_terminate_failed',
            memberId,
            error,
          }),
      );
    }
  }

  private async tickMonitors(): Promise<void> {
    await Promise.all(
      [...this.monitors.values()].map((m) =>
        m
          .tick()
          .catch((error: unknown) =>
            this.log.error('monitor tick failed', { event: 'autoscaler.tick_failed', clusterId: m.policy.id, error }),
          ),
      ),
    );
  }

  /**
   * Adoption after a restart: the registry's members that still run are
   * handed to their monitors in the state recorded; the rest are removed
   * (and the min rule replaces them). A cluster no longer configured gets a
   * retired monitor (min = max = 0) that terminates its members.
   */
  private async adopt(rows: readonly MemberRecord[]): Promise<Map<string, MemberContext[]>> {
    const withInstance = rows.filter((r): r is MemberRecord & { instance: MemberInstance } => r.instance !== null);
    const result = withInstance.length > 0 ? await this.iaas.adopt(withInstance.map((r) => r.instance)) : undefined;
    const adopted = new Map((result?.adopted ?? []).map((i) => [i.memberId, i]));
    const why = new Map<string, string>((result?.gone ?? []).map((g) => [g.memberId, g.reason]));
    for (const bad of result?.invalid ?? []) {
      const row = withInstance[bad.index];
      if (row) why.set(row.memberId, `its instance was refused: ${bad.reason}`);
    }
    // A row without an instance was being spawned when the last life stopped: the spawn may have
    // started it (intent before act), so what the infrastructure runs under its id is adopted too.
    if (rows.some((r) => r.instance === null)) {
      const found = await this.iaas.discover().catch((error: unknown) => {
        this.log.warn('infrastructure not listed at start: unrecorded spawns are left to reconciliation', {
          event: 'autoscaler.discover_failed',
          error,
        });
        return [] as MemberInstance[];
      });
      for (const instance of found) {
        const row = rows.find((r) => r.memberId === instance.memberId);
        if (row?.instance === null && !adopted.has(row.memberId)) adopted.set(row.memberId, instance);
      }
    }
    const now = this.clock.now();
    const out = new Map<string, MemberContext[]>();
    for (const row of rows) {
      const monitor =
        this.monitors.get(row.clusterId) ??
        this.addMonitor(
          retiredPolicy(row.clusterId, row.cartridgeType, {
            id: row.partitionId,
            networkPartitionId: row.networkPartitionId,
          }),
        );
      let instance = adopted.get(row.memberId);
      // Gone while in maintenance: kept with the instance recorded, so reconciliation holds it as it would
      // have had the autoscaler been there; it is verified, and replaced, once the maintenance ends.
      if (!instance && row.instance && this.inMaintenance(row) && row.state !== 'Terminating') {
        instance = row.instance;
        this.log.info('member gone while the autoscaler was away kept: it is in maintenance', {
          event: 'autoscaler.member_kept_in_maintenance',
          memberId: row.memberId,
          clusterId: row.clusterId,
        });
      }
      if (instance) {
        const list = out.get(monitor.policy.id) ?? [];
        const context = fromRecord(row, instance, now);
        list.push(context);
        if (row.instance === null) void this.sink.persist(context);
        out.set(monitor.policy.id, list);
        this.log.info('member resumed', {
          event: 'autoscaler.member_resumed',
          memberId: row.memberId,
          clusterId: row.clusterId,
          state: row.state,
        });
        continue;
      }
      const reason = `gone while the autoscaler was away: ${
        row.instance === null
          ? 'its spawn was under way when the autoscaler stopped'
          : (why.get(row.memberId) ?? 'not adopted')
      }`;
      const gone: MemberContext = {
        ...identityOf(row),
        createdAt: row.createdAt,
        instance: row.instance ?? undefined,
        state: 'Terminated',
        reason,
        terminatedAt: now,
        activatedAt: row.activatedAt ?? undefined,
      };
      this.sink.persist(gone);
      this.sink.decide({ action: 'MemberRemoved', clusterId: row.clusterId, memberId: row.memberId, reason });
      if (row.instance) this.sink.announce('MemberTerminatedEvent', gone, reason);
    }
    return out;
  }

  /** Whether a member's row is in maintenance (its own, or its cluster's) as last read. */
  private inMaintenance(row: MemberRecord): boolean {
    const cluster = this.maintenanceOf(row.clusterId);
    return cluster.cluster !== undefined || cluster.members.has(row.memberId);
  }

  private addMonitor(policy: ClusterPolicy): ClusterMonitor {
    const monitor = new ClusterMonitor({ ...this.monitorSettings, policy });
    this.monitors.set(policy.id, monitor);
    return monitor;
  }

  private send(envelope: Envelope): void {
    const { type, id } = envelope;
    this.publish(envelope).catch((error: unknown) => {
      this.counted.publishErrors += 1;
      this.log.error('publish failed', { event: 'autoscaler.publish_failed', type, id, error });
    });
  }

  /** Each decision: one log record, one registry action, one message where the protocol has one. */
  private readonly sink: MonitorSink = {
    decide: (decision) => {
      const at = this.clock.now();
      const record = toActionRecord(decision, at);
      const { action, clusterId, memberId, reason, epoch } = record;
      const storm = decision.storm
        ? { faultedMemberIds: decision.storm.faultedMemberIds, clusterSize: decision.storm.clusterSize }
        : {};
      this.log.info(action, { event: 'autoscaler.action', action, memberId, clusterId, reason, epoch, ...storm });
      this.history.push(record);
      if (this.history.length > this.actionHistory) this.history.shift();
      // One entry per action type and configured cluster: bounded by the configuration.
      const key = `${action}\u0000${clusterId}`;
      const counted = this.actionCounts.get(key);
      if (counted) counted.count += 1;
      else this.actionCounts.set(key, { action, clusterId, count: 1 });
      this.writer.action(record);
      const envelope = decisionEnvelope(decision, at);
      if (envelope) this.send(envelope);
    },
    persist: (member) => this.writer.member(toRecord(member)),
    announce: (type, member, reason) => this.send(topologyEnvelope(type, member, this.clock.now(), reason)),
  };
}
