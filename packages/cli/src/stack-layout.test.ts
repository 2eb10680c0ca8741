import {
  chmodSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { othersCanPass, RELOCATION_ROOT, relocationKey } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { layoutEnv, prepareStackLayout, type StackLayoutInput, stackLayout } from './stack-layout.js';

/** Folders the postgres and member users cannot pass through: everything under /root (drwx------). */
const homeIsClosed = (dir: string) => !(dir === '/root' || dir.startsWith('/root/'));

const input = (over: Partial<StackLayoutInput> = {}): StackLayoutInput => ({
  codeRoot: '/root/faultline',
  stackDir: '/root/faultline',
  pgDataDir: '/root/faultline/.faultline/pg',
  membersDir: '/root/faultline/.faultline/members',
  uid: 0,
  canPass: homeIsClosed,
  ...over,
});

const ENV_MEMBERS = 'FAULTLINE_CLOUD_CONTROLLER_LOCAL_MEMBERS_DIR';
const ENV_RUNTIME = 'FAULTLINE_CLOUD_CONTROLLER_LOCAL_RUNTIME_DIR';

describe('stackLayout', () => {
  it('moves nothing where the users can pass through (a checkout in /opt, CI): no mirror, today’s paths', () => {
    const layout = stackLayout(
      input({
        codeRoot: '/opt/faultline',
        stackDir: '/opt/faultline',
        pgDataDir: '/opt/faultline/.faultline/pg',
        membersDir: '/opt/faultline/.faultline/members',
      }),
    );
    expect(layout).toEqual({
      runtimeDir: '/opt/faultline',
      mirror: undefined,
      pgDataDir: '/opt/faultline/.faultline/pg',
      membersDir: '/opt/faultline/.faultline/members',
      dirs: [],
      relocationRoot: RELOCATION_ROOT,
      moved: [],
    });
    expect(layoutEnv(layout, { membersDir: '/opt/faultline/.faultline/members' })).toEqual({});
  });

  it('moves nothing when not root: PostgreSQL and the members then run as the platform’s own user', () => {
    const layout = stackLayout(input({ uid: 1000, canPass: () => false }));
    expect(layout.mirror).toBeUndefined();
    expect(layout.dirs).toEqual([]);
    expect(layout.runtimeDir).toBe('/root/faultline');
    expect(layout.pgDataDir).toBe('/root/faultline/.faultline/pg');
    expect(layout.membersDir).toBe('/root/faultline/.faultline/members');
  });

  it('as root from a checkout in a 0700 home: the runtime, the database and the members’ folders move to one folder', () => {
    const layout = stackLayout(input());
    const base = path.join(RELOCATION_ROOT, relocationKey('/root/faultline'));
    expect(base).toMatch(/^\/var\/lib\/faultline\/faultline-[0-9a-f]{8}$/);
    expect(layout).toMatchObject({
      runtimeDir: `${base}/runtime`,
      mirror: { from: '/root/faultline', to: `${base}/runtime` },
      pgDataDir: `${base}/pg`,
      membersDir: `${base}/members`,
      dirs: [base],
    });
    expect(layout.moved).toHaveLength(3);
    // The autoscaler is told where the members' folders and scripts are; nothing else changes for it.
    expect(layoutEnv(layout, { membersDir: '.faultline/members' })).toEqual({
      [ENV_MEMBERS]: `${base}/members`,
      [ENV_RUNTIME]: `${base}/runtime`,
    });
    // The same input gives the same paths: every command of that stack finds them.
    expect(stackLayout(input())).toEqual(layout);
  });

  it('moves only the state when only the stack’s folder is closed, keyed by that folder', () => {
    const layout = stackLayout(
      input({
        codeRoot: '/opt/faultline',
        stackDir: '/root/stack',
        pgDataDir: '/root/stack/.faultline/pg',
        membersDir: '/root/stack/.faultline/members',
      }),
    );
    const base = path.join(RELOCATION_ROOT, relocationKey('/root/stack'));
    expect(layout).toMatchObject({
      runtimeDir: '/opt/faultline',
      mirror: undefined,
      pgDataDir: `${base}/pg`,
      membersDir: `${base}/members`,
      dirs: [base],
    });
    expect(layoutEnv(layout, { membersDir: '/root/stack/.faultline/members' })).toEqual({
      [ENV_MEMBERS]: `${base}/members`,
    });
  });

  it('moves only the runtime when only the checkout is closed (a stack folder elsewhere, as the e2e suite makes)', () => {
    const layout = stackLayout(
      input({ stackDir: '/tmp/s', pgDataDir: '/tmp/s/.faultline/pg', membersDir: '/tmp/s/.faultline/members' }),
    );
    const base = path.join(RELOCATION_ROOT, relocationKey('/root/faultline'));
    expect(layout).toMatchObject({
      runtimeDir: `${base}/runtime`,
      mirror: { from: '/root/faultline', to: `${base}/runtime` },
      pgDataDir: '/tmp/s/.faultline/pg',
      membersDir: '/tmp/s/.faultline/members',
      dirs: [base],
    });
    expect(layoutEnv(layout, { membersDir: '/tmp/s/.faultline/members' })).toEqual({
      [ENV_RUNTIME]: `${base}/runtime`,
    });
  });

  it('checks each folder the users need of the checkout, and the parents of the state folders', () => {
    const asked: string[] = [];
    const canPass = (dir: string) => {
      asked.push(dir);
      return true;
    };
    stackLayout(input({ canPass }));
    expect(asked.sort()).toEqual([
      '/root/faultline/.faultline',
      '/root/faultline/.faultline',
      '/root/faultline/node_modules',
      '/root/faultline/packages/cartridge-agent/dist',
      '/root/faultline/packages/cloud-controller/dist',
    ]);
    // A members' folder configured elsewhere, reachable, stays; the database's moves.
    const layout = stackLayout(input({ membersDir: '/srv/members', canPass: homeIsClosed }));
    expect(layout.membersDir).toBe('/srv/members');
    expect(layout.pgDataDir).toMatch(/^\/var\/lib\/faultline\/faultline-[0-9a-f]{8}\/pg$/);
  });

  it('has no database folder with database.url, and moves none', () => {
    const layout = stackLayout(input({ pgDataDir: undefined }));
    expect(layout.pgDataDir).toBeUndefined();
    expect(layout.moved.some((what) => what.includes('PostgreSQL'))).toBe(false);
  });

  it('names each folder by its base name and a hash of its path', () => {
    expect(relocationKey('/root/faultline')).toBe(relocationKey('/root/faultline/'));
    expect(relocationKey('/root/faultline')).not.toBe(relocationKey('/home/faultline'));
    expect(relocationKey('/root/my checkout!')).toMatch(/^my_checkout_-[0-9a-f]{8}$/);
    expect(relocationKey('/')).toMatch(/^root-[0-9a-f]{8}$/);
  });
});

describe('othersCanPass and prepareStackLayout (real folders)', () => {
  const dirs: string[] = [];
  const tmp = () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faultline-layout-'));
    dirs.push(dir);
    return dir;
  };
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('othersCanPass: every existing folder from / down, by the "others" bits', () => {
    const dir = tmp();
    chmodSync(dir, 0o755);
    mkdirSync(path.join(dir, 'open'), { mode: 0o755 });
    mkdirSync(path.join(dir, 'home'), { mode: 0o700 });
    mkdirSync(path.join(dir, 'home/checkout'), { mode: 0o755 });
    expect(othersCanPass(path.join(dir, 'open'))).toBe(true);
    expect(othersCanPass(path.join(dir, 'open/not-yet/deeper'))).toBe(true);
    expect(othersCanPass(path.join(dir, 'home'))).toBe(false);
    expect(othersCanPass(path.join(dir, 'home/checkout'))).toBe(false);
  });

  it('fails with FL_ERR_RELOCATION_FAILED, naming the folder and what to do, when the relocation root cannot be made', () => {
    const file = path.join(tmp(), 'not-a-folder');
    writeFileSync(file, '');
    const relocationRoot = path.join(file, 'faultline');
    const layout = stackLayout(input({ relocationRoot }));
    let error: unknown;
    try {
      prepareStackLayout(layout, createMemoryLogger());
    } catch (caught) {
      error = caught;
    }
    expect(error).toMatchObject({ code: 'FL_ERR_RELOCATION_FAILED', context: { dir: relocationRoot } });
    expect((error as Error).message).toContain(`cannot create ${relocationRoot} (ENOTDIR)`);
    expect((error as Error).message).toMatch(/mount a volume there.*\/opt\/faultline.*unprivileged user/);
  });

  it.skipIf(process.getuid?.() !== 0)('refuses a relocation root that is not root’s alone', () => {
    const parent = tmp();
    chmodSync(parent, 0o755);
    const relocationRoot = path.join(parent, 'faultline');
    mkdirSync(relocationRoot);
    chmodSync(relocationRoot, 0o777);
    const layout = stackLayout(input({ relocationRoot }));
    expect(() => prepareStackLayout(layout)).toThrow(/is mode 0777, owner uid 0: not root's alone/);
    chmodSync(relocationRoot, 0o755);
    chownSync(relocationRoot, 4242, 4242);
    expect(() => prepareStackLayout(layout)).toThrow(/owner uid 4242/);
    chownSync(relocationRoot, 0, 0);
    // Root's and closed to nobody: taken as it is; its folders created 0755 whatever the umask.
    const mask = process.umask(0o077);
    try {
      prepareStackLayout({ ...layout, mirror: undefined });
    } finally {
      process.umask(mask);
    }
    expect(statSync(layout.dirs[0] as string).mode & 0o777).toBe(0o755);
    // The root may be a link to such a folder (a volume mounted elsewhere).
    const volume = path.join(parent, 'volume');
    mkdirSync(volume);
    chmodSync(volume, 0o755);
    symlinkSync(volume, path.join(parent, 'linked'));
    prepareStackLayout({ ...stackLayout(input({ relocationRoot: path.join(parent, 'linked') })), mirror: undefined });
    expect(readdirSync(volume)).toEqual([relocationKey('/root/faultline')]);
    // Root's alone but in a folder someone else can write (or through a link to one): they could swap it.
    const theirs = path.join(parent, 'theirs');
    mkdirSync(path.join(theirs, 'faultline'), { recursive: true, mode: 0o755 });
    chmodSync(theirs, 0o755);
    chownSync(theirs, 4242, 4242);
    const under = (root: string) => () =>
      prepareStackLayout({ ...stackLayout(input({ relocationRoot: root })), mirror: undefined });
    expect(under(path.join(theirs, 'faultline'))).toThrow(
      `${theirs}, above ${path.join(theirs, 'faultline')}, is mode 0755, owner uid 4242`,
    );
    symlinkSync(path.join(theirs, 'faultline'), path.join(parent, 'linked-theirs'));
    expect(under(path.join(parent, 'linked-theirs'))).toThrow(/owner uid 4242: whoever can write there/);
    chownSync(theirs, 0, 0);
    chmodSync(theirs, 0o777);
    expect(under(path.join(theirs, 'faultline'))).toThrow(/is mode 0777, owner uid 0: whoever can write there/);
    // The sticky bit (as /tmp has) keeps others from renaming root's folder: taken.
    chmodSync(theirs, 0o1777);
    expect(under(path.join(theirs, 'faultline'))).not.toThrow();
  });
});
