import { closeAll, type HealthState, once, serviceRegistry, type TimerHandle } from '@faultline/core';
import { createPublisher, type Publisher } from '@faultline/messaging';
import { createEnvelope, memberBrokerAccount } from '@faultline/protocol';
import { type AgentOptions, resolveAgentOptions } from './agent-options.js';
import { BatchSender, type BatchSenderCounters } from './batch-sender.js';
import { type AgentStatus, agentMetrics } from './metrics.js';
import { type AgentMetricsServer, serveAgentMetrics } from './metrics-server.js';
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
}

export interface Agent {
  readonly agentId: string;
  readonly state: AgentState;
  /** Whether InstanceActivatedEvent was published (the workload's health check passed). */
  readonly activated: boolean;
  /** Unacknowledged batches held for resending. */
  readonly queued: number;
  readonly counters: Readonly<AgentCounters>;
  /** The port of its health routes and `/metrics` once it serves them; undefined otherwise (off, not yet, failed). */
  readonly metricsPort: number | undefined;
  /**
   * Publishes InstanceStartedEvent, starts the stat and activation loops, then
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

/** The event-loop lag of an agent is sampled every second, not prom-client's 10 ms (see serviceRegistry). */
const EVENT_LOOP_SAMPLE_MS = 1_000;

/** Pause after a whole round of failed SP endpoints, doubling per round, capped at the stat interval (and 10 s). */
const RETRY_DELAY_MS = 1_000;
const MAX_RETRY_DELAY_MS = 10_000;
/**
 * The cartridge agent (Stratos): reports its member's health every interval
 * to the SP over Thrift, and its lifecycle (`InstanceStartedEvent`,
 * `InstanceActivatedEvent`) on the broker pair through the resilient
 * publisher. Every timer runs on the injected Clock.
 */
export function createAgent(input: AgentOptions): Agent {
  const options = resolveAgentOptions(input);
  const { member, agentId, clock, transport, probe, statIntervalMs, activationPollMs } = options;
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
  const collector = new StatCollector(member, options.system, probe, clock, log);
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
  let activationTimer: TimerHandle | undefined;
  let metricsServer: AgentMetricsServer | undefined;
  let metricsStarting: Promise<void> | undefined;

  const counters = (): AgentCounters => ({
    ...sender.counters,
    ...collector.counters,
    skippedTicks,
    ...metricsCounters,
  });

  const status = (): AgentStatus => ({
    counters: counters(),
    queued: sender.queued,
    activated,
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

  const checkActivation = async () => {
    if (state !== 'running' || activated) return;
    if (!(await probe.healthy()) || state !== 'running' || activated) return;
    activated = true;
    collector.workloadAnswered();
    clock.clearInterval(activationTimer);
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
      activationTimer = clock.setInterval(activate, activationPollMs);
      collect();
      activate();
      if (options.metrics) {
        metricsStarting = serveMetrics();
        await metricsStarting;
      }
    },
    close: once(async () => {
      state = 'closed';
      clock.clearInterval(statTimer);
      clock.clearInterval(activationTimer);
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
