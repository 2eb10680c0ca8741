import path from 'node:path';
import type { Iaas } from '@faultline/cloud-controller';
import {
  brokerCredential,
  type Clock,
  type ClusterConfig,
  DEFAULTS,
  type FaultlineConfig,
  type Logger,
  nullLogger,
  readTlsFiles,
  systemClock,
  withDefaults,
} from '@faultline/core';
import { type BrokerEndpoint, type Connector, type Credentials, mqttTlsConnector } from '@faultline/messaging';
import { CLIENT_IDS, type Envelope } from '@faultline/protocol';
import type { Fence } from './fence.js';
import { randomMemberId } from './member.js';
import type { Registry } from './registry.js';

/** The options of the AutoscalerCore: the cluster monitors, the registry, the decisions' way out. */
export interface AutoscalerCoreOptions {
  /** The deployment policies: `clusters[]` of the configuration. */
  clusters: readonly ClusterConfig[];
  iaas: Iaas;
  registry: Registry;
  /** Sends an envelope (the durable publisher); resolves once it is safe. */
  publish: (envelope: Envelope) => Promise<void>;
  /** @default DEFAULTS.monitorIntervalMs (15 000) */
  monitorIntervalMs?: number;
  /** @default DEFAULTS.pendingTimeoutMs (900 000, Stratos) */
  pendingTimeoutMs?: number;
  /** @default DEFAULTS.backoffInitialMs (10 000) */
  backoffInitialMs?: number;
  /** @default DEFAULTS.backoffMaxMs (300 000) */
  backoffMaxMs?: number;
  /** @default DEFAULTS.scaleDownConsecutive (3) */
  scaleDownConsecutive?: number;
  /** Fault-storm window: the CEP's fault timeout. @default DEFAULTS.faultTimeoutMs (60 000) */
  faultStormWindowMs?: number;
  /**
   * The SP's summary tick (`cep.summaryIntervalMs`). A network partition no
   * member summary listed for faultStormWindowMs is silent; an Active member
   * none listed for faultStormWindowMs + summaryIntervalMs is absent.
   * @default DEFAULTS.statIntervalMs (15 000)
   */
  summaryIntervalMs?: number;
  /** @default DEFAULTS.backoffResetMs (600 000) */
  backoffResetMs?: number;
  /** @default DEFAULTS.stormMaxHoldMs (600 000) */
  stormMaxHoldMs?: number;
  /** @default DEFAULTS.orphanGraceMs (60 000) */
  orphanGraceMs?: number;
  /** Grace between soft and forced stop of a member. @default undefined: the driver's */
  terminateGraceMs?: number;
  /** Actions kept for status(). @default 50 */
  actionHistory?: number;
  /** @default randomMemberId: `<clusterId>-<6 random base-36 characters>` */
  newMemberId?: (clusterId: string) => string;
  /** @default systemClock */
  clock?: Clock;
  /** @default nullLogger */
  logger?: Logger;
}

/** Every option of the core with its value: only terminateGraceMs may stay undefined (the driver's default). */
export interface ResolvedAutoscalerCoreOptions extends Required<Omit<AutoscalerCoreOptions, 'terminateGraceMs'>> {
  terminateGraceMs: number | undefined;
}

const CORE_DEFAULTS: Omit<ResolvedAutoscalerCoreOptions, 'clusters' | 'iaas' | 'registry' | 'publish'> = {
  monitorIntervalMs: DEFAULTS.monitorIntervalMs,
  pendingTimeoutMs: DEFAULTS.pendingTimeoutMs,
  backoffInitialMs: DEFAULTS.backoffInitialMs,
  backoffMaxMs: DEFAULTS.backoffMaxMs,
  scaleDownConsecutive: DEFAULTS.scaleDownConsecutive,
  faultStormWindowMs: DEFAULTS.faultTimeoutMs,
  summaryIntervalMs: DEFAULTS.statIntervalMs,
  backoffResetMs: DEFAULTS.backoffResetMs,
  stormMaxHoldMs: DEFAULTS.stormMaxHoldMs,
  orphanGraceMs: DEFAULTS.orphanGraceMs,
  terminateGraceMs: undefined,
  actionHistory: 50,
  newMemberId: randomMemberId,
  clock: systemClock,
  logger: nullLogger,
};

export function resolveAutoscalerCoreOptions(options: AutoscalerCoreOptions): ResolvedAutoscalerCoreOptions {
  return withDefaults(CORE_DEFAULTS, options);
}

/**
 * Scale stabilization of one cluster (`clusters[].scaling`, README "Autoscaler",
 * rule 5). The defaults are Stratos' own behaviour: no window, no cooldown,
 * one member per decision.
 */
export interface ScalingOptions {
  /**
   * A scale down goes no lower than the highest member count the predictions
   * recommended within this window (the HPA's scale-down stabilization); 0: off.
   * @default DEFAULTS.scaling.scaleDownWindowMs (0)
   */
  scaleDownWindowMs?: number;
  /**
   * No scaling-rule action (up or down) for this long after the last one. The
   * minimum rule, fault replacements and the maximum are never held by it; 0: off.
   * @default DEFAULTS.scaling.cooldownMs (0)
   */
  cooldownMs?: number;
  /** Members one scaling decision adds or removes at most. @default DEFAULTS.scaling.maxStep (1) */
  maxStep?: number;
}

export type ResolvedScalingOptions = Required<ScalingOptions>;

export function resolveScalingOptions(options: ScalingOptions = {}): ResolvedScalingOptions {
  const scalingDefaults: ResolvedScalingOptions = { ...DEFAULTS.scaling };
  return withDefaults(scalingDefaults, options);
}

/** The options of the autoscaler service: the core's, and its broker connections. */
export interface AutoscalerOptions extends Omit<AutoscalerCoreOptions, 'publish'> {
  /** The broker pair: the subscriber holds both, the publisher fails over between them. */
  brokers: readonly BrokerEndpoint[];
  /** The broker account of role `autoscaler`. */
  credentials: Credentials;
  /** The durable outbox of the `topology/` and `autoscaler/` messages. */
  outboxFile: string;
  /**
   * The subscriber's client id (the publisher's is `<clientId>-pub`). The
   * SP's and the agents' publishers send only while the autoscaler is present
   * on a broker: its subscriber pings `ping/autoscaler`, which only an
   * `autoscaler` account may publish, whatever this id is. The subscriber
   * keeps a persistent session on each broker under an id derived from this
   * and the account (messaging's persistentClientId): one autoscaler process
   * per id, or the two take the session from each other.
   * @default CLIENT_IDS.autoscaler ('autoscaler')
   */
  clientId?: string;
  /** @default the subscriber's: DEFAULTS.pingIntervalMs (1 000) */
  pingIntervalMs?: number;
  /** @default the subscriber's: DEFAULTS.resubscribeIntervalMs (30 000) */
  resubscribeIntervalMs?: number;
  /** @default the publisher's: DEFAULTS.republishIntervalMs (60 000) */
  republishIntervalMs?: number;
  /** The outbox's bound (`messaging.outboxMaxBytes`). @default the publisher's: DEFAULTS.outboxMaxBytes */
  outboxMaxBytes?: number;
  /** @default the subscriber's: DEFAULTS.maxMessageBytes */
  maxMessageBytes?: number;
  /** @default MQTT.js; FakeBrokers' connector in unit tests */
  connector?: Connector;
}

/** The service's own default; the core, the subscriber and the publisher resolve the rest. */
export function resolveAutoscalerOptions(options: AutoscalerOptions): AutoscalerOptions & { clientId: string } {
  const serviceDefaults: { clientId: string } = { clientId: CLIENT_IDS.autoscaler };
  return withDefaults(serviceDefaults, options);
}

/** The autoscaler's options from the configuration (`clusters`, `autoscaler`, `messaging`, `cep.faultTimeoutMs`). */
export function autoscalerOptionsFrom(
  config: FaultlineConfig,
  deps: { iaas: Iaas; registry: Registry; logger?: Logger; clock?: Clock; nodeId?: string },
): AutoscalerOptions {
  const { autoscaler, messaging } = config;
  // tls.mqtt (README "TLS"): the brokers speak mqtts and are verified against its CA.
  const mqttTls = readTlsFiles(config.tls.mqtt, 'tls.mqtt');
  return {
    ...(mqttTls ? { connector: mqttTlsConnector({ ca: mqttTls.ca }) } : {}),
    clusters: config.clusters,
    iaas: deps.iaas,
    registry: deps.registry,
    brokers: config.brokers.nodes.map((b) => ({ name: b.name, host: b.host, port: b.port })),
    credentials: brokerCredential(config, 'autoscaler'),
    // One outbox per node of the pair: a paused node that wakes must never write into the acting one's file.
    outboxFile: path.join(messaging.outboxDir, `${deps.nodeId ?? CLIENT_IDS.autoscaler}.outbox`),
    pingIntervalMs: messaging.pingIntervalMs,
    resubscribeIntervalMs: messaging.resubscribeIntervalMs,
    republishIntervalMs: messaging.republishIntervalMs,
    outboxMaxBytes: messaging.outboxMaxBytes,
    maxMessageBytes: messaging.maxMessageBytes,
    monitorIntervalMs: autoscaler.monitorIntervalMs,
    pendingTimeoutMs: autoscaler.pendingTimeoutMs,
    backoffInitialMs: autoscaler.backoffInitialMs,
    backoffMaxMs: autoscaler.backoffMaxMs,
    scaleDownConsecutive: autoscaler.scaleDownConsecutive,
    backoffResetMs: autoscaler.backoffResetMs,
    stormMaxHoldMs: autoscaler.stormMaxHoldMs,
    orphanGraceMs: autoscaler.orphanGraceMs,
    faultStormWindowMs: config.cep.faultTimeoutMs,
    summaryIntervalMs: config.cep.summaryIntervalMs,
    logger: deps.logger,
    clock: deps.clock,
  };
}

/** The autoscaler pair's lease as the registry checks it on every write. */
export interface RegistryFence {
  lease: Fence;
  /** `autoscaler.groupId` */
  groupId: string;
  nodeId: string;
  /** The lease length (interval × retries), as the lease table measures it. */
  leaseMs: number;
}

export interface PgRegistryOptions {
  /** Rows of autoscaler_action kept; older ones are pruned. @default 10_000 */
  keepActions?: number;
  /** Terminated member rows kept (newest first); older ones are pruned. @default 1_000 */
  keepTerminated?: number;
  /** The SP pair's lease group (`streamProcessor.groupId`), whose epoch fences SP events. @default 'sp' */
  spGroupId?: string;
  /** Every write only while this node holds the pair's lease (README "The autoscaler pair"). @default none */
  fence?: RegistryFence;
}

export type ResolvedPgRegistryOptions = Required<Omit<PgRegistryOptions, 'fence'>> & {
  fence: RegistryFence | undefined;
};

export function resolvePgRegistryOptions(options: PgRegistryOptions): ResolvedPgRegistryOptions {
  const registryDefaults: ResolvedPgRegistryOptions = {
    keepActions: 10_000,
    keepTerminated: 1_000,
    spGroupId: 'sp',
    fence: undefined,
  };
  return withDefaults(registryDefaults, options);
}
