import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ensureSecretFile, resolveConfig } from '@faultline/core';
import { SERVICE_ROLES } from '@faultline/protocol';
import { freePort, mosquittoAvailable } from '@faultline/test-support';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { brokerUsers, writeMosquittoConfig } from '../src/index.js';
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
      SERVICE_ROLES.map((role) => {
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
});
