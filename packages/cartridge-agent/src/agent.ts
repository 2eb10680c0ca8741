import { closeAll, type HealthState, once, type ProbeKind, serviceRegistry, type TimerHandle } from '@faultline/core';
import { createPublisher, type Publisher } from '@faultline/messaging';
import { createEnvelope, memberBrokerAccount } from '@faultline/protocol';
import { type AgentOptions, type ResolvedProbe, resolveAgentOptions } from './agent-options.js';
import { BatchSender, type BatchSenderCounters } from './batch-sender.js';
import { type AgentStatus, agentMetrics } from './metrics.js';
import { type AgentMetricsServer, serveAgentMetrics } from './metrics-server.js';
import { type ProbeCounters, ProbeRunner, type ProbeState } from './probe-runner.js';
import { StatCollector, type StatCollectorCounters } from './stats.js';

export type AgentState = 'idle' | 'starting' | 'running' | 'closed';

export interface AgentCounters extends BatchSenderCounters, StatCollectorCounters {
  /** Collections skipped because the previous one was still running (a slow workload). */
  skippedTicks: number;
  /** Starts whose health and metrics port could not listen (the agent runs on without one). */
  metricsListenFailures: number;
  /** Writes or removals of its metrics port file that failed. */
  portFileFailures: number;
  /** Requests to its health and metrics port refused for their method. */
  refusedRequests: number;
  /** Checks of each probe, failed checks (timeouts included) and timed-out checks (README "Probes"). */
  livenessChecks: number;
  livenessFailures: number;
  readinessChecks: number;
  readinessFailures: number;
  startupChecks: number;
  startupFailures: number;
  probeTimeouts: number;
  /** Times liveness failed past its threshold: the workload reported down (ports_not_open). */
  livenessDown: number;
  /** Times readiness failed past its threshold: the member taken out of service (InstanceOutOfServiceEvent). */
  outOfService: number;
}

/** Where each probe stands: undefined for a readiness probe that is not configured. */
export type AgentProbes = Readonly<
  Record<ProbeKind, { state: ProbeState; counters: Readonly<ProbeCounters> } | undefined>
>;

export interface Agent {
  readonly agentId: string;
  readonly state: AgentState;
  /** Whether InstanceActivatedEvent was published (the startup probe passed). */
  readonly activated: boolean;
  /** Whether liveness has failed past its threshold (and not passed again): each round reports ports_not_open. */
  readonly down: boolean;
  /** Whether the member is in service: false while its readiness probe fails past its threshold. */
  readonly inService: boolean;
  readonly probes: AgentProbes;
  /** Unacknowledged batches held for resending. */
  readonly queued: number;
  readonly counters: Readonly<AgentCounters>;
  /** The port of its health routes and `/metrics` once it serves them; undefined otherwise (off, not yet, failed). */
  readonly metricsPort: number | undefined;
  /**
   * Publishes InstanceStartedEvent, starts the stat loop and the startup probe
   * (its pass activates: InstanceActivatedEvent, then liveness and readiness
   * run), then
   * serves its health routes and `/metrics` and records their port in its
   * port file (unless `metrics` is false; a port that cannot listen is logged
   * and counted, never a failed start).
   */
  start(): Promise<void>;
  /**
   * Removes its port file, stops serving, stops the loops and closes the
   * connections; the outbox keeps unsent events for the next life. Idempotent.
   */
  close(): Promise<void>;
}

/** A probe in one line of the log: `http GET /stats → 200, every 15000 ms, 2000 ms, 3 failures`. */
function describeProbe(probe: ResolvedProbe): string {
  const config = probe.config;
  const what =
    config === undefined
      ? 'a given check'
      : config.type === 'http'
        ? `http GET ${config.path} → ${config.expectStatus}${config.port === undefined ? '' : ` on port ${config.port}`}`
        : config.type === 'tcp'
          ? `tcp${config.port === undefined ? '' : ` port ${config.port}`}`
          : `exec ${config.command[0]}`;
  const failures = Number.isFinite(probe.failureThreshold) ? `, ${probe.failureThreshold} failures` : '';
  return `${what}, every ${probe.periodMs} ms, timeout ${probe.timeoutMs} ms${failures}`;
}

/** The event-loop lag of an agent is sampled every second, not prom-client's 10 ms (see serviceRegistry). */
const EVENT_LOOP_SAMPLE_MS = 1_000;

/** Pause after a whole round of failed SP endpoints, doubling per round, capped at the stat interval (and 10 s). */
const RETRY_DELAY_MS = 1_000;
const MAX_RETRY_DELAY_MS = 10_000;
/**
 * The cartridge agent (Stratos): reports its member's health every interval
 * to the SP over Thrift, and its lifecycle (`InstanceStartedEvent`,
 * `InstanceActivatedEvent`, `InstanceOutOfServiceEvent`,
 * `InstanceInServiceEvent`) on the broker pair through the resilient
 * publisher. Its probes (README "Probes"): startup gates activation; liveness,
 * after activation, reports the workload down (ports_not_open) only past its
 * failure threshold; readiness takes the member out of service and back,
 * never down. Every timer runs on the injected Clock.
 */
export function createAgent(input: AgentOptions): Agent {
  const options = resolveAgentOptions(input);
  const { member, agentId, clock, transport, probe, statIntervalMs } = options;
  /** This agent life's start: the `life` of its readiness events, which order them across lives. */
  const life = clock.now();
  const log = options.logger.child({ memberId: member.memberId });
  const source = `agent-${member.memberId}`;
  const sender = new BatchSender({
    agentId,
    credential: options.credential,
    endpoints: options.spEndpoints,
    transport,
    maxUnackedBatches: options.maxUnackedBatches,
    callTimeoutMs: options.callTimeoutMs,
    // An SP pair that comes back must hear from this agent within about one stat interval: well inside
    // the new active's grace after a takeover (one fault timeout, several stat intervals), so no
    // healthy member is faulted because its agent was still backing off.
    retryDelayMs: Math.min(RETRY_DELAY_MS, statIntervalMs),
    maxRetryDelayMs: Math.min(MAX_RETRY_DELAY_MS, Math.max(RETRY_DELAY_MS, statIntervalMs)),
    clock,
    logger: log,
  });
  let down = false;
  let inService = true;
  /** The last readiness event's `seq` in this life. */
  let serviceSeq = 0;
  const probeCounters = { livenessDown: 0, outOfService: 0 };
  const collector = new StatCollector(member, options.system, probe, clock, log, () => down);
  const publisher: Publisher = createPublisher({
    brokers: options.brokers,
    // Its own member's account: the brokers let it publish only instance/status/<memberId>/….
    credentials: memberBrokerAccount(member.memberId, options.credential),
    clientId: source,
    outboxFile: options.outboxFile,
    republishIntervalMs: options.republishIntervalMs,
    awaitSubscribers: options.awaitSubscribers,
    clock,
    logger: log,
    connector: options.connector,
  });
  let state: AgentState = 'idle';
  let activated = false;
  let collecting = false;
  let skippedTicks = 0;
  const metricsCounters = { metricsListenFailures: 0, portFileFailures: 0, refusedRequests: 0 };
  let statTimer: TimerHandle | undefined;
  let metricsServer: AgentMetricsServer | undefined;
  let metricsStarting: Promise<void> | undefined;

  const runner = (resolved: ResolvedProbe, onChange: (state: ProbeState, reason: string | undefined) => void) =>
    new ProbeRunner({
      ...resolved,
      initial: resolved.kind === 'startup' ? 'failing' : 'passing',
      clock,
      logger: log,
      onChange: (changed, reason) => {
        try {
          onChange(changed, reason);
        } catch (error) {
          log.error('probe change not handled', { event: 'agent.probe_change_failed', probe: resolved.kind, error });
        }
      },
    });

  const onLiveness = (changed: ProbeState, reason: string | undefined) => {
    down = changed === 'failing';
    if (!down) {
      log.info('liveness passes again: the workload is no longer reported down', {
        event: 'agent.liveness_passing',
        successThreshold: options.probes.liveness.successThreshold,
      });
      return;
    }
    probeCounters.livenessDown += 1;
    log.warn('liveness failed past its threshold: reporting the workload down (ports_not_open)', {
      event: 'agent.liveness_failed',
      failureThreshold: options.probes.liveness.failureThreshold,
      reason,
    });
    // At once, not at the next round: the SP faults the member on it (each round repeats it while down).
    if (state === 'running') sender.enqueue(collector.downReport());
  };

  const publishService = async (ready: boolean, reason: string | undefined) => {
    serviceSeq += 1;
    const type = ready ? 'InstanceInServiceEvent' : 'InstanceOutOfServiceEvent';
    const data = {
      ...member,
      life,
      seq: serviceSeq,
      ...(reason === undefined ? {} : { reason: reason.slice(0, 1_024) }),
    };
    // One id per change: a republish of it is deduped, the next change is a new fact.
    const envelope = createEnvelope(type, data, { source, id: `${type}:${agentId}:${serviceSeq}`, time: clock.now() });
    await publisher.publish(envelope);
    log.info('instance status published', { event: 'agent.status_published', type, id: envelope.id });
  };

  const onReadiness = (changed: ProbeState, reason: string | undefined) => {
    inService = changed === 'passing';
    if (inService) {
      log.info('readiness passes again: the member is back in service', { event: 'agent.in_service' });
    } else {
      probeCounters.outOfService += 1;
      log.warn('readiness failed past its threshold: the member is out of service (not down)', {
        event: 'agent.out_of_service',
        failureThreshold: options.probes.readiness?.failureThreshold,
        reason,
      });
    }
    void publishService(inService, reason).catch((error: unknown) =>
      log.error('instance status not published', { event: 'agent.status_publish_failed', error }),
    );
  };

  const liveness = runner(options.probes.liveness, onLiveness);
  const readiness = options.probes.readiness && runner(options.probes.readiness, onReadiness);
  const startup = runner(options.probes.startup, (changed) => {
    if (changed === 'passing') activate();
  });
  const runners = [startup, liveness, ...(readiness ? [readiness] : [])];

  const counters = (): AgentCounters => ({
    ...sender.counters,
    ...collector.counters,
    skippedTicks,
    ...metricsCounters,
    livenessChecks: liveness.counters.checks,
    livenessFailures: liveness.counters.failures,
    readinessChecks: readiness?.counters.checks ?? 0,
    readinessFailures: readiness?.counters.failures ?? 0,
    startupChecks: startup.counters.checks,
    startupFailures: startup.counters.failures,
    probeTimeouts: runners.reduce((sum, r) => sum + r.counters.timeouts, 0),
    ...probeCounters,
  });

  const probes = (): AgentProbes => ({
    liveness: { state: liveness.state, counters: { ...liveness.counters } },
    readiness: readiness && { state: readiness.state, counters: { ...readiness.counters } },
    startup: { state: startup.state, counters: { ...startup.counters } },
  });

  const status = (): AgentStatus => ({
    counters: counters(),
    queued: sender.queued,
    activated,
    down,
    inService,
    probes: probes(),
    sender: sender.state,
    endpoints: sender.endpointNames,
    currentEndpoint: sender.currentEndpoint,
    connections: transport.connections?.(),
  });

  const health = (): HealthState => ({
    body: {
      member: member.memberId,
      cluster: member.clusterId,
      agentId: sender.currentAgentId,
      state,
      activated,
      // README "Probes": the workload reported down (liveness), the member out of service (readiness).
      down,
      inService,
      queued: sender.queued,
    },
    ready: state === 'running',
    reason:
      state !== 'running' ? state : sender.state === 'backoff' ? 'running; no SP endpoint takes batches' : 'running',
  });

  /** Serves the health routes and /metrics and records the port. Never rejects: a failure is logged and counted. */
  const serveMetrics = async () => {
    const register = serviceRegistry({ eventLoopSampleMs: EVENT_LOOP_SAMPLE_MS });
    agentMetrics(register, status, publisher);
    try {
      const served = await serveAgentMetrics({
        host: options.metricsHost,
        port: options.metricsPort,
        portFile: options.metricsPortFile,
        metrics: register,
        metricsMaxAgeMs: options.metricsMaxAgeMs,
        state: health,
        clock,
        logger: log,
        onPortFileFailed: () => {
          metricsCounters.portFileFailures += 1;
        },
        onRefused: () => {
          metricsCounters.refusedRequests += 1;
        },
      });
      // Closed while it started listening: it must not outlive the agent.
      if (state === 'closed') await served.close();
      else metricsServer = served;
    } catch (error) {
      metricsCounters.metricsListenFailures += 1;
      log.error('health and metrics port not served: the agent runs on without it', {
        event: 'agent.metrics_unavailable',
        host: options.metricsHost,
        port: options.metricsPort,
        error,
      });
    }
  };

  const publish = async (type: 'InstanceStartedEvent' | 'InstanceActivatedEvent') => {
    // Deterministic per agent life: a republish of the same fact carries the same id, so subscribers dedupe it.
    const envelope = createEnvelope(type, { ...member }, { source, id: `${type}:${agentId}`, time: clock.now() });
    await publisher.publish(envelope);
    log.info('instance status published', { event: 'agent.status_published', type, id: envelope.id });
  };

  const tick = async () => {
    if (state !== 'running') return;
    if (collecting) {
      skippedTicks += 1;
      log.debug('previous collection still running, tick skipped', { event: 'agent.tick_skipped' });
      return;
    }
    collecting = true;
    try {
      const stats = await collector.collect();
      if (state === 'running') sender.enqueue(stats);
    } finally {
      collecting = false;
    }
  };

  /** The startup probe passed: activation, then liveness and readiness run (they judge a started workload only). */
  const checkActivation = async () => {
    if (state !== 'running' || activated) return;
    activated = true;
    startup.stop();
    liveness.start();
    readiness?.start();
    log.info('startup probe passed: activating', {
      event: 'agent.startup_passed',
      startupChecks: startup.counters.checks,
      liveness: describeProbe(options.probes.liveness),
      readiness: options.probes.readiness ? describeProbe(options.probes.readiness) : 'none',
    });
    await publish('InstanceActivatedEvent');
  };

  const collect = () =>
    void tick().catch((error: unknown) =>
      log.error('stat collection failed', { event: 'agent.stat_collection_failed', error }),
    );
  const activate = () =>
    void checkActivation().catch((error: unknown) =>
      log.error('activation failed', { event: 'agent.activation_failed', error }),
    );

  return {
    agentId,
    get state() {
      return state;
    },
    get activated() {
      return activated;
    },
    get down() {
      return down;
    },
    get inService() {
      return inService;
    },
    get probes() {
      return probes();
    },
    get queued() {
      return sender.queued;
    },
    get counters() {
      return counters();
    },
    get metricsPort() {
      return metricsServer?.port;
    },
    start: async () => {
      if (state !== 'idle') return;
      state = 'starting';
      await publisher.start();
      await publish('InstanceStartedEvent');
      if (state !== 'starting') return;
      state = 'running';
      log.info('agent started', {
        event: 'agent.started',
        agentId,
        statIntervalMs,
        spEndpoints: options.spEndpoints.length,
      });
      // First round at once, so the SP sees a new member without waiting a whole interval.
      statTimer = clock.setInterval(collect, statIntervalMs);
      collect();
      startup.start();
      if (options.metrics) {
        metricsStarting = serveMetrics();
        await metricsStarting;
      }
    },
    close: once(async () => {
      state = 'closed';
      clock.clearInterval(statTimer);
      for (const r of runners) r.stop();
      sender.close();
      // First, so the driver's next sync finds no port to name; a start still listening closes it itself.
      await metricsStarting;
      await metricsServer?.close();
      log.info('agent stopped', {
        event: 'agent.stopped',
        agentId,
        activated,
        queued: sender.queued,
        ...counters(),
      });
      await closeAll([{ close: async () => transport.close() }, publisher], log);
    }),
  };
}
