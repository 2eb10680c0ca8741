import { isIPv6 } from 'node:net';
import {
  type ClusterProbes,
  ConfigError,
  type ConfigIssue,
  clusterProbesSchema,
  DEFAULTS,
  err,
  LOG_LEVELS,
  type LogLevel,
  MAX_PROBES_JSON_CHARS,
  ok,
  type Result,
} from '@faultline/core';
import { z } from 'zod';
import { type Endpoint, idSchema, isId, type MemberIdentity } from './identity.js';
import { MAX_CREDENTIAL_LENGTH } from './member-credential.js';

/*
 * The member environment (README "The member environment"): the one contract
 * between the local driver, which starts a member, the member's workload, and
 * its cartridge agent. One table below names every variable and how its value
 * is written and read; the encoder and both decoders are built from it, so the
 * two sides cannot drift apart. Names of settings that also exist in
 * faultline.yaml are the config's own override names
 * (`agent.statIntervalMs` → FAULTLINE_AGENT_STAT_INTERVAL_MS). An empty
 * variable counts as unset.
 */

/** One broker of the MQTT pair, as a member is told of it (the shape of messaging's BrokerEndpoint). */
export interface BrokerAddress extends Endpoint {
  /** `a`, `b`: the name in logs and status. */
  name: string;
}

/** What a member's cartridge agent needs to report; the driver hands it to every member it spawns. */
export interface AgentSettings {
  /** The SP nodes, active or passive: only the active accepts, the agent moves on from the others. */
  spEndpoints: readonly Endpoint[];
  /**
   * The broker pair the agent publishes `instance/status/<memberId>/*` to. Its
   * broker account is its own member's: user name the member id, password the
   * member credential (`memberBrokerAccount`), so it can speak only for itself.
   */
  brokers: readonly BrokerAddress[];
  /** @default DEFAULTS.statIntervalMs (15 000, Stratos agent; config `agent.statIntervalMs`) */
  statIntervalMs?: number;
  /** Bound of the agent's resend buffer. @default DEFAULTS.maxUnackedBatches (config `agent.maxUnackedBatches`) */
  maxUnackedBatches?: number;
  /** @default DEFAULTS.republishIntervalMs (60 000, the seed) */
  republishIntervalMs?: number;
  /** Subscribers (client id prefixes) that must be present on a broker before the agent publishes through it. @default [] */
  awaitSubscribers?: readonly string[];
  /** Deadline of one Thrift publish. @default the agent's (5 000) */
  callTimeoutMs?: number;
  /** How often the agent tries the workload's `/healthz` until the member activates. @default the agent's (1 000) */
  activationPollMs?: number;
  /** CA file (PEM) the SP's Thrift certificate must chain to (`tls.thrift.caFile`). @default undefined (plain TCP) */
  thriftCaFile?: string;
  /** CA file (PEM) the brokers' certificates must chain to (`tls.mqtt.caFile`). @default undefined (plain MQTT) */
  mqttCaFile?: string;
  /** Whether the agent serves `/health` and `/metrics` (config `agent.metrics`). @default true */
  metrics?: boolean;
  /** The address they bind (config `agent.metricsHost`). @default DEFAULTS.agentMetricsHost (loopback) */
  metricsHost?: string;
  /** Their port; 0, a free one the OS picks (config `agent.metricsPort`). @default DEFAULTS.agentMetricsPort (0) */
  metricsPort?: number;
  /**
   * The member's probes (its cluster's `clusters[].probes`, README "Probes"):
   * liveness, readiness, startup. @default the agent's: liveness GET /stats
   * failing after 3 misses in a row, startup GET /healthz, no readiness probe
   */
  probes?: ClusterProbes;
}

/** A host name or an IPv4/IPv6 literal: nothing that could carry a separator of the encoding (`,` `@`). */
const HOST_PATTERN = /^[A-Za-z0-9.:[\]-]{1,253}$/;

const hostSchema = z.string().regex(HOST_PATTERN, 'must be a host name or an IP address');
const portSchema = z.number().int().min(1).max(65_535);
const intervalSchema = z
  .number()
  .int()
  .min(1)
  .max(2 ** 31 - 1);
/** The agent settings the member environment can carry; the driver checks its own against it. */
export const agentSettingsSchema: z.ZodType<AgentSettings> = z.object({
  spEndpoints: z.array(z.object({ host: hostSchema, port: portSchema })).min(1, 'must be a non-empty list'),
  brokers: z.array(z.object({ name: idSchema, host: hostSchema, port: portSchema })).min(1, 'must be a non-empty list'),
  statIntervalMs: intervalSchema.optional(),
  maxUnackedBatches: z.number().int().min(1).max(1_000_000).optional(),
  republishIntervalMs: intervalSchema.optional(),
  awaitSubscribers: z.array(idSchema).optional(),
  callTimeoutMs: intervalSchema.optional(),
  activationPollMs: intervalSchema.optional(),
  thriftCaFile: z.string().min(1).optional(),
  mqttCaFile: z.string().min(1).optional(),
  metrics: z.boolean().optional(),
  metricsHost: hostSchema.optional(),
  metricsPort: z.number().int().min(0).max(65_535).optional(),
  probes: clusterProbesSchema.optional(),
});

/**
 * The address Prometheus scrapes an agent bound to `host` on: a wildcard bind
 * (`0.0.0.0`, `::`) is scraped on loopback, an IPv6 address in brackets. The
 * local driver names it in the agent's target file; the agent logs it.
 */
export function agentMetricsAddress(host: string, port: number): string {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  const reachable = bare === '0.0.0.0' ? '127.0.0.1' : bare === '::' ? '::1' : bare;
  return isIPv6(reachable) ? `[${reachable}]:${port}` : `${reachable}:${port}`;
}

/**
 * The text of an agent's metrics port file (FAULTLINE_AGENT_METRICS_PORT_FILE,
 * in the member's own folder): the port its `/metrics` listens on, in decimal,
 * and a newline. Nothing else: the driver reads it as the member's, untrusted.
 */
export function formatAgentMetricsPort(port: number): string {
  return `${port}\n`;
}

/** The port of a metrics port file's text (`formatAgentMetricsPort`), or why it is none. */
export function parseAgentMetricsPort(text: string): Result<number, string> {
  if (!/^[0-9]{1,5}\n?$/.test(text)) return err('not a port number');
  const port = Number(text.trim());
  return port >= 1 && port <= 65_535 ? ok(port) : err(`port ${port} is not within 1-65535`);
}

/** How one value is written as text and read back; `parse` gives the reason when the text is not one. */
interface TextCodec<T> {
  parse(text: string): Result<T, string>;
  format(value: T): string;
}

const textCodec: TextCodec<string> = { parse: (text) => ok(text), format: (value) => value };

const idCodec: TextCodec<string> = {
  parse: (text) => (isId(text) ? ok(text) : err(`is not a valid id: ${JSON.stringify(text)}`)),
  format: (value) => value,
};

/** A member credential's shape (member-credential.ts); its MAC is the SP's to check. The reason never repeats it. */
const CREDENTIAL_PATTERN = /^[A-Za-z0-9._-]+:[A-Za-z0-9._-]+:[A-Za-z0-9._-]+:[A-Za-z0-9_-]{43}$/;
const memberCredentialCodec: TextCodec<string> = {
  parse: (text) =>
    text.length <= MAX_CREDENTIAL_LENGTH && CREDENTIAL_PATTERN.test(text)
      ? ok(text)
      : err('is not a member credential (<memberId>:<clusterId>:<networkPartitionId>:<mac>)'),
  format: (value) => value,
};

const hostCodec: TextCodec<string> = {
  parse: (text) => (HOST_PATTERN.test(text) ? ok(text) : err('is not a host')),
  format: (value) => value,
};

function integerCodec(min: number): TextCodec<number> {
  return {
    parse: (text) => {
      const value = Number(text);
      return Number.isSafeInteger(value) && value >= min
        ? ok(value)
        : err(`must be an integer ≥ ${min}, not ${JSON.stringify(text)}`);
    },
    format: (value) => String(value),
  };
}

const portCodec: TextCodec<number> = {
  parse: (text) => {
    const value = integerCodec(1).parse(text);
    return value.ok && value.value > 65_535 ? err('must be a port') : value;
  },
  format: (value) => String(value),
};

/** A port to listen on: 0 lets the OS pick a free one. */
const listenPortCodec: TextCodec<number> = {
  parse: (text) => {
    const value = integerCodec(0).parse(text);
    return value.ok && value.value > 65_535 ? err('must be a port (0: any free one)') : value;
  },
  format: (value) => String(value),
};

/**
 * A cluster's probes as JSON (FAULTLINE_AGENT_PROBES), read back through the
 * configuration's own schema: strict, every bad field named.
 */
const probesCodec: TextCodec<ClusterProbes> = {
  parse: (text) => {
    // Checked before parsing: the schema's own bound is on the JSON it would write.
    if (text.length > 4 * MAX_PROBES_JSON_CHARS) return err(`is longer than ${4 * MAX_PROBES_JSON_CHARS} characters`);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return err('is not JSON');
    }
    const parsed = clusterProbesSchema.safeParse(value);
    if (parsed.success) return ok(parsed.data);
    return err(
      parsed.error.issues
        .map((issue) => `${issue.path.map(String).join('.') || 'probes'}: ${issue.message}`)
        .join('; '),
    );
  },
  format: (value) => JSON.stringify(value),
};

const booleanCodec: TextCodec<boolean> = {
  parse: (text) => (text === 'true' ? ok(true) : text === 'false' ? ok(false) : err('must be true or false')),
  format: (value) => String(value),
};

const logLevelCodec: TextCodec<LogLevel> = {
  parse: (text) =>
    (LOG_LEVELS as readonly string[]).includes(text)
      ? ok(text as LogLevel)
      : err(`must be one of ${LOG_LEVELS.join(', ')}`),
  format: (value) => value,
};

/** `host:port`; IPv6 is read bracketed or not (`[::1]:7611`, `::1:7611`): the port follows the last colon. */
function parseHostPort(text: string): Endpoint | undefined {
  const colon = text.lastIndexOf(':');
  if (colon <= 0) return undefined;
  const host = text.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  const port = Number(text.slice(colon + 1));
  if (!HOST_PATTERN.test(host) || !Number.isInteger(port) || port < 1 || port > 65_535) return undefined;
  return { host, port };
}

const endpointCodec: TextCodec<Endpoint> = {
  parse: (text) => {
    const endpoint = parseHostPort(text);
    return endpoint ? ok(endpoint) : err('expected host:port');
  },
  format: (endpoint) => `${endpoint.host}:${endpoint.port}`,
};

const brokerCodec: TextCodec<BrokerAddress> = {
  parse: (text) => {
    const at = text.indexOf('@');
    const name = text.slice(0, at);
    const address = parseHostPort(text.slice(at + 1));
    return at > 0 && isId(name) && address ? ok({ name, ...address }) : err('expected name@host:port');
  },
  format: (broker) => `${broker.name}@${broker.host}:${broker.port}`,
};

/** A comma-separated list of `item`s (spaces around an item are ignored); every bad item is named. */
function listCodec<T>(item: TextCodec<T>, what: string): TextCodec<readonly T[]> {
  return {
    parse: (text) => {
      const items = text
        .split(',')
        .map((part) => part.trim())
        .filter(Boolean);
      if (items.length === 0) return err(`expected ${what}`);
      const values: T[] = [];
      const wrong: string[] = [];
      for (const part of items) {
        const parsed = item.parse(part);
        if (parsed.ok) values.push(parsed.value);
        else wrong.push(JSON.stringify(part));
      }
      return wrong.length > 0 ? err(`expected ${what}, got ${wrong.join(', ')}`) : ok(values);
    },
    format: (values) => values.map((value) => item.format(value)).join(','),
  };
}

/** One variable of the contract: its name, and how its value is read (text undefined: unset) and written. */
interface Field<N extends string, T> {
  readonly name: N;
  decode(text: string | undefined): Result<T, string>;
  encode(value: T): string;
}

function required<N extends string, T>(name: N, codec: TextCodec<T>): Field<N, T> {
  return {
    name,
    decode: (text) => (text === undefined ? err('is required') : codec.parse(text)),
    encode: (value) => codec.format(value),
  };
}

/** Unset decodes as undefined, so the reader's own default applies. */
function optional<N extends string, T>(name: N, codec: TextCodec<T>): Field<N, T | undefined> {
  return {
    name,
    decode: (text) => (text === undefined ? ok(undefined) : codec.parse(text)),
    encode: (value) => (value === undefined ? '' : codec.format(value)),
  };
}

function withDefault<N extends string, T>(name: N, codec: TextCodec<T>, fallback: T): Field<N, T> {
  return {
    name,
    decode: (text) => (text === undefined ? ok(fallback) : codec.parse(text)),
    encode: (value) => codec.format(value),
  };
}

/** Every variable of the member environment. */
const FIELDS = {
  memberId: required('FAULTLINE_MEMBER_ID', idCodec),
  clusterId: required('FAULTLINE_CLUSTER_ID', idCodec),
  clusterInstanceId: required('FAULTLINE_CLUSTER_INSTANCE_ID', idCodec),
  networkPartitionId: required('FAULTLINE_NETWORK_PARTITION_ID', idCodec),
  partitionId: required('FAULTLINE_PARTITION_ID', idCodec),
  /** Informational: no Faultline process reads it. */
  cartridgeType: required('FAULTLINE_CARTRIDGE_TYPE', idCodec),
  /** The member's credential, issued by the driver at spawn; the agent sends it with every batch. */
  credential: required('FAULTLINE_MEMBER_CREDENTIAL', memberCredentialCodec),
  spEndpoints: required('FAULTLINE_SP_ENDPOINTS', listCodec(endpointCodec, 'host:port,host:port')),
  brokers: required('FAULTLINE_BROKERS', listCodec(brokerCodec, 'name@host:port,name@host:port')),
  statIntervalMs: optional('FAULTLINE_AGENT_STAT_INTERVAL_MS', integerCodec(1)),
  maxUnackedBatches: optional('FAULTLINE_AGENT_MAX_UNACKED_BATCHES', integerCodec(1)),
  republishIntervalMs: optional('FAULTLINE_MESSAGING_REPUBLISH_INTERVAL_MS', integerCodec(1)),
  callTimeoutMs: optional('FAULTLINE_AGENT_CALL_TIMEOUT_MS', integerCodec(1)),
  activationPollMs: optional('FAULTLINE_AGENT_ACTIVATION_POLL_MS', integerCodec(1)),
  thriftCaFile: optional('FAULTLINE_TLS_THRIFT_CA_FILE', textCodec),
  mqttCaFile: optional('FAULTLINE_TLS_MQTT_CA_FILE', textCodec),
  metrics: optional('FAULTLINE_AGENT_METRICS', booleanCodec),
  metricsHost: optional('FAULTLINE_AGENT_METRICS_HOST', hostCodec),
  metricsPort: optional('FAULTLINE_AGENT_METRICS_PORT', listenPortCodec),
  /** The member's cluster's probes (`clusters[].probes`), as JSON. */
  probes: optional('FAULTLINE_AGENT_PROBES', probesCodec),
  /** Set by the driver: the file in the member's own folder the agent records its metrics port in. */
  metricsPortFile: optional('FAULTLINE_AGENT_METRICS_PORT_FILE', textCodec),
  awaitSubscribers: withDefault('FAULTLINE_AGENT_AWAIT_SUBSCRIBERS', listCodec(idCodec, 'client ids'), []),
  outboxDir: required('FAULTLINE_OUTBOX_DIR', textCodec),
  logDir: optional('FAULTLINE_LOGGING_DIR', textCodec),
  logLevel: withDefault('FAULTLINE_LOG_LEVEL', logLevelCodec, 'info'),
  /** Set by the workload when it starts the agent: the port it listens on. */
  workloadPort: required('FAULTLINE_WORKLOAD_PORT', portCodec),
  workloadHost: withDefault('FAULTLINE_WORKLOAD_HOST', hostCodec, '127.0.0.1'),
  workloadLatencyMs: withDefault('FAULTLINE_WORKLOAD_LATENCY_MS', integerCodec(0), DEFAULTS.workloadLatencyMs),
  /** Where the workload reports `{ pid, port, agentPid }` once it is ready. */
  readyFile: required('FAULTLINE_WORKLOAD_READY_FILE', textCodec),
  /** The agent's entry point; the workload starts `node <it>`. */
  agentMain: required('FAULTLINE_AGENT_MAIN', textCodec),
};

type Fields = typeof FIELDS;
type MemberEnvKey = keyof Fields;
type ValueOf<F> = F extends Field<string, infer T> ? T : never;
type MemberEnvValues = { [K in MemberEnvKey]: ValueOf<Fields[K]> };

/** The variable names, by setting: `MEMBER_ENV.memberId` is `FAULTLINE_MEMBER_ID`. */
export const MEMBER_ENV = Object.fromEntries(Object.entries(FIELDS).map(([key, field]) => [key, field.name])) as {
  readonly [K in MemberEnvKey]: Fields[K]['name'];
};

type Env = Readonly<Record<string, string | undefined>>;

function encodeFields(values: Partial<MemberEnvValues>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const key of Object.keys(values) as MemberEnvKey[]) {
    const field = FIELDS[key] as Field<string, unknown>;
    const value = values[key];
    // Empty means unset: an empty list or an absent setting is simply not written.
    const text = value === undefined ? '' : field.encode(value);
    if (text !== '') env[field.name] = text;
  }
  return env;
}

/** Reads `keys` in order; every bad variable is one issue, named by the variable. */
function decodeFields<K extends MemberEnvKey>(
  env: Env,
  keys: readonly K[],
): Result<Pick<MemberEnvValues, K>, ConfigIssue[]> {
  const values: Partial<Record<MemberEnvKey, unknown>> = {};
  const issues: ConfigIssue[] = [];
  for (const key of keys) {
    const field = FIELDS[key] as Field<string, unknown>;
    const text = env[field.name];
    const decoded = field.decode(text === '' ? undefined : text);
    if (decoded.ok) values[key] = decoded.value;
    else issues.push({ key: field.name, reason: decoded.error });
  }
  return issues.length > 0 ? err(issues) : ok(values as Pick<MemberEnvValues, K>);
}

/** What the driver tells a member's processes: everything but the workload's port, which the workload adds. */
export interface MemberEnvInput {
  member: MemberIdentity & { cartridgeType: string };
  /** The member's credential (`issueMemberCredential`): for its agent only, never stored or logged by the driver. */
  credential: string;
  agent: AgentSettings;
  workload: {
    /** Address the workload listens on. */
    host: string;
    /** Latency of each `GET /` it serves. */
    latencyMs: number;
    readyFile: string;
    agentMain: string;
  };
  /** Folder of the agent's status-event outbox. */
  outboxDir: string;
  /**
   * File in the member's own folder where its agent records the port of its
   * `/metrics` (`formatAgentMetricsPort`), for the driver to check and name in
   * the Prometheus target file it writes itself; undefined: the agent records none.
   */
  metricsPortFile?: string | undefined;
  /** Folder of the JSON-lines logs; undefined: JSON on stdout. */
  logDir: string | undefined;
  logLevel: LogLevel;
}

/** The driver's side: the member's variables (not the rest of the environment the processes inherit). */
export function encodeMemberEnv(input: MemberEnvInput): Record<string, string> {
  const { member, agent, workload } = input;
  return encodeFields({
    memberId: member.memberId,
    clusterId: member.clusterId,
    clusterInstanceId: member.clusterInstanceId,
    networkPartitionId: member.networkPartitionId,
    partitionId: member.partitionId,
    cartridgeType: member.cartridgeType,
    credential: input.credential,
    spEndpoints: agent.spEndpoints,
    brokers: agent.brokers,
    statIntervalMs: agent.statIntervalMs,
    maxUnackedBatches: agent.maxUnackedBatches,
    republishIntervalMs: agent.republishIntervalMs,
    callTimeoutMs: agent.callTimeoutMs,
    activationPollMs: agent.activationPollMs,
    thriftCaFile: agent.thriftCaFile,
    mqttCaFile: agent.mqttCaFile,
    metrics: agent.metrics,
    metricsHost: agent.metricsHost,
    metricsPort: agent.metricsPort,
    probes: agent.probes,
    awaitSubscribers: agent.awaitSubscribers,
    outboxDir: input.outboxDir,
    metricsPortFile: input.metricsPortFile,
    logDir: input.logDir,
    logLevel: input.logLevel,
    workloadHost: workload.host,
    workloadLatencyMs: workload.latencyMs,
    readyFile: workload.readyFile,
    agentMain: workload.agentMain,
  });
}

/** The workload's side: what it adds for the agent it starts. */
export function encodeWorkloadPort(port: number): Record<string, string> {
  return encodeFields({ workloadPort: port });
}

/** The workload's part of the environment. */
export interface WorkloadEnv {
  memberId: string;
  host: string;
  latencyMs: number;
  readyFile: string;
  agentMain: string;
  logDir: string | undefined;
  logLevel: LogLevel;
}

const WORKLOAD_KEYS = [
  'memberId',
  'workloadLatencyMs',
  'readyFile',
  'agentMain',
  'logLevel',
  'workloadHost',
  'logDir',
] as const satisfies readonly MemberEnvKey[];

/** Reads the workload's part; the error lists every bad variable. */
export function decodeWorkloadEnv(env: Env): Result<WorkloadEnv, ConfigIssue[]> {
  const decoded = decodeFields(env, WORKLOAD_KEYS);
  if (!decoded.ok) return decoded;
  const values = decoded.value;
  return ok({
    memberId: values.memberId,
    host: values.workloadHost,
    latencyMs: values.workloadLatencyMs,
    readyFile: values.readyFile,
    agentMain: values.agentMain,
    logDir: values.logDir,
    logLevel: values.logLevel,
  });
}

/** The cartridge agent's part of the environment. */
export interface AgentEnv {
  member: MemberIdentity;
  /** The member's credential, sent with every batch. */
  credential: string;
  agent: AgentSettings;
  /** Where the member's workload listens. */
  workload: Endpoint;
  outboxDir: string;
  /** Where to record its metrics port; undefined: nowhere. */
  metricsPortFile: string | undefined;
  logDir: string | undefined;
  logLevel: LogLevel;
}

const AGENT_KEYS = [
  'memberId',
  'clusterId',
  'clusterInstanceId',
  'networkPartitionId',
  'partitionId',
  'credential',
  'spEndpoints',
  'brokers',
  'workloadPort',
  'workloadHost',
  'outboxDir',
  'awaitSubscribers',
  'logLevel',
  'statIntervalMs',
  'maxUnackedBatches',
  'republishIntervalMs',
  'callTimeoutMs',
  'activationPollMs',
  'thriftCaFile',
  'mqttCaFile',
  'metrics',
  'metricsHost',
  'metricsPort',
  'metricsPortFile',
  'probes',
  'logDir',
] as const satisfies readonly MemberEnvKey[];

/** Reads the agent's part; the error lists every bad variable. Unset settings stay undefined (the agent's defaults). */
export function decodeAgentEnv(env: Env): Result<AgentEnv, ConfigIssue[]> {
  const decoded = decodeFields(env, AGENT_KEYS);
  if (!decoded.ok) return decoded;
  const values = decoded.value;
  return ok({
    member: {
      memberId: values.memberId,
      clusterId: values.clusterId,
      clusterInstanceId: values.clusterInstanceId,
      networkPartitionId: values.networkPartitionId,
      partitionId: values.partitionId,
    },
    credential: values.credential,
    agent: {
      spEndpoints: values.spEndpoints,
      brokers: values.brokers,
      statIntervalMs: values.statIntervalMs,
      maxUnackedBatches: values.maxUnackedBatches,
      republishIntervalMs: values.republishIntervalMs,
      callTimeoutMs: values.callTimeoutMs,
      activationPollMs: values.activationPollMs,
      awaitSubscribers: values.awaitSubscribers,
      // Only when set, so an agent without TLS or metrics settings decodes exactly as before.
      ...(values.thriftCaFile === undefined ? {} : { thriftCaFile: values.thriftCaFile }),
      ...(values.mqttCaFile === undefined ? {} : { mqttCaFile: values.mqttCaFile }),
      ...(values.metrics === undefined ? {} : { metrics: values.metrics }),
      ...(values.metricsHost === undefined ? {} : { metricsHost: values.metricsHost }),
      ...(values.metricsPort === undefined ? {} : { metricsPort: values.metricsPort }),
      ...(values.probes === undefined ? {} : { probes: values.probes }),
    },
    workload: { host: values.workloadHost, port: values.workloadPort },
    outboxDir: values.outboxDir,
    metricsPortFile: values.metricsPortFile,
    logDir: values.logDir,
    logLevel: values.logLevel,
  });
}

/** The error a process that cannot read its environment exits with (2, in runMain), one line per variable. */
export function memberEnvError(reader: string, issues: ConfigIssue[]): ConfigError {
  const lines = [`invalid ${reader} environment:`, ...issues.map((issue) => `  - ${issue.key}: ${issue.reason}`)];
  return new ConfigError('FL_ERR_CONFIG_INVALID', lines.join('\n'), { issues });
}
