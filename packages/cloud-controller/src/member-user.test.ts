import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type Clock, systemClock, type TimerHandle } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import {
  blockingFolder,
  type CommandResult,
  type CommandRunner,
  checkMemberReach,
  commandRunner,
  ensureMemberUser,
  type MemberUser,
  memberIdentity,
  useraddArgs,
} from './member-user.js';

/**
 * A stand-in for `id` and `useradd` over a user table: records every command
 * and answers as they do (id exits 1 for an unknown user; useradd exits 9 for
 * a taken user or group name).
 */
class FakeAccounts {
  readonly calls: string[][] = [];
  readonly users = new Map<string, { uid: number; gid: number }>();
  readonly groups = new Map<string, number>();
  useraddFails: CommandResult | undefined;

  run: CommandRunner = async (file, args) => {
    this.calls.push([file, ...args]);
    const name = args[args.length - 1] as string;
    if (file === 'id') {
      const user = this.users.get(name);
      if (!user) return { code: 1, stdout: '', stderr: `id: '${name}': no such user` };
      return { code: 0, stdout: `${args[0] === '-u' ? user.uid : user.gid}\n`, stderr: '' };
    }
    if (file === 'useradd') {
      if (this.useraddFails) return this.useraddFails;
      if (this.users.has(name)) return { code: 9, stdout: '', stderr: `useradd: user '${name}' already exists` };
      const ownGroup = args.includes('--user-group');
      if (ownGroup && this.groups.has(name)) return { code: 9, stdout: '', stderr: `useradd: group ${name} exists` };
      const gid = ownGroup ? 900 + this.groups.size : (this.groups.get(name) ?? -1);
      this.groups.set(name, gid);
      this.users.set(name, { uid: 990 + this.users.size, gid });
      return { code: 0, stdout: '', stderr: '' };
    }
    return { code: -1, stdout: '', stderr: '', error: Object.assign(new Error('ENOENT'), { code: 'ENOENT' }) };
  };
}

const useraddCalls = (accounts: FakeAccounts) => accounts.calls.filter((call) => call[0] === 'useradd');

describe('ensureMemberUser', () => {
  it('finds an existing user without creating anything', async () => {
    const accounts = new FakeAccounts();
    accounts.users.set('faultline-member', { uid: 990, gid: 990 });
    expect(await ensureMemberUser('faultline-member', accounts.run)).toEqual({
      name: 'faultline-member',
      uid: 990,
      gid: 990,
      created: false,
    });
    expect(useraddCalls(accounts)).toEqual([]);
  });

  it('creates a missing one as a system account with its own group, no home, no shell and no password', async () => {
    const accounts = new FakeAccounts();
    const user = await ensureMemberUser('faultline-member', accounts.run);
    expect(user).toMatchObject({ name: 'faultline-member', created: true });
    expect(useraddCalls(accounts)).toEqual([['useradd', ...useraddArgs('faultline-member', 'new')]]);
    const args = useraddArgs('m', 'new').join(' ');
    for (const wanted of ['--system', '--no-create-home', '--home-dir /nonexistent', '--shell /usr/sbin/nologin']) {
      expect(args).toContain(wanted);
    }
    expect(args).toMatch(/ --user-group m$/);
    expect(args).not.toMatch(/--password|-p\b|--groups|-G\b/);
    // Idempotent: the second time it is found.
    expect(await ensureMemberUser('faultline-member', accounts.run)).toMatchObject({ created: false, uid: user.uid });
    expect(useraddCalls(accounts)).toHaveLength(1);
  });

  it('joins the existing group of that name when only the group is left', async () => {
    const accounts = new FakeAccounts();
    accounts.groups.set('faultline-member', 777);
    expect(await ensureMemberUser('faultline-member', accounts.run)).toMatchObject({ gid: 777, created: true });
    expect(useraddCalls(accounts)).toEqual([
      ['useradd', ...useraddArgs('faultline-member', 'new')],
      ['useradd', ...useraddArgs('faultline-member', 'existing')],
    ]);
    expect(useraddArgs('m', 'existing').slice(-3)).toEqual(['--gid', 'm', 'm']);
  });

  it('fails with a code, useradd’s reason and what to do when the user cannot be created', async () => {
    const accounts = new FakeAccounts();
    accounts.useraddFails = { code: 1, stdout: '', stderr: 'useradd: cannot lock /etc/passwd; try again later.\n' };
    await expect(ensureMemberUser('faultline-member', accounts.run)).rejects.toMatchObject({
      code: 'FL_ERR_MEMBER_ISOLATION',
      message: expect.stringMatching(
        /member user faultline-member does not exist and could not be created \(useradd exited 1: useradd: cannot lock.*\); create it \(useradd --system .*faultline-member\) or name an existing unprivileged user in cloudController\.local\.memberUser/,
      ),
    });
    accounts.useraddFails = {
      code: -1,
      stdout: '',
      stderr: '',
      error: Object.assign(new Error('spawn useradd ENOENT'), { code: 'ENOENT' }),
    };
    await expect(ensureMemberUser('faultline-member', accounts.run)).rejects.toMatchObject({
      code: 'FL_ERR_MEMBER_ISOLATION',
      message: expect.stringContaining('useradd could not be run (ENOENT)'),
    });
  });

  it('refuses an answer of id that is not a number, rather than taking it for one', async () => {
    for (const answer of ['\n', '0x3e6\n', '1e3\n', ' 990\n', '990 991\n', '99999999999\n']) {
      const run: CommandRunner = async (file) =>
        file === 'id' ? { code: 0, stdout: answer, stderr: '' } : { code: 1, stdout: '', stderr: '' };
      await expect(ensureMemberUser('faultline-member', run), JSON.stringify(answer)).rejects.toMatchObject({
        code: 'FL_ERR_MEMBER_ISOLATION',
        message: expect.stringContaining('cannot look up member user faultline-member: id answered'),
      });
    }
  });

  it('refuses a user that is root or in root’s group', async () => {
    const accounts = new FakeAccounts();
    accounts.users.set('root', { uid: 0, gid: 0 });
    accounts.users.set('wheel-ish', { uid: 1_001, gid: 0 });
    for (const name of ['root', 'wheel-ish']) {
      await expect(ensureMemberUser(name, accounts.run)).rejects.toMatchObject({
        code: 'FL_ERR_MEMBER_ISOLATION',
        message: expect.stringContaining('members must not run as root or in its group'),
      });
    }
  });
});

describe('memberIdentity', () => {
  it('not root: members run as the platform’s user, logged once however often it is asked', async () => {
    const accounts = new FakeAccounts();
    const log = createMemoryLogger();
    const identity = memberIdentity({ user: 'faultline-member', log, platformUid: 1_000, run: accounts.run });
    expect(await identity()).toBeUndefined();
    expect(await identity()).toBeUndefined();
    expect(log.events()).toEqual(['local_iaas.member_isolation_unavailable']);
    expect(log.records[0]?.level).toBe('warn');
    expect(accounts.calls).toEqual([]);
  });

  it('root: the member user, looked up once; a failure is tried again at the next call', async () => {
    const accounts = new FakeAccounts();
    accounts.useraddFails = { code: 1, stdout: '', stderr: 'useradd: cannot lock /etc/passwd' };
    const log = createMemoryLogger();
    const identity = memberIdentity({ user: 'faultline-member', log, platformUid: 0, run: accounts.run });
    await expect(identity()).rejects.toMatchObject({ code: 'FL_ERR_MEMBER_ISOLATION' });
    accounts.useraddFails = undefined;
    const user = await identity();
    expect(user).toMatchObject({ name: 'faultline-member', created: true });
    expect(await identity()).toBe(user);
    expect(log.events()).toEqual(['local_iaas.member_user']);
    expect(useraddCalls(accounts)).toHaveLength(2);
  });
});

describe('what the member user can reach', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  const user: MemberUser = { name: 'faultline-member', uid: 54_321, gid: 54_321, created: false };

  it('names the first folder on the way its modes do not let the user pass', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faultline-reach-'));
    dirs.push(dir);
    chmodSync(dir, 0o755);
    mkdirSync(path.join(dir, 'home/app'), { recursive: true });
    expect(blockingFolder(path.join(dir, 'home/app/main.js'), user)).toBeUndefined();
    chmodSync(path.join(dir, 'home'), 0o700);
    expect(blockingFolder(path.join(dir, 'home/app/main.js'), user)).toEqual({
      folder: path.join(dir, 'home'),
      mode: 0o700,
      owner: process.getuid?.(),
    });
    // Its own folder, or its group's, is passable through the owner or group bits.
    expect(
      blockingFolder(path.join(dir, 'home/app/main.js'), { uid: process.getuid?.() ?? 0, gid: -1 }),
    ).toBeUndefined();
  });

  it('reports each path the probe could not reach, with the folder in the way, as FL_ERR_MEMBER_ISOLATION', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faultline-reach-'));
    dirs.push(dir);
    chmodSync(dir, 0o700);
    const script = path.join(dir, 'main.js');
    const calls: Parameters<CommandRunner>[] = [];
    const probe =
      (stdout: string): CommandRunner =>
      async (...args) => {
        calls.push(args);
        return { code: 0, stdout, stderr: '' };
      };
    const checks = [{ path: script, access: 'read' as const, what: 'the workload script' }];
    await expect(checkMemberReach(user, '/usr/bin/node', checks, probe('[]'))).resolves.toBeUndefined();
    // The probe runs as the member user, with nothing of the platform's environment.
    expect(calls[0]?.[2]).toMatchObject({ uid: 54_321, gid: 54_321, env: { PATH: '/usr/bin:/bin' }, cwd: '/' });
    await expect(
      checkMemberReach(user, '/usr/bin/node', checks, probe(JSON.stringify([[script, 'EACCES']]))),
    ).rejects.toMatchObject({
      code: 'FL_ERR_MEMBER_ISOLATION',
      message: expect.stringContaining(
        `members run as faultline-member (uid 54321), who cannot reach what they need: the workload script ${script}: ${dir} is mode 0700`,
      ),
    });
    // The probe runs as the member user: an answer that is not its list of failures is refused, never taken.
    for (const answer of [
      '',
      'null',
      '{}',
      '[["/etc/other", "EACCES"]]',
      `[["${script}", 42]]`,
      `[["${script}", "x y"]]`,
    ]) {
      await expect(checkMemberReach(user, '/usr/bin/node', checks, probe(answer)), answer).rejects.toMatchObject({
        code: 'FL_ERR_MEMBER_ISOLATION',
        message: expect.stringContaining('the reach probe (/usr/bin/node) answered'),
      });
    }
  });
});

describe('commandRunner', () => {
  it('runs a command without a shell and kills it when its time is up on the Clock', async () => {
    const timers: (() => void)[] = [];
    const cleared: unknown[] = [];
    const clock: Clock = {
      ...systemClock,
      setTimeout: (fn) => {
        timers.push(fn);
        return timers.length as unknown as TimerHandle;
      },
      clearTimeout: (handle) => void cleared.push(handle),
    };
    const run = commandRunner(clock);
    expect(await run('echo', ['$HOME;', 'x'])).toEqual({ code: 0, stdout: '$HOME; x\n', stderr: '' });
    expect(cleared).toEqual([1]);
    const sleeping = run('sleep', ['30']);
    expect(timers).toHaveLength(2);
    timers[1]?.();
    expect(await sleeping).toMatchObject({ code: -1, error: { code: 'killed by SIGKILL' } });
    expect(await run('faultline-no-such-command', [])).toMatchObject({ code: -1, error: { code: 'ENOENT' } });
  });
});
