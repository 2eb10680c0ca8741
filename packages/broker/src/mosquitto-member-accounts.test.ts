import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TEST_MEMBER_KEY } from '@faultline/protocol/testing';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MOSQUITTO_PID_FILE, writeMosquittoConfig } from './mosquitto-config.js';
import { MosquittoMemberAccounts } from './mosquitto-member-accounts.js';

const member = (memberId: string) => ({ memberId, clusterId: 'php', networkPartitionId: 'np-1' });

describe('MosquittoMemberAccounts', () => {
  const dirs: string[] = [];
  afterEach(() => {
    vi.restoreAllMocks();
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  async function brokerDir(): Promise<{ dir: string; configFile: string; passwordFile: string }> {
    const dir = path.join(mkdtempSync(path.join(os.tmpdir(), 'faultline-member-accounts-')), 'broker-a');
    dirs.push(path.dirname(dir));
    const users = [{ username: 'autoscaler', password: 'autoscaler-pw', role: 'autoscaler' as const }];
    const { configFile, passwordFile } = await writeMosquittoConfig({ dir, name: 'a', port: 1883, users });
    return { dir, configFile, passwordFile };
  }

  const accountsFor = (dir: string) =>
    new MosquittoMemberAccounts({ dirs: [dir], memberKey: TEST_MEMBER_KEY, reservedUsernames: ['autoscaler'] });

  it.each([
    ['oversized', 'x'.repeat(1 << 20)],
    ['a huge number', '99999999999999999999'],
    ['hexadecimal', '0x10'],
    ['init', '1\n'],
    ['empty', ''],
    ['this process (not a Mosquitto)', `${process.pid}\n`],
  ])('signals nobody for a pid file that is %s, and still writes the accounts', async (_, text) => {
    const { dir, passwordFile } = await brokerDir();
    writeFileSync(path.join(dir, MOSQUITTO_PID_FILE), text);
    const kill = vi.spyOn(process, 'kill');
    const accounts = accountsFor(dir);
    await accounts.sync([member('php-1')]);
    expect(kill).not.toHaveBeenCalled();
    expect(accounts.counters).toEqual({ written: 1, reloads: 0, failures: 0, reserved: 0 });
    expect(readFileSync(passwordFile, 'utf8')).toMatch(/^php-1:\$7\$/m);
  });

  it('signals the Mosquitto of this folder only, and signals again after a failed SIGHUP although the set is unchanged', async () => {
    const { dir, configFile } = await brokerDir();
    // A process that looks like `mosquitto -c <configFile>` to /proc; the spy stands in for the signal.
    const fake = spawn('sh', ['-c', 'while :; do sleep 1; done', configFile], { argv0: 'mosquitto', stdio: 'ignore' });
    try {
      writeFileSync(path.join(dir, MOSQUITTO_PID_FILE), `${fake.pid}\n`);
      const signalled: (string | number | undefined)[] = [];
      let refuse = true;
      vi.spyOn(process, 'kill').mockImplementation((pid, signal) => {
        if (refuse) {
          refuse = false;
          throw Object.assign(new Error('kill EPERM'), { code: 'EPERM' });
        }
        expect(pid).toBe(fake.pid);
        signalled.push(signal);
        return true;
      });
      const accounts = accountsFor(dir);
      await accounts.sync([member('php-1')]);
      expect(accounts.counters).toEqual({ written: 1, reloads: 0, failures: 1, reserved: 0 });
      // Same members: the file is right, but Mosquitto was never told; the next sync tells it.
      await accounts.sync([member('php-1')]);
      expect(accounts.counters).toEqual({ written: 2, reloads: 1, failures: 1, reserved: 0 });
      await accounts.sync([member('php-1')]);
      expect(accounts.counters).toEqual({ written: 2, reloads: 1, failures: 1, reserved: 0 });
      expect(signalled).toEqual(['SIGHUP']);
    } finally {
      fake.kill('SIGKILL');
    }
  });

  it('rewrites a file that lost its members (a broker restarted from writeMosquittoConfig) on the next sync', async () => {
    const { dir, passwordFile } = await brokerDir();
    const accounts = accountsFor(dir);
    await accounts.sync([member('php-1'), member('autoscaler')]);
    expect(accounts.counters).toMatchObject({ written: 1, reserved: 1 });
    await writeMosquittoConfig({
      dir,
      name: 'a',
      port: 1883,
      users: [{ username: 'autoscaler', password: 'autoscaler-pw', role: 'autoscaler' }],
    });
    expect(readFileSync(passwordFile, 'utf8')).not.toMatch(/^php-1:/m);
    await accounts.sync([member('php-1')]);
    expect(accounts.counters).toMatchObject({ written: 2 });
    const passwd = readFileSync(passwordFile, 'utf8');
    expect(passwd).toMatch(/^php-1:\$7\$/m);
    expect(passwd.match(/^autoscaler:/gm)).toHaveLength(1);
  });
});
