import {
  type Clock,
  closeAll,
  DEFAULTS,
  type Logger,
  nullLogger,
  once,
  systemClock,
  type TimerHandle,
} from '@faultline/core';
import {
  type BrokerEndpoint,
  type Connector,
  type Credentials,
  createPublisher,
  mqttConnector,
  type Publisher,
} from '@faultline/messaging';
import { createEnvelope, type InstanceStatus } from '@faultline/protocol';
import { BatchSender, type BatchSenderCounters, type BatchTransport, type SpEndpoint } from './batch-sender.js';
import {
  osSystemStats,
  StatCollector,
  type StatCollectorCounters,
  type SystemStats,
  type WorkloadProbe,
} from './stats.js';
import { thriftTransport } from './thrift-transport.js';
import { httpWorkloadProbe } from './workload-probe.js';

export interface AgentOptions {
  /** The member this agent reports for. */
  member: InstanceStatus;
  /** SP Thrift endpoints; only the active accepts. */
  spEndpoints: readonly SpEndpoint[];
  /** The broker pair for `instance/status/*`. */
  brokers: readonly BrokerEndpoint[];
  /** Broker account of role `agent`. */
  credentials: Credentials;
  /** Durable outbox of the status events. */
  outboxFile: string;
  /** Where the member's workload listens. */
  workload: { host: string; port: number };
  /** @default DEFAULTS.statIntervalMs (15 000, Stratos agent) */
  statIntervalMs?: number;
  /** @default 1_000 (config `agent.maxUnackedBatches`) */
  maxUnackedBatches?: number;
  /** Thrift publish deadline. @default 5_000 */
  callTimeoutMs?: number;
  /**
   * Workload probe deadline. Generous on purpose: a slow answer taken for
   * `ports_not_open` would make the SP fault a healthy member at once.
   * @default 2_000
   */
  probeTimeoutMs?: number;
  /** How often `/healthz` is tried until the member activates. @default 1_000 */
  activationPollMs?: number;
  /** @default DEFAULTS.republishIntervalMs */
  republishIntervalMs?: number;
  /** @default [] */
  awaitSubscribers?: readonly string[];
  /** @default `<memberId>:<start time, epoch ms>`: unique per agent life */
  agentId?: string;
  /** @default systemClock */
  clock?: Clock;
  /** @default nullLogger */
  logger?: Logger;
  /** @default Thrift over TCP */
  transport?: BatchTransport;
  /** @default HTTP on `workload` */
  probe?: WorkloadProbe;
  /** @default the OS figures */
  system?: SystemStats;
  /** @default mqttConnector */
  connector?: Connector;
}

export type AgentState = 'idle' | 'starting' | 'running' | 'closed';

export interface AgentCounters extends BatchSenderCounters, StatCollectorCounters {
  /** Collections skipped because the previous one was still running (a slow workload). */
  skippedTicks: number;
}

export interface Agent {
  readonly agentId: string;
  readonly state: AgentState;
  /** Whether InstanceActivatedEvent was published (the workload's health check passed). */
  readonly activated: boolean;
  /** Unacknowledged batches held for resending. */
  readonly queued: number;
  readonly counters: Readonly<AgentCounters>;
  /** Publishes InstanceStartedEvent and starts the stat and activation loops. */
  start(): Promise<void>;
  /** Stops the loops and closes the connections; the outbox keeps unsent events for the next life. Idempotent. */
  close(): Promise<void>;
}

/**
 * The cartridge agent (Stratos): reports its member's health every interval
 * to the SP over Thrift, and its lifecycle (`InstanceStartedEvent`,
 * `InstanceActivatedEvent`) on the broker pair through the resilient
 * publisher. Every timer runs on the injected Clock.
 */
export function createAgent(input: AgentOptions): Agent {
  const clock = input.clock ?? systemClock;
  const statIntervalMs = input.statIntervalMs ?? DEFAULTS.statIntervalMs;
  const activationPollMs = input.activationPollMs ?? 1_000;
  const { member } = input;
  const agentId = input.agentId ?? `${member.memberId}:${clock.now()}`;
  const log = (input.logger ?? nullLogger).child({ memberId: member.memberId });
  const source = `agent-${member.memberId}`;
  const transport = input.transport ?? thriftTransport({ logger: log });
  const probe =
    input.probe ?? httpWorkloadProbe({ ...input.workload, timeoutMs: input.probeTimeoutMs ?? 2_000, clock });
  const sender = new BatchSender({
    agentId,
    endpoints: input.spEndpoints,
    transport,
    maxUnackedBatches: input.maxUnackedBatches,
    callTimeoutMs: input.callTimeoutMs,
    clock,
    logger: log,
  });
  const collector = new StatCollector(member, input.system ?? osSystemStats, probe, clock, log);
  const publisher: Publisher = createPublisher({
    brokers: input.brokers,
    credentials: input.credentials,
    clientId: source,
    outboxFile: input.outboxFile,
    // Never an explicit undefined: the publisher spreads its input over its defaults.
    republishIntervalMs: input.republishIntervalMs ?? DEFAULTS.republishIntervalMs,
    awaitSubscribers: input.awaitSubscribers ?? [],
    clock,
    logger: log,
    connector: input.connector ?? mqttConnector,
  });
  let state: AgentState = 'idle';
  let activated = false;
  let collecting = false;
  let skippedTicks = 0;
  let statTimer: TimerHandle | undefined;
  let activationTimer: TimerHandle | undefined;

  const publish = async (type: 'InstanceStartedEvent' | 'InstanceActivatedEvent') => {
    // Deterministic per agent life: a republish of the same fact carries the same id, so subscribers dedupe it.
    const envelope = createEnvelope(type, { ...member }, { source, id: `${type}:${agentId}`, time: clock.now() });
    await publisher.publish(envelope);
    log.info('instance status published', { type, id: envelope.id });
  };

  const tick = async () => {
    if (state !== 'running') return;
    if (collecting) {
      skippedTicks += 1;
      log.debug('previous collection still running, tick skipped');
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
    clock.clearInterval(activationTimer);
    await publish('InstanceActivatedEvent');
  };

  const failed = (what: string) => (error: unknown) => log.error(`${what} failed`, { error });

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
      return { ...sender.counters, ...collector.counters, skippedTicks };
    },
    start: async () => {
      if (state !== 'idle') return;
      state = 'starting';
      await publisher.start();
      await publish('InstanceStartedEvent');
      if (state !== 'starting') return;
      state = 'running';
      log.info('agent started', { agentId, statIntervalMs, spEndpoints: input.spEndpoints.length });
      // First round at once, so the SP sees a new member without waiting a whole interval.
      statTimer = clock.setInterval(() => void tick().catch(failed('stat collection')), statIntervalMs);
      activationTimer = clock.setInterval(() => void checkActivation().catch(failed('activation')), activationPollMs);
      void tick().catch(failed('stat collection'));
      void checkActivation().catch(failed('activation'));
    },
    close: once(async () => {
      state = 'closed';
      clock.clearInterval(statTimer);
      clock.clearInterval(activationTimer);
      sender.close();
      log.info('agent stopped', {
        agentId,
        activated,
        queued: sender.queued,
        ...sender.counters,
        ...collector.counters,
        skippedTicks,
      });
      await closeAll([{ close: async () => transport.close() }, publisher], log);
    }),
  };
}
