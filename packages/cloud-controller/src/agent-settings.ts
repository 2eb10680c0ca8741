import path from 'node:path';
import type { ClusterProbes, FaultlineConfig } from '@faultline/core';
import { type AgentSettings, CLIENT_IDS } from '@faultline/protocol';

/**
 * What the driver tells members' agents: the settings every member gets, and
 * each configured cluster's probes (`clusters[].probes`), of which a member is
 * told only its own cluster's (`memberAgentSettings`).
 */
export interface DriverAgentSettings extends AgentSettings {
  /** By cluster id. A member of a cluster not named here gets `probes`, or else the agent's defaults. */
  clusterProbes?: Readonly<Record<string, ClusterProbes>>;
}

/**
 * What every member's cartridge agent is told, from the configuration: the
 * SP nodes' Thrift ports (it fails over between them), the broker pair and
 * the intervals, and its cluster's probes. No shared broker account: each
 * member's agent logs in as its own member, with the credential the driver
 * issues at spawn. Agents wait for the autoscaler's
 * subscriber before publishing their instance status, so an InstanceActivated
 * sent while the autoscaler restarts is not lost.
 */
export function agentSettingsFrom(config: FaultlineConfig): DriverAgentSettings {
  return {
    spEndpoints: config.streamProcessor.nodes.map((node) => ({ host: node.host, port: node.thriftPort })),
    brokers: config.brokers.nodes.map((broker) => ({ name: broker.name, host: broker.host, port: broker.port })),
    statIntervalMs: config.agent.statIntervalMs,
    maxUnackedBatches: config.agent.maxUnackedBatches,
    metrics: config.agent.metrics,
    metricsHost: config.agent.metricsHost,
    metricsPort: config.agent.metricsPort,
    republishIntervalMs: config.messaging.republishIntervalMs,
    awaitSubscribers: [CLIENT_IDS.autoscaler],
    // README "TLS": the CA files, absolute (a member runs in its own folder); absent, plain TCP as before.
    ...(config.tls.thrift ? { thriftCaFile: path.resolve(config.tls.thrift.caFile) } : {}),
    ...(config.tls.mqtt ? { mqttCaFile: path.resolve(config.tls.mqtt.caFile) } : {}),
    // README "Probes": resolved by the config schema (defaults filled); a cluster's period left out is its agent's.
    ...(config.clusters.length > 0
      ? { clusterProbes: Object.fromEntries(config.clusters.map((cluster) => [cluster.id, cluster.probes])) }
      : {}),
  };
}

/**
 * The settings one member of `clusterId` is spawned with: the driver's, and
 * that cluster's probes (none named: `probes`, or the agent's defaults). Own
 * keys only, so a cluster id such as `constructor` finds nothing inherited.
 */
export function memberAgentSettings(settings: DriverAgentSettings, clusterId: string): AgentSettings {
  const { clusterProbes, probes, ...rest } = settings;
  const own =
    clusterProbes !== undefined && Object.hasOwn(clusterProbes, clusterId) ? clusterProbes[clusterId] : probes;
  return own === undefined ? rest : { ...rest, probes: own };
}
