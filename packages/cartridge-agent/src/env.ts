import path from 'node:path';
import { ConfigError, type ConfigIssue, LOG_LEVELS, type LogLevel } from '@faultline/core';
import type { BrokerEndpoint } from '@faultline/messaging';
import type { AgentOptions } from './agent.js';
import type { SpEndpoint } from './batch-sender.js';

/**
 * The agent's environment contract (README "Members"), written by the local
 * driver (packages/cloud-controller/src/member-env.ts) and by the workload
 * (FAULTLINE_WORKLOAD_PORT). A test feeds the driver's encoder to this parser.
 */
export interface AgentEnv {
  options: Omit<AgentOptions, 'clock' | 'logger' | 'transport' | 'probe' | 'system' | 'connector'>;
  logDir: string | undefined;
  logLevel: LogLevel;
}

const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const HOST = /^[A-Za-z0-9.:[\]-]{1,253}$/;

/** `host:port` (IPv6 as `[::1]:7611`). */
function parseHostPort(text: string): { host: string; port: number } | undefined {
  const colon = text.lastIndexOf(':');
  if (colon <= 0) return undefined;
  const host = text.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  const port = Number(text.slice(colon + 1));
  if (!HOST.test(host) || !Number.isInteger(port) || port < 1 || port > 65_535) return undefined;
  return { host, port };
}

/** Reads and validates the environment; a ConfigError names every bad variable (runMain: exit 2). */
export function parseAgentEnv(env: NodeJS.ProcessEnv): AgentEnv {
  const issues: ConfigIssue[] = [];
  const bad = (key: string, reason: string) => issues.push({ key, reason });
  const need = (key: string): string => {
    const value = env[key];
    if (value === undefined || value === '') bad(key, 'is required');
    return value ?? '';
  };
  const id = (key: string): string => {
    const value = need(key);
    if (value && !ID.test(value)) bad(key, `is not a valid id: ${JSON.stringify(value)}`);
    return value;
  };
  const int = (key: string, fallback: number | undefined, min: number): number | undefined => {
    const text = env[key];
    if (text === undefined || text === '') return fallback;
    const value = Number(text);
    if (!Number.isSafeInteger(value) || value < min)
      bad(key, `must be an integer ≥ ${min}, not ${JSON.stringify(text)}`);
    return value;
  };
  const list = <T>(key: string, parse: (item: string) => T | undefined, what: string): T[] => {
    const items = need(key)
      .split(',')
      .map((item) => item.trim())
      .filter(Boolean);
    const parsed = items.map(parse);
    const wrong = items.filter((_, index) => parsed[index] === undefined);
    if (wrong.length > 0) bad(key, `expected ${what}, got ${wrong.map((w) => JSON.stringify(w)).join(', ')}`);
    if (items.length === 0 && env[key]) bad(key, `expected ${what}`);
    return parsed.filter((item): item is T => item !== undefined);
  };

  const member = {
    memberId: id('FAULTLINE_MEMBER_ID'),
    clusterId: id('FAULTLINE_CLUSTER_ID'),
    clusterInstanceId: id('FAULTLINE_CLUSTER_INSTANCE_ID'),
    networkPartitionId: id('FAULTLINE_NETWORK_PARTITION_ID'),
    partitionId: id('FAULTLINE_PARTITION_ID'),
  };
  const spEndpoints: SpEndpoint[] = list('FAULTLINE_SP_ENDPOINTS', parseHostPort, 'host:port,host:port');
  const brokers: BrokerEndpoint[] = list(
    'FAULTLINE_BROKERS',
    (item) => {
      const at = item.indexOf('@');
      const name = item.slice(0, at);
      const address = parseHostPort(item.slice(at + 1));
      return at > 0 && ID.test(name) && address ? { name, ...address } : undefined;
    },
    'name@host:port,name@host:port',
  );
  const credentials = { username: need('FAULTLINE_AGENT_USERNAME'), password: need('FAULTLINE_AGENT_PASSWORD') };
  const workloadPort = int('FAULTLINE_WORKLOAD_PORT', undefined, 1);
  if (workloadPort === undefined) bad('FAULTLINE_WORKLOAD_PORT', 'is required');
  else if (workloadPort > 65_535) bad('FAULTLINE_WORKLOAD_PORT', 'must be a port');
  const workloadHost = env.FAULTLINE_WORKLOAD_HOST || '127.0.0.1';
  if (!HOST.test(workloadHost)) bad('FAULTLINE_WORKLOAD_HOST', 'is not a host');
  const outboxDir = need('FAULTLINE_OUTBOX_DIR');
  const awaitSubscribers = (env.FAULTLINE_AGENT_AWAIT_SUBSCRIBERS ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (awaitSubscribers.some((s) => !ID.test(s))) bad('FAULTLINE_AGENT_AWAIT_SUBSCRIBERS', 'expected client ids');
  const logLevel = (env.FAULTLINE_LOG_LEVEL || 'info') as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) bad('FAULTLINE_LOG_LEVEL', `must be one of ${LOG_LEVELS.join(', ')}`);
  const options: AgentEnv['options'] = {
    member,
    spEndpoints,
    brokers,
    credentials,
    outboxFile: path.join(outboxDir, `agent-${member.memberId}.outbox`),
    workload: { host: workloadHost, port: workloadPort ?? 0 },
    statIntervalMs: int('FAULTLINE_AGENT_STAT_INTERVAL_MS', undefined, 1),
    maxUnackedBatches: int('FAULTLINE_AGENT_MAX_UNACKED_BATCHES', undefined, 1),
    republishIntervalMs: int('FAULTLINE_MESSAGING_REPUBLISH_INTERVAL_MS', undefined, 1),
    callTimeoutMs: int('FAULTLINE_AGENT_CALL_TIMEOUT_MS', undefined, 1),
    activationPollMs: int('FAULTLINE_AGENT_ACTIVATION_POLL_MS', undefined, 1),
    awaitSubscribers,
  };
  if (issues.length > 0) {
    const message = ['invalid cartridge agent environment:', ...issues.map((i) => `  - ${i.key}: ${i.reason}`)];
    throw new ConfigError('FL_ERR_CONFIG_INVALID', message.join('\n'), { issues });
  }
  return { options, logDir: env.FAULTLINE_LOGGING_DIR || undefined, logLevel };
}
