import type { FaultlineConfig } from '@faultline/core';
import { type AgentSettings, CLIENT_IDS } from '@faultline/protocol';

/**
 * What every member's cartridge agent is told, from the configuration: the
 * SP nodes' Thrift ports (it fails over between them), the broker pair, the
 * `agent` account, and the intervals. Agents wait for the autoscaler's
 * subscriber before publishing their instance status, so an InstanceActivated
 * sent while the autoscaler restarts is not lost.
 */
export function agentSettingsFrom(config: FaultlineConfig): AgentSettings {
  return {
    spEndpoints: config.streamProcessor.nodes.map((node) => ({ host: node.host, port: node.thriftPort })),
    brokers: config.brokers.nodes.map((broker) => ({ name: broker.name, host: broker.host, port: broker.port })),
    credentials: { ...config.brokers.credentials.agent },
    statIntervalMs: config.agent.statIntervalMs,
    maxUnackedBatches: config.agent.maxUnackedBatches,
    republishIntervalMs: config.messaging.republishIntervalMs,
    awaitSubscribers: [CLIENT_IDS.autoscaler],
  };
}
