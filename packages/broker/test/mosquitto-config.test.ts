import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { BROKER_CREDENTIAL_ROLES, ensureSecretFile, resolveConfig } from '@faultline/core';
import { issueMemberCredential, memberBrokerAccount } from '@faultline/protocol';
import { TEST_MEMBER_KEY } from '@faultline/protocol/testing';
import { freePort, mosquittoAvailable } from '@faultline/test-support';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { brokerUsers, MosquittoMemberAccounts, writeMosquittoConfig } from '../src/index.js';
import { connackRefusal, connect } from './mqtt.js';

// The generated files are checked by the broker that reads them.
const tools = mosquittoAvailable();
const MOSQUITTO = ['/usr/sbin/mosquitto', '/usr/local/sbin/mosquitto'].find((file) => existsSync(file)) ?? 'mosquitto';

describe.skipIf(!tools)('writeMosquittoConfig with the real Mosquitto', () => {
  const dirs: string[] = [];
  const tempDir = async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'faultline-mosq-conf-'));
    dirs.push(dir);
    return dir;
  };
  afterAll(async () => {
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
  });

  it('hashes the passwords, keeps the files private, and Mosquitto accepts them', async () => {
    const dir = await tempDir();
    const port = await freePort();
    // A password with a colon and a space: the plain file splits at the first colon only.
    const users = [
      { username: 'sp', password: 'se:cret with space', role: 'sp' as const },
      { username: 'ops', password: 'ops-pw', role: 'observer' as const },
    ];
    const files = await writeMosquittoConfig({ dir, name: 'a', port, users });
    expect(files).toEqual({
      configFile: path.join(dir, 'mosquitto.conf'),
      passwordFile: path.join(dir, 'passwd'),
      aclFile: path.join(dir, 'acl'),
    });
    const passwd = await readFile(files.passwordFile, 'utf8');
    expect(passwd).not.toContain('se:cret');
    expect(passwd).toMatch(/^sp:\$7\$/m);
    expect(passwd).toMatch(/^ops:\$7\$/m);
    for (const file of Object.values(files)) expect((await stat(file)).mode & 0o777).toBe(0o600);

    const broker = spawn(MOSQUITTO, ['-c', files.configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    broker.stderr.on('data', (chunk) => {
      log += chunk;
    });
    const exited = new Promise<void>((resolve) => broker.once('exit', () => resolve()));
    try {
      await vi.waitFor(() => expect(log).toContain(`listen socket on port ${port}`), { timeout: 5_000 });
      const url = `mqtt://127.0.0.1:${port}`;
      const sp = await connect(url, { username: 'sp', password: 'se:cret with space' });
      await sp.end();
      expect(await connackRefusal(url, { username: 'sp', password: 'se' })).toBe(5);
      expect(await connackRefusal(url)).toBe(5);
    } finally {
      broker.kill('SIGTERM');
      await exited;
    }
  });

  it('accepts every role account as the stack generates them (a password file each)', async () => {
    const dir = await tempDir();
    const port = await freePort();
    const credentials = Object.fromEntries(
      BROKER_CREDENTIAL_ROLES.map((role) => {
        const file = path.join(dir, 'secrets', `broker-${role}.password`);
        ensureSecretFile(file);
        return [role, { passwordFile: file }];
      }),
    );
    const config = resolveConfig({ brokers: { kind: 'mosquitto', credentials } }, { env: {} });
    const users = brokerUsers(config);
    const files = await writeMosquittoConfig({ dir: path.join(dir, 'broker-a'), name: 'a', port, users });
    const broker = spawn(MOSQUITTO, ['-c', files.configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    broker.stderr.on('data', (chunk) => {
      log += chunk;
    });
    const exited = new Promise<void>((resolve) => broker.once('exit', () => resolve()));
    try {
      await vi.waitFor(() => expect(log).toContain(`listen socket on port ${port}`), { timeout: 5_000 });
      const url = `mqtt://127.0.0.1:${port}`;
      for (const user of users) {
        const client = await connect(url, { username: user.username, password: user.password });
        await client.end();
        expect(await connackRefusal(url, { username: user.username, password: `${user.password}x` })).toBe(5);
      }
    } finally {
      broker.kill('SIGTERM');
      await exited;
    }
  });

  it("keeps members' accounts in step with the live members, each bound to its own member id", async () => {
    // Issue 12, item 2: each member's agent has its own broker user; the acl_file's patterns let it
    // publish instance/status only under its own member id. Mosquitto reads a password file, so the
    // accounts follow the members: added before a member starts, removed when it is gone.
    const dir = path.join(await tempDir(), 'broker-a');
    const port = await freePort();
    const users = [{ username: 'autoscaler', password: 'autoscaler-pw', role: 'autoscaler' as const }];
    const files = await writeMosquittoConfig({ dir, name: 'a', port, users });
    const broker = spawn(MOSQUITTO, ['-c', files.configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    broker.stderr.on('data', (chunk) => {
      log += chunk;
    });
    const exited = new Promise<void>((resolve) => broker.once('exit', () => resolve()));
    const member = (memberId: string) => ({ memberId, clusterId: 'php', networkPartitionId: 'np-1' });
    const account = (memberId: string) =>
      memberBrokerAccount(memberId, issueMemberCredential(TEST_MEMBER_KEY, member(memberId)));
    const accounts = new MosquittoMemberAccounts({
      dirs: [dir],
      memberKey: TEST_MEMBER_KEY,
      reservedUsernames: ['autoscaler'],
    });
    try {
      await vi.waitFor(() => expect(log).toContain(`listen socket on port ${port}`), { timeout: 5_000 });
      const url = `mqtt://127.0.0.1:${port}`;
      expect(await connackRefusal(url, account('php-1'))).toBe(5);

      await accounts.sync([member('php-1'), member('php-2'), member('autoscaler')]);
      expect(accounts.counters).toMatchObject({ written: 1, reloads: 1, reserved: 1 });
      // The platform's account is untouched; a member named like it gets none.
      const watcher = await vi.waitFor(() => connect(url, { username: 'autoscaler', password: 'autoscaler-pw' }));
      expect(await watcher.subscribe('instance/status/#')).toEqual([1]);
      const php1 = await vi.waitFor(() => connect(url, account('php-1')), { timeout: 5_000 });
      // Another member's credential under this name, or this one's under another name: refused.
      expect(await connackRefusal(url, { username: 'php-2', password: account('php-1').password })).toBe(5);
      expect(await connackRefusal(url, account('autoscaler'))).toBe(5);

      // Its own topic passes; another member's topic, another root, the old shared topic do not.
      for (const topic of [
        'instance/status/php-2/InstanceActivatedEvent',
        'instance/status/InstanceActivatedEvent',
        'summarized-health-stats/MemberFaultEvent',
        'ping/autoscaler',
      ]) {
        await php1.mqtt.publishAsync(topic, `forged ${topic}`, { qos: 1 });
      }
      await php1.mqtt.publishAsync('instance/status/php-1/InstanceActivatedEvent', 'own', { qos: 1 });
      await watcher.waitFor('own');
      expect(watcher.received.map((m) => m.topic)).toEqual(['instance/status/php-1/InstanceActivatedEvent']);
      await php1.end();

      // Unchanged set: no write, no reload. A member gone loses its account.
      await accounts.sync([member('php-1'), member('php-2')]);
      expect(accounts.counters).toMatchObject({ written: 1, reloads: 1 });
      await accounts.sync([member('php-2')]);
      expect(accounts.counters).toMatchObject({ written: 2, reloads: 2 });
      await vi.waitFor(async () => expect(await connackRefusal(url, account('php-1'))).toBe(5), { timeout: 5_000 });
      const php2 = await connect(url, account('php-2'));
      await php2.end();
      await watcher.end();
      expect((await stat(files.passwordFile)).mode & 0o777).toBe(0o600);
    } finally {
      broker.kill('SIGTERM');
      await exited;
    }
  });
});
