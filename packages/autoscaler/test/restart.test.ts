import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createPgPool, migrate } from '@faultline/core';
import type { Publisher } from '@faultline/messaging';
import { startBrokerPair, startPostgres, type TestBroker, type TestPostgres } from '@faultline/test-support';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AUTOSCALER_MAIN,
  assertBuilt,
  expectGroupsGone,
  groupOf,
  logRecords,
  memberFault,
  pause,
  pgidOf,
  registryRows,
  startFakeSp,
  startSummaries,
  terminateRegistered,
  testConfig,
  waitFor,
} from './helpers.js';

/*
 * Issue 7 acceptance: "killing the autoscaler -9 and restarting it adopts the
 * 3 members". The autoscaler runs as the real service (dist/main.js with a
 * FAULTLINE_CONFIG of the test's own, in a working directory of its own, so
 * `.faultline/members` lands there); its members are the real processes.
 */
describe('autoscaler process: kill -9 and restart', () => {
  let postgres: TestPostgres;
  let brokers: [TestBroker, TestBroker];
  let pool: pg.Pool;
  let sp: Publisher;
  let summaries: ReturnType<typeof startSummaries> | undefined;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'faultline-autoscaler-restart-'));
  // As root, members run as the member user, who must pass through every folder above their own.
  chmodSync(dir, 0o755);
  const logFile = path.join(dir, 'logs', 'autoscaler.jsonl');
  const outputFile = path.join(dir, 'autoscaler.out');
  const children = new Set<ChildProcess>();
  const pgids = new Set<number>();
  let env: NodeJS.ProcessEnv;

  const startAutoscaler = (): ChildProcess => {
    const child = spawn(process.execPath, [AUTOSCALER_MAIN], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out = createWriteStream(outputFile, { flags: 'a' });
    child.stdout?.pipe(out, { end: false });
    child.stderr?.pipe(out, { end: false });
    children.add(child);
    child.once('exit', () => children.delete(child));
    return child;
  };
  const exited = (child: ChildProcess) =>
    new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null)
        resolve({ code: child.exitCode, signal: child.signalCode });
      else child.once('exit', (code, signal) => resolve({ code, signal }));
    });
  const started = () => logRecords(logFile).filter((r) => r.event === 'autoscaler.started');
  const activeRows = async () => (await registryRows(pool)).filter((r) => r.state === 'Active');
  const output = () => {
    try {
      return readFileSync(outputFile, 'utf8').slice(-4_000);
    } catch {
      return '';
    }
  };

  beforeAll(async () => {
    assertBuilt();
    [postgres, brokers] = await Promise.all([startPostgres(), startBrokerPair('aedes')]);
    pool = createPgPool({ connectionString: postgres.connectionString });
    await migrate(pool);
    const config = await testConfig({ dir, databaseUrl: postgres.connectionString, brokers, cluster: { id: 'web' } });
    const configFile = path.join(dir, 'faultline.yaml');
    writeFileSync(configFile, JSON.stringify(config, null, 2)); // JSON is YAML
    env = Object.fromEntries(
      Object.entries(process.env).filter(([key]) => !key.startsWith('FAULTLINE_') && key !== 'DATABASE_URL'),
    );
    env.FAULTLINE_CONFIG = configFile;
    env.DATABASE_URL = postgres.connectionString;
    sp = startFakeSp(brokers, path.join(dir, 'sp-test.outbox'));
    await sp.start();
    // What the SP would list: every member the registry has live (the fault detector sees them all).
    summaries = startSummaries(
      sp,
      async () => (await registryRows(pool)).filter((r) => r.state !== 'Terminating').map((r) => r.member_id),
      () => 1,
      'web',
    );
  });

  afterAll(async () => {
    summaries?.stop();
    for (const child of children) child.kill('SIGKILL');
    await Promise.all([...children].map(exited));
    if (pool) for (const pgid of await terminateRegistered(pool, path.join(dir, 'cleanup'))) pgids.add(pgid);
    expectGroupsGone(pgids);
    await sp?.close();
    await pool?.end();
    await Promise.all([...(brokers ?? []).map((b) => b.stop()), postgres?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('adopts the 3 running members after kill -9, spawns none, and manages them', async () => {
    const first = startAutoscaler();
    await waitFor(async () => (await activeRows()).length === 3, `three active members (output: ${output()})`);
    const rows = await activeRows();
    const ids = rows.map((r) => r.member_id).sort();
    for (const row of rows) if (row.instance) pgids.add(pgidOf(row.instance));
    for (const pgid of pgids) expect(groupOf(pgid)).toHaveLength(2);

    first.kill('SIGKILL');
    expect(await exited(first)).toEqual({ code: null, signal: 'SIGKILL' });
    // The members belong to the registry, not to the process: they run on.
    for (const pgid of pgids) expect(groupOf(pgid)).toHaveLength(2);
    const killedAt = new Date();

    const second = startAutoscaler();
    await waitFor(() => started().length === 2, `the second life started (output: ${output()})`);
    expect(started()[1]).toMatchObject({ adopted: 3, clusters: ['web'] });
    const adopted = logRecords(logFile)
      .filter((r) => r.event === 'autoscaler.member_resumed')
      .map((r) => r.memberId)
      .sort();
    expect(adopted).toEqual(ids);
    await pause(1_500); // several monitor intervals
    const after = await registryRows(pool);
    expect(after.map((r) => r.member_id).sort()).toEqual(ids);
    // The same processes: the second life took the first one's members over, it did not start others.
    expect(after.map((r) => (r.instance ? pgidOf(r.instance) : 0)).sort()).toEqual([...pgids].sort());
    expect(after.every((r) => r.state === 'Active')).toBe(true);
    const { rows: actions } = await pool.query<{ action: string }>(
      'SELECT action FROM autoscaler_action WHERE at > $1',
      [killedAt],
    );
    expect(actions).toEqual([]);
    for (const pgid of pgids) expect(groupOf(pgid)).toHaveLength(2);

    // The adopted members are the second life's own: a fault terminates one for real and replaces it.
    const victim = rows[0]?.instance;
    if (!victim) throw new Error('no instance');
    await sp.publish(memberFault(victim, 1));
    await waitFor(() => groupOf(pgidOf(victim)).length === 0, 'the adopted member terminated');
    await waitFor(async () => (await activeRows()).length === 3, 'a replacement active');
    for (const row of await activeRows()) if (row.instance) pgids.add(pgidOf(row.instance));
    const decided = logRecords(logFile)
      .filter((r) => r.event === 'autoscaler.action')
      .map((r) => `${r.action}${r.memberId === victim.memberId ? ' victim' : ''}`);
    expect(decided.slice(-3)).toEqual(['MemberTerminateAction victim', 'MemberRemoved victim', 'MemberSpawnAction']);

    // A graceful stop leaves the members running for the next life.
    second.kill('SIGTERM');
    expect(await exited(second)).toEqual({ code: 0, signal: null });
    const live = await activeRows();
    expect(live).toHaveLength(3);
    for (const row of live) if (row.instance) expect(groupOf(pgidOf(row.instance))).toHaveLength(2);
  });
});
