import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type ControlServer, startControl } from '@faultline/cli';
import { createLocalIaas, type LocalIaas, localHandle, type MemberSpec } from '@faultline/cloud-controller';
import { createLogger, ensureSecretFile, readSecretFile } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import { Outbox } from '@faultline/messaging';
import { type AgentSettings, MEMBER_ENV } from '@faultline/protocol';
import { testMember } from '@faultline/protocol/testing';
import { freePort, processIds, readAs, testRuntimeDir, userIds, waitFor } from '@faultline/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type StackPostgres, startEmbeddedPostgres } from '../../packages/cli/src/embedded-postgres.js';

/*
 * Issue 6 of the security work ("Members cannot read the platform's
 * secrets"), README "What members can reach": run as root, the local driver
 * starts each member as an unprivileged member user with an allow-listed
 * environment, and the platform's run, log, outbox, secret and database files
 * are not that user's to read. A real member (the built workload and agent)
 * is spawned by the real driver among platform files made by the code the
 * stack makes them with; every check of what it can read is made with the
 * member's own identity, as /proc shows it.
 */
const AS_ROOT = process.getuid?.() === 0;

/** What a member may find in its environment besides the member environment. */
const PASSED_ENV = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'LC_CTYPE', 'LC_MESSAGES', 'TZ', 'FORCE_COLOR', 'NO_COLOR'];

/** The names of a process's environment variables (read as root). */
const envNamesOf = (pid: number): string[] =>
  readFileSync(`/proc/${pid}/environ`, 'utf8')
    .split('\0')
    .filter(Boolean)
    .map((entry) => entry.slice(0, entry.indexOf('=')));

const spec = (memberId: string): MemberSpec => ({
  ...testMember(memberId),
  cartridgeType: 'php',
  workload: { latencyMs: 5 },
});

describe.skipIf(!AS_ROOT)('members as root (skipped when not root: only root can isolate them)', () => {
  let dir: string;
  let fl: string;
  let db: StackPostgres | undefined;
  let control: ControlServer | undefined;
  let service: ChildProcess | undefined;
  let agent: AgentSettings;
  let memberKey: Buffer;
  const drivers: LocalIaas[] = [];
  const logger = createMemoryLogger();
  let workload: number;
  let agentPid: number;

  const driver = (runDir: string, settings: AgentSettings = agent): LocalIaas => {
    const iaas = createLocalIaas({
      runDir,
      runtimeDir: testRuntimeDir(),
      logsDir: path.join(fl, 'logs'),
      agent: settings,
      memberKey,
      logger,
      spawnTimeoutMs: 20_000,
      // What the platform's services hold: none of it may reach a member.
      env: {
        ...process.env,
        DATABASE_URL: db?.url,
        FAULTLINE_CONFIG: path.join(dir, 'faultline.yaml'),
        FAULTLINE_BROKERS_CREDENTIALS_SP_PASSWORD_FILE: path.join(fl, 'secrets/broker-sp.password'),
        PGPASSWORD: 'platform-secret',
        NODE_OPTIONS: '--no-deprecation',
        LANG: 'C.UTF-8',
      },
    });
    drivers.push(iaas);
    return iaas;
  };

  beforeAll(async () => {
    // As the stack's folder: the embedded PostgreSQL's user and the member user pass through it.
    dir = mkdtempSync(path.join(os.tmpdir(), 'faultline-isolation-'));
    chmodSync(dir, 0o755);
    fl = path.join(dir, '.faultline');
    for (const file of ['member.key', 'sync.key', 'status.token', 'broker-sp.password']) {
      ensureSecretFile(path.join(fl, 'secrets', file));
    }
    const supervisorLog = createLogger({ service: 'supervisor', dir: path.join(fl, 'logs'), console: 'none' });
    supervisorLog.info('database ready', { event: 'stack.database_ready', embedded: true });
    await supervisorLog.flush();
    control = await startControl({ runDir: path.join(fl, 'run'), handlers: {}, logger: createMemoryLogger() });
    const outbox = await Outbox.open({ file: path.join(fl, 'outbox/sp-1.outbox') });
    await outbox.append('summarized-health-stats/x', Buffer.from('{}'));
    await outbox.close();
    db = await startEmbeddedPostgres({
      dataDir: path.join(fl, 'pg'),
      port: await freePort(),
      runtimeDir: testRuntimeDir(),
      logger: createMemoryLogger(),
    });
    // A platform service: its environment holds the database password.
    service = spawn(process.execPath, ['-e', 'setInterval(() => {}, 60_000)'], {
      env: { DATABASE_URL: db.url },
      stdio: 'ignore',
    });
    // Nobody listens there: the agent keeps trying, which is all these checks need of it.
    const [spPort, brokerPort] = await Promise.all([freePort(), freePort()]);
    agent = {
      spEndpoints: [{ host: '127.0.0.1', port: spPort }],
      brokers: [{ name: 'a', host: '127.0.0.1', port: brokerPort }],
    };
    memberKey = readSecretFile(path.join(fl, 'secrets/member.key'), 'security.memberKeyFile');
    const instance = await driver(path.join(fl, 'members')).spawn(spec('iso-1'));
    const handle = localHandle(instance);
    workload = handle?.workload.pid ?? 0;
    agentPid = handle?.agent?.pid ?? 0;
  });

  afterAll(async () => {
    for (const iaas of drivers) {
      for (const member of await iaas.list()) await iaas.terminate(member.memberId, { graceMs: 2_000 });
      await iaas.close();
    }
    service?.kill('SIGKILL');
    await control?.close();
    await db?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the workload and its agent run as the member user, with no supplementary groups', async () => {
    for (const pid of [workload, agentPid]) {
      const ids = processIds(pid);
      expect(ids.uid[0], `uid of ${pid}`).not.toBe(0);
      expect(ids.gid[0], `gid of ${pid}`).not.toBe(0);
    }
    const member = await userIds('faultline-member');
    for (const pid of [workload, agentPid]) {
      const ids = processIds(pid);
      expect(ids.uid).toEqual(Array(4).fill(member.uid));
      expect(ids.gid).toEqual(Array(4).fill(member.gid));
      expect(ids.groups).toEqual([]);
    }
    expect(logger.events()).toContain('local_iaas.member_user');
  });

  it('their environment is the allow-list and the member environment, nothing of the platform’s', () => {
    const allowed = new Set<string>([...PASSED_ENV, ...Object.values(MEMBER_ENV)]);
    for (const pid of [workload, agentPid]) {
      const names = envNamesOf(pid);
      expect(names).toContain(MEMBER_ENV.memberId);
      expect(names.filter((name) => !allowed.has(name))).toEqual([]);
      for (const name of ['DATABASE_URL', 'PGPASSWORD', 'NODE_OPTIONS', 'FAULTLINE_CONFIG']) {
        expect(names).not.toContain(name);
      }
      expect(names.filter((name) => name.endsWith('_PASSWORD_FILE'))).toEqual([]);
    }
  });

  it('as the member, no platform file and no other process’s environment can be read', async () => {
    const { uid, gid } = processIds(workload);
    const platformFiles = [
      path.join(fl, 'secrets/member.key'),
      path.join(fl, 'secrets/sync.key'),
      path.join(fl, 'secrets/status.token'),
      path.join(fl, 'secrets/broker-sp.password'),
      path.join(fl, 'secrets/'),
      path.join(fl, 'run/control.json'),
      path.join(fl, 'run/'),
      path.join(fl, 'pg.credentials.json'),
      path.join(fl, 'pg/PG_VERSION'),
      path.join(fl, 'pg/global/pg_control'),
      path.join(fl, 'logs/supervisor.jsonl'),
      path.join(fl, 'logs/'),
      path.join(fl, 'outbox/sp-1.outbox'),
      path.join(fl, 'outbox/'),
      // The members' folder: passable, but the other members' folder names are not listed.
      path.join(fl, 'members/'),
    ];
    const environs = [`/proc/${service?.pid}/environ`, `/proc/${process.pid}/environ`];
    for (const file of [...platformFiles, ...environs]) expect(existsSync(file), file).toBe(true);
    const results = await readAs(uid[0] as number, gid[0] as number, [...platformFiles, ...environs]);
    expect(results).toEqual(Object.fromEntries([...platformFiles, ...environs].map((file) => [file, 'EACCES'])));
  });

  it('its own folder is its alone: its working folder, HOME, ready file and outbox', async () => {
    const { uid, gid } = processIds(workload);
    const workDir = path.join(fl, 'members/member-iso-1');
    expect(statSync(workDir)).toMatchObject({ uid: uid[0], gid: gid[0] });
    expect(statSync(workDir).mode & 0o777).toBe(0o700);
    expect(statSync(path.join(fl, 'members'))).toMatchObject({ uid: 0 });
    expect(statSync(path.join(fl, 'members')).mode & 0o777).toBe(0o711);
    expect(statSync(path.join(workDir, 'ready.json')).uid).toBe(uid[0]);
    // The agent creates its outbox once it starts publishing.
    await waitFor(() => existsSync(path.join(workDir, 'outbox')), 'the agent’s outbox folder');
    expect(statSync(path.join(workDir, 'outbox')).uid).toBe(uid[0]);
    const results = await readAs(uid[0] as number, gid[0] as number, [`${workDir}/`, path.join(workDir, 'ready.json')]);
    expect(Object.values(results)).toEqual(['read', 'read']);
    // Its log is the platform's file, 0600, which it writes through the descriptor it was given and cannot read.
    const log = path.join(fl, 'logs/member-iso-1.jsonl');
    expect(statSync(log)).toMatchObject({ uid: 0 });
    expect(statSync(log).mode & 0o777).toBe(0o600);
    await waitFor(() => readFileSync(log, 'utf8').includes('"workload.ready"'), 'the workload’s log line');
    expect(await readAs(uid[0] as number, gid[0] as number, [log])).toEqual({ [log]: 'EACCES' });
  });

  it('a members’ folder the member user cannot pass through refuses the spawn, naming the folder in the way', async () => {
    const hidden = path.join(dir, 'hidden');
    mkdirSync(hidden, { mode: 0o700 });
    const iaas = driver(path.join(hidden, 'members'));
    await expect(iaas.spawn(spec('iso-2'))).rejects.toMatchObject({
      code: 'FL_ERR_MEMBER_ISOLATION',
      message: expect.stringContaining(`${hidden} is mode 0700 (owner uid 0)`),
    });
    expect(await iaas.list()).toEqual([]);
  });

  it('so does a CA file of the agent’s that the member user cannot read, named as such', async () => {
    const certs = path.join(dir, 'certs');
    mkdirSync(certs, { mode: 0o700 });
    const caFile = path.join(certs, 'ca.pem');
    writeFileSync(caFile, 'not a certificate: never read here\n');
    const iaas = driver(path.join(fl, 'members-tls'), { ...agent, thriftCaFile: caFile });
    await expect(iaas.spawn(spec('iso-3'))).rejects.toMatchObject({
      code: 'FL_ERR_MEMBER_ISOLATION',
      message: expect.stringContaining(`the Thrift CA file ${caFile}: ${certs} is mode 0700`),
    });
  });
});

describe.skipIf(AS_ROOT)('members when not root (as root, the suite above runs instead)', () => {
  it('run as the platform’s user, which the driver says once in its log', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faultline-isolation-'));
    const logger = createMemoryLogger();
    const memberKey = Buffer.alloc(32, 7);
    const [spPort, brokerPort] = await Promise.all([freePort(), freePort()]);
    const iaas = createLocalIaas({
      runDir: path.join(dir, 'members'),
      runtimeDir: testRuntimeDir(),
      agent: {
        spEndpoints: [{ host: '127.0.0.1', port: spPort }],
        brokers: [{ name: 'a', host: '127.0.0.1', port: brokerPort }],
      },
      memberKey,
      logger,
      spawnTimeoutMs: 20_000,
    });
    try {
      const first = localHandle(await iaas.spawn(spec('plain-1')));
      await iaas.spawn(spec('plain-2'));
      expect(processIds(first?.workload.pid ?? 0).uid[0]).toBe(process.getuid?.());
      expect(logger.events().filter((e) => e === 'local_iaas.member_isolation_unavailable')).toHaveLength(1);
    } finally {
      for (const member of await iaas.list()) await iaas.terminate(member.memberId, { graceMs: 2_000 });
      await iaas.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
