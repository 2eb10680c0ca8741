import { clusterProbesSchema } from '@faultline/core';
import { describe, expect, it } from 'vitest';
import {
  agentMetricsAddress,
  agentSettingsSchema,
  decodeAgentEnv,
  decodeWorkloadEnv,
  encodeMemberEnv,
  encodeWorkloadPort,
  formatAgentMetricsPort,
  MEMBER_ENV,
  memberEnvError,
  parseAgentMetricsPort,
} from './member-env.js';
import {
  AGENT_ENV,
  agentSettings,
  fullMemberEnvInput,
  memberEnvInput,
  TEST_CREDENTIAL,
  testMember,
} from './testing/index.js';

/** The keys of the issues a decoder returned, or [] when it read the environment. */
function issueKeys(result: { ok: true } | { ok: false; error: { key: string }[] }): string[] {
  return result.ok ? [] : result.error.map((issue) => issue.key);
}

describe('MEMBER_ENV', () => {
  it('names every variable of the contract (README "The member environment")', () => {
    expect(MEMBER_ENV).toEqual({
      memberId: 'FAULTLINE_MEMBER_ID',
      clusterId: 'FAULTLINE_CLUSTER_ID',
      clusterInstanceId: 'FAULTLINE_CLUSTER_INSTANCE_ID',
      networkPartitionId: 'FAULTLINE_NETWORK_PARTITION_ID',
      partitionId: 'FAULTLINE_PARTITION_ID',
      cartridgeType: 'FAULTLINE_CARTRIDGE_TYPE',
      credential: 'FAULTLINE_MEMBER_CREDENTIAL',
      spEndpoints: 'FAULTLINE_SP_ENDPOINTS',
      brokers: 'FAULTLINE_BROKERS',
      statIntervalMs: 'FAULTLINE_AGENT_STAT_INTERVAL_MS',
      maxUnackedBatches: 'FAULTLINE_AGENT_MAX_UNACKED_BATCHES',
      republishIntervalMs: 'FAULTLINE_MESSAGING_REPUBLISH_INTERVAL_MS',
      callTimeoutMs: 'FAULTLINE_AGENT_CALL_TIMEOUT_MS',
      activationPollMs: 'FAULTLINE_AGENT_ACTIVATION_POLL_MS',
      thriftCaFile: 'FAULTLINE_TLS_THRIFT_CA_FILE',
      mqttCaFile: 'FAULTLINE_TLS_MQTT_CA_FILE',
      metrics: 'FAULTLINE_AGENT_METRICS',
      metricsHost: 'FAULTLINE_AGENT_METRICS_HOST',
      metricsPort: 'FAULTLINE_AGENT_METRICS_PORT',
      metricsPortFile: 'FAULTLINE_AGENT_METRICS_PORT_FILE',
      probes: 'FAULTLINE_AGENT_PROBES',
      awaitSubscribers: 'FAULTLINE_AGENT_AWAIT_SUBSCRIBERS',
      outboxDir: 'FAULTLINE_OUTBOX_DIR',
      logDir: 'FAULTLINE_LOGGING_DIR',
      logLevel: 'FAULTLINE_LOG_LEVEL',
      workloadPort: 'FAULTLINE_WORKLOAD_PORT',
      workloadHost: 'FAULTLINE_WORKLOAD_HOST',
      workloadLatencyMs: 'FAULTLINE_WORKLOAD_LATENCY_MS',
      readyFile: 'FAULTLINE_WORKLOAD_READY_FILE',
      agentMain: 'FAULTLINE_AGENT_MAIN',
    });
  });
});

describe('encodeMemberEnv', () => {
  it('writes the contract, leaving unset settings out', () => {
    expect(encodeMemberEnv(memberEnvInput)).toEqual({
      [MEMBER_ENV.memberId]: 'php-m-1',
      [MEMBER_ENV.clusterId]: 'php',
      [MEMBER_ENV.clusterInstanceId]: 'php-1',
      [MEMBER_ENV.networkPartitionId]: 'np-1',
      [MEMBER_ENV.partitionId]: 'p-1',
      [MEMBER_ENV.cartridgeType]: 'php',
      [MEMBER_ENV.credential]: TEST_CREDENTIAL,
      [MEMBER_ENV.spEndpoints]: '127.0.0.1:7611,::1:7612',
      [MEMBER_ENV.brokers]: 'a@localhost:1883,b@::1:1884',
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
    const bare = encodeMemberEnv({
      ...memberEnvInput,
      agent: { ...agentSettings, awaitSubscribers: [] },
      logDir: undefined,
    });
    expect(bare).not.toHaveProperty(MEMBER_ENV.awaitSubscribers);
    expect(bare).not.toHaveProperty(MEMBER_ENV.logDir);
    expect(encodeWorkloadPort(41_000)).toEqual({ [MEMBER_ENV.workloadPort]: '41000' });
  });
});

describe('decodeAgentEnv', () => {
  it('reads the member identity, endpoints and settings, leaving unset ones to the defaults', () => {
    const { spEndpoints, brokers } = agentSettings;
    expect(decodeAgentEnv(AGENT_ENV)).toEqual({
      ok: true,
      value: {
        member: testMember(),
        credential: TEST_CREDENTIAL,
        agent: {
          spEndpoints,
          brokers,
          statIntervalMs: undefined,
          maxUnackedBatches: undefined,
          republishIntervalMs: undefined,
          callTimeoutMs: undefined,
          activationPollMs: undefined,
          awaitSubscribers: [],
        },
        workload: { host: '127.0.0.1', port: 40123 },
        outboxDir: '/run/outbox',
        logDir: undefined,
        logLevel: 'info',
      },
    });
  });

  it('names every bad or missing variable', () => {
    expect(
      issueKeys(
        decodeAgentEnv({
          ...AGENT_ENV,
          FAULTLINE_MEMBER_ID: '../m',
          FAULTLINE_SP_ENDPOINTS: '127.0.0.1:7611,nohost,10.0.0.1:99999',
          FAULTLINE_BROKERS: '127.0.0.1:1883',
          FAULTLINE_MEMBER_CREDENTIAL: 'agent-secret',
          FAULTLINE_WORKLOAD_PORT: undefined,
          FAULTLINE_AGENT_STAT_INTERVAL_MS: '1.5',
          FAULTLINE_LOG_LEVEL: 'loud',
        }),
      ),
    ).toEqual([
      'FAULTLINE_MEMBER_ID',
      'FAULTLINE_MEMBER_CREDENTIAL',
      'FAULTLINE_SP_ENDPOINTS',
      'FAULTLINE_BROKERS',
      'FAULTLINE_WORKLOAD_PORT',
      'FAULTLINE_LOG_LEVEL',
      'FAULTLINE_AGENT_STAT_INTERVAL_MS',
    ]);
    expect(issueKeys(decodeAgentEnv({}))).toContain('FAULTLINE_OUTBOX_DIR');
    expect(issueKeys(decodeAgentEnv({ ...AGENT_ENV, FAULTLINE_WORKLOAD_PORT: '70000' }))).toEqual([
      'FAULTLINE_WORKLOAD_PORT',
    ]);
    expect(issueKeys(decodeAgentEnv({ ...AGENT_ENV, FAULTLINE_AGENT_AWAIT_SUBSCRIBERS: 'ok,../x' }))).toEqual([
      'FAULTLINE_AGENT_AWAIT_SUBSCRIBERS',
    ]);
  });

  it('requires the member credential, and never repeats a bad one in the reason', () => {
    const { FAULTLINE_MEMBER_CREDENTIAL: _, ...without } = AGENT_ENV;
    expect(decodeAgentEnv(without)).toEqual({
      ok: false,
      error: [{ key: 'FAULTLINE_MEMBER_CREDENTIAL', reason: 'is required' }],
    });
    const secret = `php-m-1:php:np-1:${'s'.repeat(42)}!`;
    const decoded = decodeAgentEnv({ ...AGENT_ENV, FAULTLINE_MEMBER_CREDENTIAL: secret });
    expect(issueKeys(decoded)).toEqual(['FAULTLINE_MEMBER_CREDENTIAL']);
    expect(JSON.stringify(decoded)).not.toContain('sss');
  });

  it('gives the reasons a person can act on', () => {
    const decoded = decodeAgentEnv({ ...AGENT_ENV, FAULTLINE_SP_ENDPOINTS: '', FAULTLINE_WORKLOAD_PORT: 'eighty' });
    expect(decoded).toEqual({
      ok: false,
      error: [
        { key: 'FAULTLINE_SP_ENDPOINTS', reason: 'is required' },
        { key: 'FAULTLINE_WORKLOAD_PORT', reason: 'must be an integer ≥ 1, not "eighty"' },
      ],
    });
    const error = memberEnvError('cartridge agent', decoded.ok ? [] : decoded.error);
    expect(error).toMatchObject({ code: 'FL_ERR_CONFIG_INVALID', issues: decoded.ok ? [] : decoded.error });
    expect(error.message).toBe(
      [
        'invalid cartridge agent environment:',
        '  - FAULTLINE_SP_ENDPOINTS: is required',
        '  - FAULTLINE_WORKLOAD_PORT: must be an integer ≥ 1, not "eighty"',
      ].join('\n'),
    );
  });
});

describe('decodeWorkloadEnv', () => {
  const env = {
    FAULTLINE_MEMBER_ID: 'm-1',
    FAULTLINE_WORKLOAD_READY_FILE: '/tmp/m-1.ready.json',
    FAULTLINE_AGENT_MAIN: '/dist/main.js',
    FAULTLINE_WORKLOAD_LATENCY_MS: '7',
  };

  it('reads the workload’s part, with defaults', () => {
    expect(decodeWorkloadEnv(env)).toEqual({
      ok: true,
      value: {
        memberId: 'm-1',
        host: '127.0.0.1',
        latencyMs: 7,
        readyFile: '/tmp/m-1.ready.json',
        agentMain: '/dist/main.js',
        logDir: undefined,
        logLevel: 'info',
      },
    });
    const { FAULTLINE_WORKLOAD_LATENCY_MS: _, ...withoutLatency } = env;
    expect(decodeWorkloadEnv(withoutLatency)).toMatchObject({ ok: true, value: { latencyMs: 20 } });
  });

  it('names every bad or missing variable', () => {
    expect(
      issueKeys(
        decodeWorkloadEnv({
          FAULTLINE_MEMBER_ID: 'a/b',
          FAULTLINE_WORKLOAD_LATENCY_MS: '-3',
          FAULTLINE_AGENT_MAIN: '/nope.js',
          FAULTLINE_LOG_LEVEL: 'loud',
        }),
      ),
    ).toEqual([
      'FAULTLINE_MEMBER_ID',
      'FAULTLINE_WORKLOAD_LATENCY_MS',
      'FAULTLINE_WORKLOAD_READY_FILE',
      'FAULTLINE_LOG_LEVEL',
    ]);
  });
});

describe('the member environment, round trip', () => {
  it('the agent and the workload read exactly what the driver and the workload wrote', () => {
    const full = fullMemberEnvInput;
    const env = { PATH: '/bin', ...encodeMemberEnv(full), ...encodeWorkloadPort(41_000) };
    const { outboxDir, logDir, logLevel, workload } = full;
    expect(decodeAgentEnv(env)).toEqual({
      ok: true,
      value: {
        member: testMember(),
        credential: full.credential,
        agent: full.agent,
        workload: { host: workload.host, port: 41_000 },
        outboxDir,
        logDir,
        logLevel,
      },
    });
    expect(decodeWorkloadEnv(env)).toEqual({
      ok: true,
      value: { ...workload, memberId: testMember().memberId, logDir, logLevel },
    });
  });
});

describe('the TLS variables (README "TLS")', () => {
  it('carry the CA files to the agent when set, and are absent otherwise', () => {
    const agent = { ...fullMemberEnvInput.agent, thriftCaFile: '/etc/fl/ca.pem', mqttCaFile: '/etc/fl/mqtt-ca.pem' };
    const env = { ...encodeMemberEnv({ ...fullMemberEnvInput, agent }), ...encodeWorkloadPort(41_000) };
    expect(env.FAULTLINE_TLS_THRIFT_CA_FILE).toBe('/etc/fl/ca.pem');
    expect(env.FAULTLINE_TLS_MQTT_CA_FILE).toBe('/etc/fl/mqtt-ca.pem');
    const decoded = decodeAgentEnv(env);
    expect(decoded.ok && decoded.value.agent).toMatchObject({
      thriftCaFile: '/etc/fl/ca.pem',
      mqttCaFile: '/etc/fl/mqtt-ca.pem',
    });
    const plain = decodeAgentEnv({ ...encodeMemberEnv(fullMemberEnvInput), ...encodeWorkloadPort(41_000) });
    expect(plain.ok && Object.keys(plain.value.agent)).not.toContain('thriftCaFile');
  });
});

describe('the agent metrics variables (README "Operations → Agent metrics")', () => {
  it('carry the switch, the address, port 0 and the port file to the agent, and are absent otherwise', () => {
    const agent = { ...fullMemberEnvInput.agent, metrics: false, metricsHost: '::1', metricsPort: 0 };
    const portFile = '/run/members/member-m-1/agent-metrics-port';
    const input = { ...fullMemberEnvInput, agent, metricsPortFile: portFile };
    const env = { ...encodeMemberEnv(input), ...encodeWorkloadPort(41_000) };
    expect(env).toMatchObject({
      FAULTLINE_AGENT_METRICS: 'false',
      FAULTLINE_AGENT_METRICS_HOST: '::1',
      FAULTLINE_AGENT_METRICS_PORT: '0',
      FAULTLINE_AGENT_METRICS_PORT_FILE: portFile,
    });
    // No shared folder is named to a member any more (README "Operations → Agent metrics").
    expect(Object.keys(env).filter((key) => key.includes('TARGETS'))).toEqual([]);
    expect(decodeAgentEnv(env)).toMatchObject({ ok: true, value: { agent, metricsPortFile: portFile } });
    const plain = decodeAgentEnv({ ...encodeMemberEnv(fullMemberEnvInput), ...encodeWorkloadPort(41_000) });
    expect(plain.ok && Object.keys(plain.value.agent)).not.toContain('metrics');
    expect(plain.ok && plain.value.metricsPortFile).toBeUndefined();
  });

  it('write the port file as the port alone and read back nothing else', () => {
    expect(formatAgentMetricsPort(41_234)).toBe('41234\n');
    expect(parseAgentMetricsPort(formatAgentMetricsPort(41_234))).toEqual({ ok: true, value: 41_234 });
    expect(parseAgentMetricsPort('1')).toEqual({ ok: true, value: 1 });
    for (const text of [
      '0',
      '65536',
      '99999',
      '',
      '\n',
      '-1',
      '80 ',
      ' 80',
      '0x50',
      '8e1',
      '80\n\n',
      '80\nlabels',
      '1.5',
    ]) {
      expect(parseAgentMetricsPort(text).ok, JSON.stringify(text)).toBe(false);
    }
  });

  it('scrape a wildcard bind on loopback, and an IPv6 address in brackets', () => {
    expect(agentMetricsAddress('127.0.0.1', 9)).toBe('127.0.0.1:9');
    expect(agentMetricsAddress('0.0.0.0', 9)).toBe('127.0.0.1:9');
    expect(agentMetricsAddress('::1', 9)).toBe('[::1]:9');
    expect(agentMetricsAddress('::', 9)).toBe('[::1]:9');
    expect(agentMetricsAddress('[::1]', 9)).toBe('[::1]:9');
    expect(agentMetricsAddress('10.1.2.3', 9)).toBe('10.1.2.3:9');
    expect(agentMetricsAddress('localhost', 9)).toBe('localhost:9');
  });

  it('names a bad switch, host or port', () => {
    const decoded = decodeAgentEnv({
      ...AGENT_ENV,
      FAULTLINE_AGENT_METRICS: 'yes',
      FAULTLINE_AGENT_METRICS_HOST: 'a b',
      FAULTLINE_AGENT_METRICS_PORT: '65536',
    });
    expect(decoded).toEqual({
      ok: false,
      error: [
        { key: 'FAULTLINE_AGENT_METRICS', reason: 'must be true or false' },
        { key: 'FAULTLINE_AGENT_METRICS_HOST', reason: 'is not a host' },
        { key: 'FAULTLINE_AGENT_METRICS_PORT', reason: 'must be a port (0: any free one)' },
      ],
    });
  });
});

describe('agentSettingsSchema', () => {
  it('accepts settings the environment can carry and names every bad field', () => {
    expect(agentSettingsSchema.safeParse(agentSettings).success).toBe(true);
    const result = agentSettingsSchema.safeParse({
      spEndpoints: [{ host: 'x y', port: 0 }],
      brokers: [],
      statIntervalMs: -1,
      awaitSubscribers: ['ok', '../x'],
      callTimeoutMs: 1.5,
      metricsPort: -1,
    });
    expect(result.success).toBe(false);
    expect(result.error?.issues.map((issue) => issue.path.join('.'))).toEqual([
      'spEndpoints.0.host',
      'spEndpoints.0.port',
      'brokers',
      'statIntervalMs',
      'awaitSubscribers.1',
      'callTimeoutMs',
      'metricsPort',
    ]);
  });
});

describe('the probes variable (README "Probes")', () => {
  const probes = clusterProbesSchema.parse({
    liveness: { type: 'tcp', periodMs: 5_000, failureThreshold: 4 },
    readiness: { type: 'exec', command: ['/usr/bin/test', '-f', '/run/ready file'], timeoutMs: 500 },
    startup: { type: 'http', path: '/up?deep=1', expectStatus: 204 },
  });

  it("carries the cluster's probes to the agent as JSON, read back exactly; absent, the agent's defaults", () => {
    const input = { ...fullMemberEnvInput, agent: { ...fullMemberEnvInput.agent, probes } };
    const env = { ...encodeMemberEnv(input), ...encodeWorkloadPort(41_000) };
    expect(JSON.parse(env.FAULTLINE_AGENT_PROBES ?? '')).toEqual(probes);
    expect(decodeAgentEnv(env)).toMatchObject({ ok: true, value: { agent: { probes } } });
    expect(agentSettingsSchema.safeParse(input.agent).success).toBe(true);
    const plain = decodeAgentEnv({ ...encodeMemberEnv(fullMemberEnvInput), ...encodeWorkloadPort(41_000) });
    expect(plain.ok && Object.keys(plain.value.agent)).not.toContain('probes');
  });

  it('names every bad field of a hand-written value, and refuses what is not JSON', () => {
    const read = (text: string) => decodeAgentEnv({ ...AGENT_ENV, FAULTLINE_AGENT_PROBES: text });
    expect(read('{"liveness":')).toEqual({
      ok: false,
      error: [{ key: 'FAULTLINE_AGENT_PROBES', reason: 'is not JSON' }],
    });
    const bad = read(
      JSON.stringify({
        liveness: { type: 'exec', command: [] },
        readiness: { type: 'tcp', path: '/x' },
        startup: { type: 'http', failureThreshold: 3 },
      }),
    );
    expect(bad.ok).toBe(false);
    const reason = bad.ok ? '' : (bad.error[0]?.reason ?? '');
    expect(reason).toMatch(/liveness\.command: must name the program/);
    expect(reason).toMatch(/readiness: Unrecognized key: "path"/);
    expect(reason).toMatch(/startup\.failureThreshold: the startup probe has no failureThreshold/);
    expect(read('x'.repeat(100_000))).toMatchObject({
      ok: false,
      error: [{ reason: expect.stringMatching(/longer than/) }],
    });
    // A partial value is filled with the defaults, as the configuration would have been.
    expect(read('{"liveness":{"type":"tcp"}}')).toMatchObject({
      ok: true,
      value: {
        agent: {
          probes: {
            liveness: { type: 'tcp', timeoutMs: 2_000, failureThreshold: 3, successThreshold: 1 },
            startup: { type: 'http', path: '/healthz', expectStatus: 200 },
          },
        },
      },
    });
  });
});
