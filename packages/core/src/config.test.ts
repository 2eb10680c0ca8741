import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { envNameFor, loadConfig, resolveConfig } from './config.js';
import { DEFAULTS } from './defaults.js';
import { ConfigError } from './errors.js';

function writeYaml(text: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'faultline-config-'));
  const file = path.join(dir, 'faultline.yaml');
  writeFileSync(file, text);
  return file;
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('loads the default stack file', () => {
    const config = loadConfig({ env: {} });
    expect(config.clusters.map((c) => c.id)).toEqual(['php', 'tomcat']);
    expect(config.brokers.nodes).toHaveLength(2);
    expect(config.streamProcessor.nodes.map((n) => n.id)).toEqual(['sp-1', 'sp-2']);
  });

  it('fills every default for an empty file', () => {
    const config = resolveConfig({}, { env: {} });
    expect(config.messaging).toEqual({
      pingIntervalMs: 1_000,
      resubscribeIntervalMs: 30_000,
      republishIntervalMs: 60_000,
      maxMessageBytes: DEFAULTS.maxMessageBytes,
      outboxDir: '.faultline/outbox',
      outboxMaxBytes: DEFAULTS.outboxMaxBytes,
    });
    expect(config.streamProcessor.heartbeatIntervalMs).toBe(1_000);
    expect(config.streamProcessor.heartbeatMaxRetry).toBe(2);
    expect(config.cep.faultTimeoutMs).toBe(60_000);
    expect(config.agent.statIntervalMs).toBe(15_000);
    expect(config.autoscaler.pendingTimeoutMs).toBe(900_000);
    expect(config.autoscaler.monitorIntervalMs).toBe(15_000);
    expect(config.clusters).toEqual([]);
  });

  it('applies env overrides by key name, coerced to the key type', () => {
    const config = resolveConfig(
      {},
      {
        env: {
          FAULTLINE_CEP_FAULT_TIMEOUT_MS: '5000',
          FAULTLINE_LOG_LEVEL: 'debug',
          DATABASE_URL: 'postgres://u:p@db:5432/x',
          FAULTLINE_BROKERS_KIND: 'mosquitto',
        },
      },
    );
    expect(config.cep.faultTimeoutMs).toBe(5_000);
    expect(config.logging.level).toBe('debug');
    expect(config.database.url).toBe('postgres://u:p@db:5432/x');
    expect(config.brokers.kind).toBe('mosquitto');
  });

  it('names the env variable when an override is invalid', () => {
    const error = configError(() => resolveConfig({}, { env: { FAULTLINE_CEP_FAULT_TIMEOUT_MS: 'soon' } }));
    expect(error.issues[0]?.key).toBe('cep.faultTimeoutMs');
    expect(error.issues[0]?.reason).toContain('FAULTLINE_CEP_FAULT_TIMEOUT_MS');
  });

  it('gives a broker node a health port only where Faultline serves it (aedes), and binds health to loopback', () => {
    const nodes = [{ name: 'a', port: 1883, healthPort: 7921 }];
    const aedes = resolveConfig({ brokers: { kind: 'aedes', nodes } }, { env: {} });
    expect(aedes.brokers.nodes[0]).toMatchObject({ healthPort: 7921, healthHost: '127.0.0.1' });
    expect(resolveConfig({}, { env: {} }).streamProcessor.nodes[0]?.statusHost).toBe('127.0.0.1');
    const error = configError(() => resolveConfig({ brokers: { kind: 'mosquitto', nodes } }, { env: {} }));
    expect(error.issues[0]?.key).toBe('brokers.nodes');
    expect(error.issues[0]?.reason).toContain('kind aedes');
  });

  it('derives env names from key paths', () => {
    expect(envNameFor(['streamProcessor', 'heartbeatIntervalMs'])).toBe(
      'FAULTLINE_STREAM_PROCESSOR_HEARTBEAT_INTERVAL_MS',
    );
  });

  it('names the key and the reason for a bad value', () => {
    const file = writeYaml('cep:\n  faultTimeoutMs: -5\n');
    const error = configError(() => loadConfig({ path: file, env: {} }));
    expect(error.code).toBe('FL_ERR_CONFIG_INVALID');
    expect(error.issues.map((i) => i.key)).toEqual(['cep.faultTimeoutMs']);
    expect(error.message).toContain('cep.faultTimeoutMs');
    expect(error.message).toContain(file);
  });

  it('refuses a misspelt key instead of ignoring it', () => {
    const error = configError(() => resolveConfig({ cep: { faultTimeout: 5 } }, { env: {} }));
    expect(error.message).toMatch(/faultTimeout/);
  });

  it('checks cross-field rules: min ≤ max, unique cluster ids', () => {
    const cluster = { id: 'c', cartridgeType: 'php', min: 5, max: 2 };
    const error = configError(() => resolveConfig({ clusters: [cluster, cluster] }, { env: {} }));
    const keys = error.issues.map((i) => i.key);
    expect(keys).toContain('clusters.0.min');
  });

  it('checks the autoscaler pair: unique node ids, its own lease group, a margin inside its lease', () => {
    const node = { id: 'autoscaler-a', healthPort: 7911 };
    const keysOf = (autoscaler: object, streamProcessor: object = {}) =>
      configError(() => resolveConfig({ autoscaler, streamProcessor }, { env: {} })).issues.map((i) => i.key);
    expect(keysOf({ nodes: [node, node] })).toContain('autoscaler.nodes');
    expect(keysOf({ groupId: 'sp' })).toContain('autoscaler.groupId');
    expect(keysOf({ fencingMarginMs: 2_000 })).toContain('autoscaler.fencingMarginMs');
    expect(resolveConfig({}, { env: {} }).autoscaler.nodes.map((n) => n.id)).toEqual(['autoscaler-a', 'autoscaler-b']);
  });

  it('refuses a second witness whose window forgets each restart before the next fault', () => {
    const cluster = (secondWitness: object) => ({ id: 'php', cartridgeType: 'php', min: 1, max: 2, secondWitness });
    const keysOf = (secondWitness: object) =>
      configError(() =>
        resolveConfig({ cep: { faultTimeoutMs: 60_000 }, clusters: [cluster(secondWitness)] }, { env: {} }),
      ).issues.map((i) => i.key);
    // 60 s + 15 s a fault: 2 restarts need a window of at least 225 s.
    expect(keysOf({ enabled: true, maxRestarts: 2, withinMs: 224_999 })).toEqual(['clusters.0.secondWitness.withinMs']);
    expect(
      resolveConfig(
        { cep: { faultTimeoutMs: 60_000 }, clusters: [cluster({ enabled: true, maxRestarts: 2, withinMs: 225_000 })] },
        { env: {} },
      ).clusters[0]?.secondWitness,
    ).toMatchObject({ withinMs: 225_000 });
  });

  it("checks the passive's tick wait (at most half the summary interval) and the summary interval (at most half the fault timeout)", () => {
    const keysOf = (cep: object) => configError(() => resolveConfig({ cep }, { env: {} })).issues.map((i) => i.key);
    expect(keysOf({ passiveTickWaitMs: 7_501 })).toEqual(['cep.passiveTickWaitMs']);
    expect(keysOf({ summaryIntervalMs: 4_000, passiveTickWaitMs: 2_001 })).toEqual(['cep.passiveTickWaitMs']);
    // Summaries sparser than half the fault timeout: the autoscaler would read a silent detector between two.
    // Not given: 15 s, or a quarter of the fault timeout when that is shorter.
    expect(resolveConfig({ cep: { faultTimeoutMs: 6_000 } }, { env: {} }).cep.summaryIntervalMs).toBe(1_500);
    expect(resolveConfig({}, { env: {} }).cep.summaryIntervalMs).toBe(15_000);
    expect(keysOf({ faultTimeoutMs: 6_000, summaryIntervalMs: 3_001 })).toEqual(['cep.summaryIntervalMs']);
    expect(resolveConfig({ cep: { faultTimeoutMs: 6_000, summaryIntervalMs: 3_000 } }, { env: {} }).cep).toMatchObject({
      summaryIntervalMs: 3_000,
    });
    expect(resolveConfig({ cep: { passiveTickWaitMs: 7_500 } }, { env: {} }).cep.passiveTickWaitMs).toBe(7_500);
    expect(resolveConfig({ cep: { passiveTickWaitMs: 0 } }, { env: {} }).cep.passiveTickWaitMs).toBe(0);
  });

  it('refuses a cluster id too long to leave room for member ids, and ids outside the pattern', () => {
    const cluster = { cartridgeType: 'php', min: 1, max: 1 };
    expect(resolveConfig({ clusters: [{ ...cluster, id: 'c'.repeat(121) }] }, { env: {} }).clusters).toHaveLength(1);
    for (const id of ['c'.repeat(122), 'php/1', 'php\u001b[2J']) {
      const keys = configError(() => resolveConfig({ clusters: [{ ...cluster, id }] }, { env: {} })).issues.map(
        (i) => i.key,
      );
      expect(keys).toEqual(['clusters.0.id']);
    }
  });

  it('reports invalid YAML and a missing file with their own codes', () => {
    const broken = writeYaml('cep: [unclosed\n');
    expect(configError(() => loadConfig({ path: broken, env: {} })).issues[0]?.key).toBe('(yaml)');
    const missing = configError(() => loadConfig({ path: '/nonexistent/faultline.yaml', env: {} }));
    expect(missing.code).toBe('FL_ERR_CONFIG_NOT_FOUND');
  });

  it('takes the file from FAULTLINE_CONFIG', () => {
    const file = writeYaml('clusters:\n  - { id: one, cartridgeType: php, min: 1, max: 1 }\n');
    expect(loadConfig({ env: { FAULTLINE_CONFIG: file } }).clusters[0]?.id).toBe('one');
  });
});

describe('brokers.credentials', () => {
  it('has no default password: each role gets its name as username and nothing else', () => {
    const config = resolveConfig({}, { env: {} });
    expect(config.brokers.credentials).toEqual({
      sp: { username: 'sp' },
      autoscaler: { username: 'autoscaler' },
      observer: { username: 'observer' },
    });
  });

  it('takes a password or a password file, not both', () => {
    const config = resolveConfig(
      { brokers: { credentials: { sp: { password: 'pw' }, observer: { username: 'o', passwordFile: '/x' } } } },
      { env: {} },
    );
    expect(config.brokers.credentials.sp).toEqual({ username: 'sp', password: 'pw' });
    expect(config.brokers.credentials.observer).toEqual({ username: 'o', passwordFile: '/x' });
    const error = configError(() =>
      resolveConfig({ brokers: { credentials: { sp: { password: 'pw', passwordFile: '/x' } } } }, { env: {} }),
    );
    expect(error.issues.map((i) => i.key)).toEqual(['brokers.credentials.sp']);
  });

  it('takes a password file from FAULTLINE_BROKERS_CREDENTIALS_<ROLE>_PASSWORD_FILE, a key the file does not set', () => {
    const config = resolveConfig(
      {},
      { env: { FAULTLINE_BROKERS_CREDENTIALS_AUTOSCALER_PASSWORD_FILE: '/run/secrets/autoscaler' } },
    );
    expect(config.brokers.credentials.autoscaler).toEqual({
      username: 'autoscaler',
      passwordFile: '/run/secrets/autoscaler',
    });
    expect(config.brokers.credentials.sp).toEqual({ username: 'sp' });
  });

  it('takes the members’ folder and runtime from the environment, as stack up hands them to the autoscaler', () => {
    expect(resolveConfig({}, { env: {} }).cloudController.local).toEqual({
      memberUser: 'faultline-member',
      membersDir: '.faultline/members',
    });
    const config = resolveConfig(
      {},
      {
        env: {
          FAULTLINE_CLOUD_CONTROLLER_LOCAL_MEMBERS_DIR: '/srv/state/members',
          FAULTLINE_CLOUD_CONTROLLER_LOCAL_RUNTIME_DIR: '/srv/state/runtime',
        },
      },
    );
    expect(config.cloudController.local).toMatchObject({
      membersDir: '/srv/state/members',
      runtimeDir: '/srv/state/runtime',
    });
  });
});
