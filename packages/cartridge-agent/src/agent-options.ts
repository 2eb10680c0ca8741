import { readFileSync } from 'node:fs';
import { type Clock, DEFAULTS, type Logger, nullLogger, systemClock, withDefaults } from '@faultline/core';
import { type Connector, mqttConnector, mqttTlsConnector } from '@faultline/messaging';
import type { AgentSettings, Endpoint, MemberIdentity } from '@faultline/protocol';
import type { BatchTransport } from './batch-sender.js';
import { CALL_TIMEOUT_MS } from './batch-sender-options.js';
import { METRICS_MAX_AGE_MS } from './metrics-server.js';
import { osSystemStats, type SystemStats, type WorkloadProbe } from './stats.js';
import { thriftTransport } from './thrift-transport.js';
import { httpWorkloadProbe } from './workload-probe.js';

/**
 * The agent's options: what the member environment tells it (AgentSettings:
 * SP endpoints, brokers, credentials, intervals), who it reports for, and
 * the collaborators tests replace.
 */
export interface AgentOptions extends AgentSettings {
  /** The member this agent reports for. */
  member: MemberIdentity;
  /** The member's credential (`FAULTLINE_MEMBER_CREDENTIAL`, issued at spawn): sent with every batch, never logged. */
  credential: string;
  /** Durable outbox of the status events. */
  outboxFile: string;
  /**
   * File in the member's own folder (FAULTLINE_AGENT_METRICS_PORT_FILE) where
   * the agent records the port of its `/metrics` once it listens, and removes
   * it when it stops. The agent writes nothing else: the local driver checks
   * that port against the agent's own listening sockets and writes the
   * Prometheus target file itself. @default undefined (no port file)
   */
  metricsPortFile?: string;
  /**
   * How old a `/metrics` body it serves may be: scrapes within it get the last
   * one, and concurrent scrapes always share one collection (0: every scrape
   * collects, still one at a time). Not in the member environment.
   * @default METRICS_MAX_AGE_MS (1 s)
   */
  metricsMaxAgeMs?: number;
  /** Where the member's workload listens. */
  workload: Endpoint;
  /**
   * Workload probe deadline. Generous on purpose: a slow answer taken for
   * `ports_not_open` would make the SP fault a healthy member at once.
   * @default 2_000
   */
  probeTimeoutMs?: number;
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
  /** @default mqttConnector; over TLS verifying `mqttCaFile` when that is set */
  connector?: Connector;
}

export type ResolvedAgentOptions = Required<Omit<AgentOptions, 'thriftCaFile' | 'mqttCaFile' | 'metricsPortFile'>> &
  Pick<AgentOptions, 'thriftCaFile' | 'mqttCaFile' | 'metricsPortFile'>;

/** The agent's options with every default filled in (those of AgentSettings are documented there). */
export function resolveAgentOptions(input: AgentOptions): ResolvedAgentOptions {
  const options = withDefaults(
    {
      statIntervalMs: DEFAULTS.statIntervalMs as number,
      maxUnackedBatches: DEFAULTS.maxUnackedBatches as number,
      republishIntervalMs: DEFAULTS.republishIntervalMs as number,
      awaitSubscribers: [] as readonly string[],
      callTimeoutMs: CALL_TIMEOUT_MS,
      activationPollMs: 1_000,
      probeTimeoutMs: 2_000,
      metrics: true,
      metricsHost: DEFAULTS.agentMetricsHost as string,
      metricsPort: DEFAULTS.agentMetricsPort as number,
      metricsMaxAgeMs: METRICS_MAX_AGE_MS,
      clock: systemClock,
      logger: nullLogger,
      system: osSystemStats,
    },
    input,
  );
  const { member, clock } = options;
  // These defaults are built from other options.
  return {
    ...options,
    agentId: options.agentId ?? `${member.memberId}:${clock.now()}`,
    // README "TLS": a CA file turns TLS on; an unreadable one fails the start, never falls back to plain TCP.
    connector:
      options.connector ??
      (options.mqttCaFile === undefined ? mqttConnector : mqttTlsConnector({ ca: readFileSync(options.mqttCaFile) })),
    transport:
      options.transport ??
      thriftTransport({
        logger: options.logger.child({ memberId: member.memberId }),
        ...(options.thriftCaFile === undefined ? {} : { ca: readFileSync(options.thriftCaFile) }),
      }),
    probe: options.probe ?? httpWorkloadProbe({ ...options.workload, timeoutMs: options.probeTimeoutMs, clock }),
  };
}
