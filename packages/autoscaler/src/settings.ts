import path from 'node:path';
import type { AgentSettings, Iaas } from '@faultline/cloud-controller';
import type { Clock, FaultlineConfig, Logger } from '@faultline/core';
import type { AutoscalerOptions } from './autoscaler.js';
import type { Registry } from './registry.js';

/** The client id the SP's and the agents' publishers wait for (`awaitSubscribers`): it must be exactly this. */
export const AUTOSCALER_CLIENT_ID = 'autoscaler';

/**
 * What every member's cartridge agent is told, from the configuration: the
 * SP nodes' Thrift ports (it fails over between them), the broker pair, the
 * `agent` account, and the intervals. Agents wait for the autoscaler's
 * subscriber before publishing their instance status, so an InstanceActivated
 * sent while the autoscaler restarts is not lost.
 */
export function agentSettingsFrom(config: FaultlineConfig): AgentSettings {
  return {
    spEndpoints: config.streamProcessor.nodes.map((n) => ({ host: n.host, port: n.thriftPort })),
    brokers: config.brokers.nodes.map((b) => ({ name: b.name, host: b.host, port: b.port })),
    credentials: { ...config.brokers.credentials.agent },
    statIntervalMs: config.agent.statIntervalMs,
    maxUnackedBatches: config.agent.maxUnackedBatches,
    republishIntervalMs: config.messaging.republishIntervalMs,
    awaitSubscribers: [AUTOSCALER_CLIENT_ID],
  };
}

/** The autoscaler's options from the configuration (`clusters`, `autoscaler`, `messaging`, `cep.faultTimeoutMs`). */
export function autoscalerOptionsFrom(
  config: FaultlineConfig,
  deps: { iaas: Iaas; registry: Registry; logger?: Logger; clock?: Clock },
): AutoscalerOptions {
  const { autoscaler, messaging } = config;
  return {
    clusters: config.clusters,
    iaas: deps.iaas,
    registry: deps.registry,
    agent: agentSettingsFrom(config),
    brokers: config.brokers.nodes.map((b) => ({ name: b.name, host: b.host, port: b.port })),
    credentials: { ...config.brokers.credentials.autoscaler },
    outboxFile: path.join(messaging.outboxDir, `${AUTOSCALER_CLIENT_ID}.outbox`),
    pingIntervalMs: messaging.pingIntervalMs,
    resubscribeIntervalMs: messaging.resubscribeIntervalMs,
    republishIntervalMs: messaging.republishIntervalMs,
    maxMessageBytes: messaging.maxMessageBytes,
    monitorIntervalMs: autoscaler.monitorIntervalMs,
    pendingTimeoutMs: autoscaler.pendingTimeoutMs,
    backoffInitialMs: autoscaler.backoffInitialMs,
    backoffMaxMs: autoscaler.backoffMaxMs,
    scaleDownConsecutive: autoscaler.scaleDownConsecutive,
    faultStormWindowMs: config.cep.faultTimeoutMs,
    ...(deps.logger ? { logger: deps.logger } : {}),
    ...(deps.clock ? { clock: deps.clock } : {}),
  };
}
