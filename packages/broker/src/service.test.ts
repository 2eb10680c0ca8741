import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, ensureSecretFile, resolveConfig } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import mqtt, { type MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import {
  brokerNameFrom,
  brokerServiceConfig,
  brokerUsers,
  startBrokerService,
  usersFromCredentials,
} from './service.js';

describe('brokerNameFrom', () => {
  it('reads --name in both spellings, before the environment', () => {
    expect(brokerNameFrom(['--name', 'a'], {})).toBe('a');
    expect(brokerNameFrom(['--name=b'], { FAULTLINE_BROKER_NAME: 'a' })).toBe('b');
    expect(brokerNameFrom([], { FAULTLINE_BROKER_NAME: 'a' })).toBe('a');
  });

  it('is undefined when neither is set or both are empty', () => {
    expect(brokerNameFrom([], {})).toBeUndefined();
    expect(brokerNameFrom(['--name='], { FAULTLINE_BROKER_NAME: '' })).toBeUndefined();
    expect(brokerNameFrom(['--verbose', 'x'], {})).toBeUndefined();
  });
});

describe('usersFromCredentials', () => {
  it('turns each role key into one user of that role', () => {
    expect(
      usersFromCredentials({
        sp: { username: 'sp', password: 'p1' },
        observer: { username: 'ops', password: 'p2' },
      }),
    ).toEqual([
      { username: 'sp', password: 'p1', role: 'sp' },
      { username: 'ops', password: 'p2', role: 'observer' },
    ]);
  });
});

describe('brokerServiceConfig', () => {
  const secrets = path.join(mkdtempSync(path.join(os.tmpdir(), 'faultline-broker-')), 'secrets');
  const observerFile = path.join(secrets, 'observer');
  const memberKeyFile = path.join(secrets, 'member.key');
  ensureSecretFile(observerFile);
  ensureSecretFile(memberKeyFile);
  const nodes = [
    { name: 'a', port: 1883 },
    { name: 'b', host: '0.0.0.0', port: 1884 },
  ];
  const config = resolveConfig(
    {
      brokers: {
        nodes,
        credentials: {
          sp: { password: 'sp-pw' },
          autoscaler: { username: 'scaler', password: 'autoscaler-pw' },
          observer: { passwordFile: observerFile },
        },
      },
      security: { memberKeyFile },
    },
    { env: {} },
  );

  it('picks the named node, every configured credential (a password file read) and the member key', () => {
    const service = brokerServiceConfig(config, 'b');
    expect(service.node).toEqual({ name: 'b', host: '0.0.0.0', port: 1884, healthHost: '127.0.0.1' });
    // No shared `agent` account: members log in as themselves.
    expect(service.users.map((user) => user.role)).toEqual(['sp', 'autoscaler', 'observer']);
    expect(service.users[0]).toEqual({ username: 'sp', password: 'sp-pw', role: 'sp' });
    expect(service.users[1]).toEqual({ username: 'scaler', password: 'autoscaler-pw', role: 'autoscaler' });
    expect(service.users[2]?.password).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(service.memberKey.length).toBeGreaterThanOrEqual(32);
  });

  it('refuses to start without the member key file, naming its key', () => {
    const without = resolveConfig(
      {
        brokers: { nodes, credentials: config.brokers.credentials },
        security: { memberKeyFile: `${memberKeyFile}.missing` },
      },
      { env: {} },
    );
    expect(() => brokerServiceConfig(without, 'a')).toThrow(/security\.memberKeyFile/);
  });

  it('has no built-in password: a role with neither password nor file names its key', () => {
    const bare = resolveConfig({ brokers: { nodes, credentials: { sp: { password: 'sp-pw' } } } }, { env: {} });
    expect(() => brokerUsers(bare)).toThrow(ConfigError);
    expect(() => brokerServiceConfig(bare, 'a')).toThrow(/brokers\.credentials\.autoscaler: no password/);
  });

  it('names brokers.nodes when the node is unknown', () => {
    let caught: unknown;
    try {
      brokerServiceConfig(config, 'c');
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).code).toBe('FL_ERR_CONFIG_INVALID');
    expect((caught as ConfigError).issues).toEqual([
      { key: 'brokers.nodes', reason: 'no node named "c" (configured: a, b)' },
    ]);
  });

  it('asks for --name when there is none', () => {
    expect(() => brokerServiceConfig(config, undefined)).toThrow(/--name or set FAULTLINE_BROKER_NAME/);
  });
});

describe('startBrokerService', () => {
  it('logs `broker listening` with the name and the actual port', async () => {
    const log = createMemoryLogger();
    const broker = await startBrokerService(
      {
        node: { name: 'a', host: '127.0.0.1', port: 0, healthHost: '127.0.0.1' },
        users: usersFromCredentials({}),
        memberKey: Buffer.from('a-member-key-of-at-least-32-bytes!!'),
      },
      log,
    );
    try {
      expect(broker.port).toBeGreaterThan(0);
      expect(log.records).toContainEqual(
        expect.objectContaining({
          level: 'info',
          event: 'broker.listening',
          fields: { event: 'broker.listening', name: 'a', host: '127.0.0.1', port: broker.port, roles: [] },
        }),
      );
    } finally {
      await broker.close();
    }
  });

  it('serves its health routes and metrics on healthPort: clients connected, connections refused', async () => {
    const log = createMemoryLogger();
    const users = usersFromCredentials({ sp: { username: 'sp', password: 'sp-password-of-some-length' } });
    const broker = await startBrokerService(
      {
        node: { name: 'a', host: '127.0.0.1', port: 0, healthPort: 0, healthHost: '127.0.0.1' },
        users,
        memberKey: Buffer.from('a-member-key-of-at-least-32-bytes!!'),
      },
      log,
    );
    const clients: MqttClient[] = [];
    try {
      const healthPort = log.records.find((r) => r.event === 'broker.listening')?.fields.healthPort as number;
      const url = `http://127.0.0.1:${healthPort}`;
      const connect = (password: string) =>
        new Promise<boolean>((resolve) => {
          const client = mqtt.connect(`mqtt://127.0.0.1:${broker.port}`, {
            username: 'sp',
            password,
            reconnectPeriod: 0,
            protocolVersion: 4,
          });
          clients.push(client);
          client.on('connect', () => resolve(true));
          client.on('error', () => resolve(false));
        });
      expect(await connect('sp-password-of-some-length')).toBe(true);
      expect(await connect('a-wrong-password')).toBe(false);
      expect((await fetch(`${url}/health`)).status).toBe(200);
      expect(await (await fetch(`${url}/readiness`)).json()).toMatchObject({
        node: 'broker-a',
        ready: true,
        clients: 1,
      });
      // A broker node has no role: no /active, no /passive.
      expect((await fetch(`${url}/active`)).status).toBe(404);
      const metrics = await (await fetch(`${url}/metrics`)).text();
      expect(metrics).toContain('faultline_broker_clients_connected 1\n');
      expect(metrics).toContain('faultline_broker_connections_total 1\n');
      expect(metrics).toContain('faultline_broker_auth_failures_total 1\n');
      expect(metrics).toContain('process_resident_memory_bytes');
    } finally {
      for (const client of clients) client.end(true);
      await broker.close();
    }
    // Closed with the broker.
    const healthPort = log.records.find((r) => r.event === 'broker.listening')?.fields.healthPort as number;
    await expect(fetch(`http://127.0.0.1:${healthPort}/health`)).rejects.toThrow();
  });
});
