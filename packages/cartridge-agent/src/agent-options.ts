import { readFileSync } from 'node:fs';
import {
  type Clock,
  type ClusterProbes,
  ConfigError,
  clusterProbesSchema,
  DEFAULTS,
  type Logger,
  nullLogger,
  PROBE_KINDS,
  type ProbeConfig,
  type ProbeKind,
  type StartupProbeConfig,
  systemClock,
  withDefaults,
} from '@faultline/core';
import { type Connector, mqttConnector, mqttTlsConnector } from '@faultline/messaging';
import type { AgentSettings, Endpoint, MemberIdentity } from '@faultline/protocol';
import type { BatchTransport } from './batch-sender.js';
import { CALL_TIMEOUT_MS } from './batch-sender-options.js';
import { METRICS_MAX_AGE_MS } from './metrics-server.js';
import { execProbeEnv, type ProbeCheck, probeCheckFor } from './probe-checks.js';
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
   * Deadline of the `GET /stats` that requests_in_flight is read from (a round
   * without an answer leaves it out; the probes have their own deadlines).
   * @default DEFAULTS.probes.timeoutMs (2 000)
   */
  probeTimeoutMs?: number;
  /**
   * The checks of the probes, by kind, in place of those `probes` describes
   * (tests: checks on fake time). A kind not named here runs its configured
   * check; readiness runs only when `probes.readiness` is set or a check is given.
   * @default none
   */
  checks?: Partial<Record<ProbeKind, ProbeCheck>>;
  /**
   * The whole environment of an exec probe's command.
   * @default execProbeEnv(process.env, …): PATH, HOME, locale, time zone, the member's ids and workload address
   */
  execEnv?: Readonly<Record<string, string>>;
  /** @default `<memberId>:<start time, epoch ms>`: unique per agent life */
  agentId?: string;
  /** @default systemClock */
  clock?: Clock;
  /** @default nullLogger */
  logger?: Logger;
  /** @default Thrift over TCP */
  transport?: BatchTransport;
  /** Where requests_in_flight is read. @default `GET /stats` on `workload` */
  probe?: WorkloadProbe;
  /** @default the OS figures */
  system?: SystemStats;
  /** @default mqttConnector; over TLS verifying `mqttCaFile` when that is set */
  connector?: Connector;
}

/** A probe as the agent runs it: its check and its numbers, every default filled in. */
export interface ResolvedProbe {
  kind: ProbeKind;
  check: ProbeCheck;
  periodMs: number;
  timeoutMs: number;
  /** Infinity for the startup probe: it never fails, it only has not passed yet. */
  failureThreshold: number;
  successThreshold: number;
  /** What the configuration said (for the log); undefined when a test gave the check alone. */
  config: ProbeConfig | StartupProbeConfig | undefined;
}

export interface ResolvedProbes {
  liveness: ResolvedProbe;
  /** None unless configured: the member is in service from its activation on. */
  readiness: ResolvedProbe | undefined;
  startup: ResolvedProbe;
}

export type ResolvedAgentOptions = Required<
  Omit<AgentOptions, 'thriftCaFile' | 'mqttCaFile' | 'metricsPortFile' | 'probes' | 'checks'>
> &
  Pick<AgentOptions, 'thriftCaFile' | 'mqttCaFile' | 'metricsPortFile'> & { probes: ResolvedProbes };

/**
 * The probes `input` describes, checked again (a ConfigError naming each bad
 * field: the agent exits 2, it never runs with half a probe), each period
 * defaulting to the stat interval (liveness, readiness) or the activation
 * poll (startup).
 */
function resolveProbes(
  input: ClusterProbes | undefined,
  checks: Partial<Record<ProbeKind, ProbeCheck>>,
  context: {
    statIntervalMs: number;
    activationPollMs: number;
    workload: AgentOptions['workload'];
    execEnv: Readonly<Record<string, string>>;
  },
): ResolvedProbes {
  const parsed = clusterProbesSchema.safeParse(input ?? {});
  if (!parsed.success) {
    const issues = parsed.error.issues.map((issue) => ({
      key: ['probes', ...issue.path.map(String)].join('.'),
      reason: issue.message,
    }));
    throw new ConfigError(
      'FL_ERR_CONFIG_INVALID',
      `invalid agent probes: ${issues.map((i) => `${i.key}: ${i.reason}`).join('; ')}`,
      { issues },
    );
  }
  const probes = parsed.data;
  const resolve = (kind: ProbeKind): ResolvedProbe | undefined => {
    const config = probes[kind];
    const check = checks[kind] ?? (config && probeCheckFor(config, context.workload, { env: context.execEnv }));
    if (!check) return undefined;
    const fallbackPeriod = kind === 'startup' ? context.activationPollMs : context.statIntervalMs;
    return {
      kind,
      check,
      periodMs: config?.periodMs ?? fallbackPeriod,
      timeoutMs: config?.timeoutMs ?? DEFAULTS.probes.timeoutMs,
      failureThreshold:
        kind === 'startup'
          ? Number.POSITIVE_INFINITY
          : ((config as ProbeConfig | undefined)?.failureThreshold ?? DEFAULTS.probes.failureThreshold),
      successThreshold: config?.successThreshold ?? DEFAULTS.probes.successThreshold,
      config,
    };
  };
  const [liveness, readiness, startup] = PROBE_KINDS.map(resolve);
  // The schema always gives liveness and startup.
  if (!liveness || !startup)
    throw new ConfigError('FL_ERR_CONFIG_INVALID', 'agent probes: liveness and startup are required');
  return { liveness, readiness, startup };
}

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
      probeTimeoutMs: DEFAULTS.probes.timeoutMs as number,
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
  const execEnv =
    options.execEnv ??
    execProbeEnv(process.env, { memberId: member.memberId, clusterId: member.clusterId, workload: options.workload });
  // These defaults are built from other options.
  return {
    ...options,
    execEnv,
    probes: resolveProbes(options.probes, options.checks ?? {}, {
      statIntervalMs: options.statIntervalMs,
      activationPollMs: options.activationPollMs,
      workload: options.workload,
      execEnv,
    }),
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
