import type { LogLevel } from '@faultline/core';
import type { MemberSpec } from './iaas.js';

/**
 * The environment contract between the local driver, the workload and the
 * cartridge agent (README "Members"). The agent's parser lives in
 * packages/cartridge-agent/src/env.ts; a test feeds this encoder's output to
 * it so the two sides cannot drift apart. Names of settings that also exist
 * in faultline.yaml are the config's own override names
 * (`agent.statIntervalMs` → FAULTLINE_AGENT_STAT_INTERVAL_MS).
 */
export const MEMBER_ENV = {
  memberId: 'FAULTLINE_MEMBER_ID',
  clusterId: 'FAULTLINE_CLUSTER_ID',
  clusterInstanceId: 'FAULTLINE_CLUSTER_INSTANCE_ID',
  networkPartitionId: 'FAULTLINE_NETWORK_PARTITION_ID',
  partitionId: 'FAULTLINE_PARTITION_ID',
  cartridgeType: 'FAULTLINE_CARTRIDGE_TYPE',
  /** `host:port,host:port` */
  spEndpoints: 'FAULTLINE_SP_ENDPOINTS',
  /** `name@host:port,name@host:port` */
  brokers: 'FAULTLINE_BROKERS',
  agentUsername: 'FAULTLINE_AGENT_USERNAME',
  agentPassword: 'FAULTLINE_AGENT_PASSWORD',
  statIntervalMs: 'FAULTLINE_AGENT_STAT_INTERVAL_MS',
  maxUnackedBatches: 'FAULTLINE_AGENT_MAX_UNACKED_BATCHES',
  republishIntervalMs: 'FAULTLINE_MESSAGING_REPUBLISH_INTERVAL_MS',
  /** `autoscaler,other` */
  awaitSubscribers: 'FAULTLINE_AGENT_AWAIT_SUBSCRIBERS',
  outboxDir: 'FAULTLINE_OUTBOX_DIR',
  logDir: 'FAULTLINE_LOGGING_DIR',
  logLevel: 'FAULTLINE_LOG_LEVEL',
  /** Set by the workload when it starts the agent: the port it listens on. */
  workloadPort: 'FAULTLINE_WORKLOAD_PORT',
  workloadHost: 'FAULTLINE_WORKLOAD_HOST',
  workloadLatencyMs: 'FAULTLINE_WORKLOAD_LATENCY_MS',
  /** Where the workload reports `{ pid, port, agentPid }` once it is ready. */
  readyFile: 'FAULTLINE_WORKLOAD_READY_FILE',
  /** The agent's entry point; the workload starts `node <it>`. */
  agentMain: 'FAULTLINE_AGENT_MAIN',
} as const;

export interface MemberEnvOptions {
  host: string;
  readyFile: string;
  agentMain: string;
  outboxDir: string;
  logDir: string | undefined;
  logLevel: LogLevel;
  /** @default 20 */
  defaultLatencyMs?: number;
}

/**
 * The environment a member's processes start with: the driver's own minus
 * every FAULTLINE_* variable and DATABASE_URL (a member must not inherit the
 * platform's settings or its database password), plus the member's contract.
 */
export function memberEnv(spec: MemberSpec, options: MemberEnvOptions, base: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(base)) {
    if (key.startsWith('FAULTLINE_') || key === 'DATABASE_URL') continue;
    env[key] = value;
  }
  const { agent } = spec;
  const set = (key: keyof typeof MEMBER_ENV, value: string | number | undefined): void => {
    if (value !== undefined) env[MEMBER_ENV[key]] = String(value);
  };
  set('memberId', spec.memberId);
  set('clusterId', spec.clusterId);
  set('clusterInstanceId', spec.clusterInstanceId);
  set('networkPartitionId', spec.networkPartitionId);
  set('partitionId', spec.partitionId);
  set('cartridgeType', spec.cartridgeType);
  set('spEndpoints', agent.spEndpoints.map((e) => `${e.host}:${e.port}`).join(','));
  set('brokers', agent.brokers.map((b) => `${b.name}@${b.host}:${b.port}`).join(','));
  set('agentUsername', agent.credentials.username);
  set('agentPassword', agent.credentials.password);
  set('statIntervalMs', agent.statIntervalMs);
  set('maxUnackedBatches', agent.maxUnackedBatches);
  set('republishIntervalMs', agent.republishIntervalMs);
  if (agent.awaitSubscribers && agent.awaitSubscribers.length > 0) {
    set('awaitSubscribers', agent.awaitSubscribers.join(','));
  }
  set('outboxDir', options.outboxDir);
  set('logDir', options.logDir);
  set('logLevel', options.logLevel);
  set('workloadHost', options.host);
  set('workloadLatencyMs', spec.workload?.latencyMs ?? options.defaultLatencyMs ?? 20);
  set('readyFile', options.readyFile);
  set('agentMain', options.agentMain);
  return env;
}
