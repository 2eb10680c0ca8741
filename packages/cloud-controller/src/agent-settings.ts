import path from 'node:path';
import type { FaultlineConfig } from '@faultline/core';
import { type AgentSettings, CLIENT_IDS } from '@faultline/protocol';

/**
 * What every member's cartridge agent is told, from the configuration: the
 * SP nodes' Thrift ports (it fails over between them), the broker pair and
 * the intervals. No shared broker account: each agent logs in as its own
 * member, with the credential the driver issues at spawn. Agents wait for the autoscaler's
 * subscriber before publishing their instance status, so an InstanceActivated
 * sent while the autoscaler restarts is not lost.
 */
export function agentSettingsFrom(config: FaultlineConfig): AgentSettings {
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
  };
}
