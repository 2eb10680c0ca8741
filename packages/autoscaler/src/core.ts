import { randomBytes } from 'node:crypto';
import type { AgentSettings, Iaas, MemberIdentity, MemberInstance, MemberSpec } from '@faultline/cloud-controller';
import {
  type Clock,
  type ClusterConfig,
  DEFAULTS,
  type Logger,
  nullLogger,
  once,
  systemClock,
  type TimerHandle,
} from '@faultline/core';
import type { ClusterStat, Envelope, MemberStats, Metric, StatKind } from '@faultline/protocol';
import { ClusterMonitor, type MonitorSink } from './cluster-monitor.js';
import { type ActionRecord, decisionEnvelope, toActionRecord, topologyEnvelope } from './decisions.js';
import { fromRecord, identityOf, type MemberContext, type MemberRecord, toRecord } from './member.js';
import { type ClusterPolicy, policyFrom, retiredPolicy } from './policy.js';
import type { Registry } from './registry.js';
import { RegistryWriter } from './registry-writer.js';
import { type AutoscalerCounters, type AutoscalerStatus, newCounters } from './status.js';

export interface AutoscalerCoreOptions {
  /** The deployment policies: `clusters[]` of the configuration. */
  clusters: readonly ClusterConfig[];
  iaas: Iaas;
  registry: Registry;
  /** Sends an envelope (the durable publisher); resolves once it is safe. */
  publish: (envelope: Envelope) => Promise<void>;
  /** What every member's cartridge agent gets: SP endpoints, brokers, credentials, intervals. */
  agent: AgentSettings;
  /** @default DEFAULTS.monitorIntervalMs (15 000) */
  monitorIntervalMs?: number;
  /** @default DEFAULTS.pendingTimeoutMs (900 000, Stratos) */
  pendingTimeoutMs?: number;
  /** @default DEFAULTS.backoffInitialMs (10 000) */
  backoffInitialMs?: number;
  /** @default DEFAULTS.backoffMaxMs (300 000) */
  backoffMaxMs?: number;
  /** @default 3 */
  scaleDownConsecutive?: number;
  /** Fault-storm window: the CEP's fault timeout. @default DEFAULTS.faultTimeoutMs (60 000) */
  faultStormWindowMs?: number;
  /** Grace between soft and forced stop of a member. @default the driver's */
  terminateGraceMs?: number;
  /** Actions kept for status(). @default 50 */
  actionHistory?: number;
  /** @default `<clusterId>-<6 random base-36 characters>` */
  newMemberId?: (clusterId: string) => string;
  /** @default systemClock */
  clock?: Clock;
  /** @default nullLogger */
  logger?: Logger;
}

/** `php-k3x9q2`: short, readable, and unique across restarts without a counter to keep. */
export function randomMemberId(clusterId: string): string {
  const bytes = randomBytes(6);
  const suffix = [...bytes].map((b) => (b % 36).toString(36)).join('');
  return `${clusterId}-${suffix}`;
}

const STAT_TYPE =
  /^(Member)?(Average|GradientOf|SecondDerivativeOf)(LoadAverage|MemoryConsumption|RequestsInFlight)Event$/;

/** `MemberGradientOfLoadAverageEvent` → { member: true, kind: 'GradientOf', metric: 'LoadAverage' }. */
export function parseStatType(type: string): { member: boolean; kind: StatKind; metric: Metric } | undefined {
  const match = STAT_TYPE.exec(type);
  if (!match) return undefined;
  return { member: match[1] !== undefined, kind: match[2] as StatKind, metric: match[3] as Metric };
}

/**
 * The autoscaler without its broker connections: cluster monitors fed by
 * `handle(envelope)`, the epoch fence, adoption from the registry, the sink
 * that turns each decision into a log record, a registry row and a message.
 * `createAutoscaler()` adds the subscriber and the publisher.
 */
export class AutoscalerCore {
  readonly counters: AutoscalerCounters = newCounters();
  private readonly monitors = new Map<string, ClusterMonitor>();
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly writer: RegistryWriter;
  private history: ActionRecord[] = [];
  private newestEpoch: number | undefined;
  private ticker: TimerHandle | undefined;
  private state: AutoscalerStatus['state'] = 'idle';
  private readonly o: Required<Omit<AutoscalerCoreOptions, 'terminateGraceMs'>> &
    Pick<AutoscalerCoreOptions, 'terminateGraceMs'>;

  constructor(options: AutoscalerCoreOptions) {
    this.o = {
      ...options,
      monitorIntervalMs: options.monitorIntervalMs ?? DEFAULTS.monitorIntervalMs,
      pendingTimeoutMs: options.pendingTimeoutMs ?? DEFAULTS.pendingTimeoutMs,
      backoffInitialMs: options.backoffInitialMs ?? DEFAULTS.backoffInitialMs,
      backoffMaxMs: options.backoffMaxMs ?? DEFAULTS.backoffMaxMs,
      scaleDownConsecutive: options.scaleDownConsecutive ?? 3,
      faultStormWindowMs: options.faultStormWindowMs ?? DEFAULTS.faultTimeoutMs,
      actionHistory: options.actionHistory ?? 50,
      newMemberId: options.newMemberId ?? randomMemberId,
      clock: options.clock ?? systemClock,
      logger: options.logger ?? nullLogger,
    };
    this.clock = this.o.clock;
    this.log = this.o.logger;
    this.writer = new RegistryWriter(this.o.registry, this.log.child({ component: 'registry' }), this.counters);
  }

  /** Loads the registry, adopts what still runs, applies max and min, starts the monitor interval. */
  async start(): Promise<void> {
    if (this.state !== 'idle') throw new Error(`autoscaler cannot start when ${this.state}`);
    this.state = 'starting';
    const { registry } = this.o;
    const [rows, epoch, actions] = await Promise.all([
      registry.liveMembers(),
      registry.newestEpoch(),
      registry.recentActions(this.o.actionHistory),
    ]);
    this.newestEpoch = epoch;
    this.history = actions;
    for (const cluster of this.o.clusters) this.addMonitor(policyFrom(cluster));
    const adopted = await this.adopt(rows);
    await Promise.all([...this.monitors.values()].map((m) => m.start(adopted.get(m.policy.id) ?? [])));
    this.ticker = this.clock.setInterval(() => void this.tickAll(), this.o.monitorIntervalMs);
    this.state = 'running';
    this.log.info('autoscaler started', {
      clusters: this.o.clusters.map((c) => c.id),
      adopted: [...adopted.values()].reduce((n, list) => n + list.length, 0),
      newestEpoch: this.newestEpoch ?? null,
    });
  }

  /** One envelope from the brokers (after the subscriber's dedupe). */
  async handle(envelope: Envelope): Promise<void> {
    if (this.state !== 'running') return;
    this.counters.received += 1;
    if (!this.admit(envelope)) return;
    const data = envelope.data as { clusterId?: string; memberId?: string };
    const monitor = data.clusterId === undefined ? undefined : this.monitors.get(data.clusterId);
    if (!monitor) {
      this.counters.unknownCluster += 1;
      const level = envelope.type === 'MemberFaultEvent' ? 'info' : 'debug';
      this.log[level]('event of an unmanaged cluster ignored', { type: envelope.type, clusterId: data.clusterId });
      return;
    }
    switch (envelope.type) {
      case 'MemberFaultEvent':
        return monitor.fault(envelope);
      case 'InstanceStartedEvent':
        return monitor.instanceStarted(envelope.data.memberId);
      case 'InstanceActivatedEvent':
        return monitor.instanceActivated(envelope.data.memberId);
      default: {
        const stat = parseStatType(envelope.type);
        if (!stat) return;
        if (stat.member) return monitor.memberStats(stat.kind, stat.metric, envelope.data as MemberStats);
        return monitor.clusterStat(stat.kind, stat.metric, envelope.data as ClusterStat, envelope.epoch);
      }
    }
  }

  status(): AutoscalerStatus {
    return {
      state: this.state,
      newestEpoch: this.newestEpoch ?? null,
      counters: { ...this.counters },
      clusters: [...this.monitors.values()].map((m) => m.status()),
      lastActions: this.history.map((a) => ({ ...a })),
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
      members: [...this.monitors.values()].reduce((n, m) => n + m.status().members.length, 0),
    });
  });

  /**
   * Epoch fencing: the newest SP leader epoch seen wins; an SP event under an
   * older one (a deposed leader's outbox, a paused node) is dropped. Events
   * without an epoch (agents' instance status) are not SP events.
   */
  private admit(envelope: Envelope): boolean {
    const { epoch } = envelope;
    if (epoch === undefined) return true;
    const newest = this.newestEpoch;
    if (newest !== undefined && epoch < newest) {
      this.counters.staleEpochDropped += 1;
      this.log.warn('event of a stale SP epoch dropped', {
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
      this.log.info('newer SP epoch', { epoch, previous: newest ?? null });
    }
    return true;
  }

  private async tickAll(): Promise<void> {
    this.writer.retry();
    await Promise.all(
      [...this.monitors.values()].map((m) =>
        m.tick().catch((error: unknown) => this.log.error('monitor tick failed', { clusterId: m.policy.id, error })),
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
    const result = withInstance.length > 0 ? await this.o.iaas.adopt(withInstance.map((r) => r.instance)) : undefined;
    const adopted = new Map((result?.adopted ?? []).map((i) => [i.memberId, i]));
    const why = new Map<string, string>((result?.gone ?? []).map((g) => [g.memberId, g.reason]));
    for (const bad of result?.invalid ?? []) {
      const row = withInstance[bad.index];
      if (row) why.set(row.memberId, `its instance was refused: ${bad.reason}`);
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
      const instance = adopted.get(row.memberId);
      if (instance) {
        const list = out.get(monitor.policy.id) ?? [];
        list.push(fromRecord(row, instance, now));
        out.set(monitor.policy.id, list);
        this.log.info('member resumed', { memberId: row.memberId, clusterId: row.clusterId, state: row.state });
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

  private addMonitor(policy: ClusterPolicy): ClusterMonitor {
    const { agent } = this.o;
    const monitor = new ClusterMonitor({
      policy,
      iaas: this.o.iaas,
      sink: this.sink,
      clock: this.clock,
      logger: this.log,
      counters: this.counters,
      spec: (identity: MemberIdentity): MemberSpec => ({
        ...identity,
        agent,
        ...(policy.workloadLatencyMs === undefined ? {} : { workload: { latencyMs: policy.workloadLatencyMs } }),
      }),
      newMemberId: this.o.newMemberId,
      pendingTimeoutMs: this.o.pendingTimeoutMs,
      backoffInitialMs: this.o.backoffInitialMs,
      backoffMaxMs: this.o.backoffMaxMs,
      scaleDownConsecutive: this.o.scaleDownConsecutive,
      faultStormWindowMs: this.o.faultStormWindowMs,
      terminateGraceMs: this.o.terminateGraceMs,
    });
    this.monitors.set(policy.id, monitor);
    return monitor;
  }

  private send(envelope: Envelope): void {
    this.o.publish(envelope).catch((error: unknown) => {
      this.counters.publishErrors += 1;
      this.log.error('publish failed', { type: envelope.type, id: envelope.id, error });
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
      this.log.info(action, { action, memberId, clusterId, reason, epoch, ...storm });
      this.history.push(record);
      if (this.history.length > this.o.actionHistory) this.history.shift();
      this.writer.action(record);
      const envelope = decisionEnvelope(decision, at);
      if (envelope) this.send(envelope);
    },
    persist: (member) => this.writer.member(toRecord(member)),
    announce: (type, member, reason) => this.send(topologyEnvelope(type, member, this.clock.now(), reason)),
  };
}
