import { encodeMemberEnv, encodeWorkloadPort, type MemberEnvInput, memberIdentityOf } from '@faultline/protocol';
import { describe, expect, it } from 'vitest';
import { readAgentEnv } from './agent-env.js';

const base = {
  FAULTLINE_MEMBER_ID: 'm-1',
  FAULTLINE_CLUSTER_ID: 'php',
  FAULTLINE_CLUSTER_INSTANCE_ID: 'php-1',
  FAULTLINE_NETWORK_PARTITION_ID: 'np-1',
  FAULTLINE_PARTITION_ID: 'p-1',
  FAULTLINE_SP_ENDPOINTS: '127.0.0.1:7611, [::1]:7612',
  FAULTLINE_BROKERS: 'a@127.0.0.1:1883,b@localhost:1884',
  FAULTLINE_AGENT_USERNAME: 'agent',
  FAULTLINE_AGENT_PASSWORD: 'secret',
  FAULTLINE_WORKLOAD_PORT: '40123',
  FAULTLINE_OUTBOX_DIR: '/run/outbox',
};

function issuesOf(env: NodeJS.ProcessEnv): string[] {
  try {
    readAgentEnv(env);
  } catch (error) {
    expect(error).toMatchObject({ code: 'FL_ERR_CONFIG_INVALID' });
    return (error as { issues: { key: string }[] }).issues.map((i) => i.key);
  }
  return [];
}

describe('readAgentEnv', () => {
  it('reads the member identity, endpoints and settings, leaving unset ones to the defaults', () => {
    const { options, logDir, logLevel } = readAgentEnv(base);
    expect(options).toEqual({
      member: {
        memberId: 'm-1',
        clusterId: 'php',
        clusterInstanceId: 'php-1',
        networkPartitionId: 'np-1',
        partitionId: 'p-1',
      },
      spEndpoints: [
        { host: '127.0.0.1', port: 7611 },
        { host: '::1', port: 7612 },
      ],
      brokers: [
        { name: 'a', host: '127.0.0.1', port: 1883 },
        { name: 'b', host: 'localhost', port: 1884 },
      ],
      credentials: { username: 'agent', password: 'secret' },
      outboxFile: '/run/outbox/agent-m-1.outbox',
      workload: { host: '127.0.0.1', port: 40123 },
      statIntervalMs: undefined,
      maxUnackedBatches: undefined,
      republishIntervalMs: undefined,
      callTimeoutMs: undefined,
      activationPollMs: undefined,
      awaitSubscribers: [],
    });
    expect(logDir).toBeUndefined();
    expect(logLevel).toBe('info');
  });

  it('names every bad or missing variable in one ConfigError', () => {
    expect(
      issuesOf({
        ...base,
        FAULTLINE_MEMBER_ID: '../m',
        FAULTLINE_SP_ENDPOINTS: '127.0.0.1:7611,nohost,10.0.0.1:99999',
        FAULTLINE_BROKERS: '127.0.0.1:1883',
        FAULTLINE_AGENT_PASSWORD: '',
        FAULTLINE_WORKLOAD_PORT: undefined,
        FAULTLINE_AGENT_STAT_INTERVAL_MS: '1.5',
        FAULTLINE_LOG_LEVEL: 'loud',
      }),
    ).toEqual([
      'FAULTLINE_MEMBER_ID',
      'FAULTLINE_SP_ENDPOINTS',
      'FAULTLINE_BROKERS',
      'FAULTLINE_AGENT_PASSWORD',
      'FAULTLINE_WORKLOAD_PORT',
      'FAULTLINE_LOG_LEVEL',
      'FAULTLINE_AGENT_STAT_INTERVAL_MS',
    ]);
    expect(issuesOf({})).toContain('FAULTLINE_OUTBOX_DIR');
  });

  it('reads exactly what the local driver and the workload write (protocol’s codec, both sides)', () => {
    const input: MemberEnvInput = {
      member: {
        memberId: 'php-m-7',
        clusterId: 'php',
        clusterInstanceId: 'php-1',
        networkPartitionId: 'np-1',
        partitionId: 'p-1',
        cartridgeType: 'php',
      },
      agent: {
        spEndpoints: [
          { host: '127.0.0.1', port: 7611 },
          { host: '127.0.0.1', port: 7612 },
        ],
        brokers: [
          { name: 'a', host: '127.0.0.1', port: 1883 },
          { name: 'b', host: '127.0.0.1', port: 1884 },
        ],
        credentials: { username: 'agent', password: 'a,b@c:d' },
        statIntervalMs: 1_500,
        maxUnackedBatches: 20,
        republishIntervalMs: 10_000,
        awaitSubscribers: ['autoscaler'],
        callTimeoutMs: 300,
        activationPollMs: 250,
      },
      workload: { host: '127.0.0.1', latencyMs: 20, readyFile: '/run/r.json', agentMain: '/main.js' },
      outboxDir: '/run/outbox',
      logDir: '/logs',
      logLevel: 'debug',
    };
    const env = { PATH: '/bin', ...encodeMemberEnv(input), ...encodeWorkloadPort(41_000) };
    const { options, logDir, logLevel } = readAgentEnv(env);
    expect(options).toEqual({
      ...input.agent,
      member: memberIdentityOf(input.member),
      outboxFile: '/run/outbox/agent-php-m-7.outbox',
      workload: { host: '127.0.0.1', port: 41_000 },
    });
    expect({ logDir, logLevel }).toEqual({ logDir: '/logs', logLevel: 'debug' });
  });
});
