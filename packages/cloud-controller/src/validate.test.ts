import { describe, expect, it } from 'vitest';
import type { MemberSpec } from './iaas.js';
import { MEMBER_ENV, memberEnv } from './member-env.js';
import { validateSpec } from './validate.js';

const spec: MemberSpec = {
  memberId: 'php-m-1',
  clusterId: 'php',
  clusterInstanceId: 'php-1',
  networkPartitionId: 'np-1',
  partitionId: 'p-1',
  cartridgeType: 'php',
  agent: {
    spEndpoints: [
      { host: '127.0.0.1', port: 7611 },
      { host: 'sp-2.local', port: 7612 },
    ],
    brokers: [
      { name: 'a', host: '127.0.0.1', port: 1883 },
      { name: 'b', host: '::1', port: 1884 },
    ],
    credentials: { username: 'agent', password: 'p@ss,word' },
    statIntervalMs: 1_500,
    awaitSubscribers: ['autoscaler'],
  },
  workload: { latencyMs: 5 },
};

describe('validateSpec', () => {
  it('accepts a complete spec', () => {
    expect(validateSpec(spec)).toMatchObject({ ok: true });
  });

  it('names every bad field', () => {
    const result = validateSpec({
      ...spec,
      memberId: 'a/b',
      clusterId: '',
      agent: {
        spEndpoints: [{ host: 'x y', port: 0 }],
        brokers: [],
        credentials: { username: 'agent' },
        statIntervalMs: -1,
        awaitSubscribers: ['ok', '../x'],
      },
      workload: { latencyMs: 1.5 },
    });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error.code).toBe('FL_ERR_MEMBER_SPEC_INVALID');
    expect(result.error.issues.map((issue) => issue.split(':')[0])).toEqual([
      'memberId',
      'clusterId',
      'agent.spEndpoints[0].host',
      'agent.spEndpoints[0].port',
      'agent.brokers',
      'agent.credentials.password',
      'agent.statIntervalMs',
      'agent.awaitSubscribers[1]',
      'workload.latencyMs',
    ]);
    expect(validateSpec(null)).toMatchObject({ ok: false });
    expect(validateSpec({ ...spec, agent: 'x' })).toMatchObject({ ok: false });
  });
});

describe('memberEnv', () => {
  const options = {
    host: '127.0.0.1',
    readyFile: '/run/m.ready.json',
    agentMain: '/dist/main.js',
    outboxDir: '/run/outbox',
    logDir: '/logs',
    logLevel: 'debug' as const,
  };

  it('writes the contract and keeps the platform’s own settings and secrets out', () => {
    const env = memberEnv(spec, options, {
      PATH: '/usr/bin',
      FAULTLINE_CONFIG: '/etc/faultline.yaml',
      FAULTLINE_AGENT_STAT_INTERVAL_MS: '99',
      DATABASE_URL: 'postgres://u:secret@db/x',
    });
    expect(env).toEqual({
      PATH: '/usr/bin',
      [MEMBER_ENV.memberId]: 'php-m-1',
      [MEMBER_ENV.clusterId]: 'php',
      [MEMBER_ENV.clusterInstanceId]: 'php-1',
      [MEMBER_ENV.networkPartitionId]: 'np-1',
      [MEMBER_ENV.partitionId]: 'p-1',
      [MEMBER_ENV.cartridgeType]: 'php',
      [MEMBER_ENV.spEndpoints]: '127.0.0.1:7611,sp-2.local:7612',
      [MEMBER_ENV.brokers]: 'a@127.0.0.1:1883,b@::1:1884',
      [MEMBER_ENV.agentUsername]: 'agent',
      [MEMBER_ENV.agentPassword]: 'p@ss,word',
      [MEMBER_ENV.statIntervalMs]: '1500',
      [MEMBER_ENV.awaitSubscribers]: 'autoscaler',
      [MEMBER_ENV.outboxDir]: '/run/outbox',
      [MEMBER_ENV.logDir]: '/logs',
      [MEMBER_ENV.logLevel]: 'debug',
      [MEMBER_ENV.workloadHost]: '127.0.0.1',
      [MEMBER_ENV.workloadLatencyMs]: '5',
      [MEMBER_ENV.readyFile]: '/run/m.ready.json',
      [MEMBER_ENV.agentMain]: '/dist/main.js',
    });
  });
});
