import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PgRegistry, readMaintenance } from '@faultline/autoscaler';
import { createPgPool, migrate, REPO_ROOT } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import { startPostgres, type TestPostgres } from '@faultline/test-support';
import type pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type ControlServer, startControl } from '../src/control.js';
import { maintenanceHandler } from '../src/maintenance.js';

/*
 * `faultline maintenance` as a user runs it (the built CLI), against the
 * supervisor's control endpoint serving the real `maintenance` action over a
 * real PostgreSQL: the arguments refused before anything is contacted (exit
 * 2), the checks only the running stack can make (its configuration, its
 * members; exit 2 as well), and the rows the autoscaler reads.
 */
const CLI = path.join(REPO_ROOT, 'packages/cli/dist/main.js');
const dir = mkdtempSync(path.join(os.tmpdir(), 'faultline-maintenance-'));
const stateDir = path.join(dir, '.faultline');

function run(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd: dir }, (error, stdout, stderr) =>
      resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('faultline maintenance: arguments', () => {
  it('refuses a bad command, id, reason or extra argument with exit 2, before contacting anything', async () => {
    // No stack runs in `dir`: anything that got as far as contacting one would exit 1.
    const cases: [string[], RegExp][] = [
      [['maintenance'], /unknown maintenance command "\(none\)"; one of: on, off, status/],
      [['maintenance', 'sideways', 'web'], /unknown maintenance command "sideways"/],
      [['maintenance', 'on'], /maintenance on needs a cluster id/],
      [['maintenance', 'off'], /maintenance off needs a cluster id/],
      [['maintenance', 'on', 'a b'], /cluster "a b" is not an id/],
      [['maintenance', 'on', 'web', 'x/y'], /member "x\/y" is not a member id/],
      [['maintenance', 'on', 'web', 'm-1', 'extra'], /unexpected argument "extra"/],
      [['maintenance', 'on', 'web', '--reason'], /--reason <value>' argument missing/],
      [['maintenance', 'on', 'web', '--reason', 'two\nlines'], /--reason must be one line/],
      [['maintenance', 'on', 'web', '--reason', 'x'.repeat(501)], /--reason is 501 characters long; at most 500/],
      [['maintenance', 'off', 'web', '--reason', 'done'], /--reason is an option of maintenance on only/],
      [['maintenance', 'status', 'web'], /maintenance status takes no cluster, member or --reason/],
      [['maintenance', 'status', '--for', 'x'], /Unknown option '--for'/],
    ];
    // All at once: each is a process of its own.
    const results = await Promise.all(cases.map(([args]) => run(...args)));
    cases.forEach(([args, message], i) => {
      const { code, stderr } = results[i] as { code: number; stderr: string };
      expect({ args, code }).toEqual({ args, code: 2 });
      expect(stderr).toMatch(message);
    });
    expect(await run('maintenance', 'status')).toMatchObject({ code: 1, stderr: /no stack is running/ });
    expect((await run('maintenance', '--help')).stdout).toMatch(/does not make the\s+stack degraded/);
  }, 120_000);
});

describe('faultline maintenance: against a stack', () => {
  let postgres: TestPostgres;
  let pool: pg.Pool;
  let control: ControlServer;
  const logger = createMemoryLogger();

  beforeAll(async () => {
    postgres = await startPostgres();
    pool = createPgPool({ connectionString: postgres.connectionString });
    await migrate(pool);
    const member = {
      memberId: 'web-aaaaaa',
      clusterId: 'web',
      clusterInstanceId: 'web-1',
      networkPartitionId: 'np-1',
      partitionId: 'p-1',
      cartridgeType: 'php',
      state: 'Active' as const,
      instance: null,
      reason: null,
      createdAt: Date.now(),
      activatedAt: Date.now(),
      terminatedAt: null,
    };
    await new PgRegistry(pool).saveMember(member);
    // Draining after a scale down: already on its way out.
    await new PgRegistry(pool).saveMember({
      ...member,
      memberId: 'web-bbbbbb',
      state: 'Terminating',
      reason: 'above max: 2 members > max 1',
      drainUntil: Date.now() + 30_000,
    });
    control = await startControl({
      runDir: path.join(stateDir, 'run'),
      handlers: { maintenance: maintenanceHandler({ pool, clusters: [{ id: 'web' }, { id: 'api' }] }, logger) },
      logger,
    });
  });
  afterAll(async () => {
    await control?.close();
    await pool?.end();
    await postgres?.stop();
  });

  beforeEach(async () => {
    await pool.query('DELETE FROM autoscaler_maintenance');
  });

  const cli = (...args: string[]) => run(...args, '--state-dir', stateDir);

  it('on, again, status, off, off again: one row per target, its start kept, who and why recorded', async () => {
    const on = await cli('maintenance', 'on', 'web', '--reason', 'kernel upgrade', '--json');
    expect(on.code).toBe(0);
    const first = JSON.parse(on.stdout) as { op: string; entry: { since: string; by: string; reason: string } };
    expect(first).toMatchObject({ op: 'on', entry: { clusterId: 'web', memberId: null, reason: 'kernel upgrade' } });
    expect(first.entry.by).toBe(`${os.userInfo().username}@${os.hostname()}`);
    const again = JSON.parse((await cli('maintenance', 'on', 'web', '--reason', 'and a reboot', '--json')).stdout) as {
      entry: { since: string; reason: string };
    };
    expect(again.entry).toMatchObject({ since: first.entry.since, reason: 'and a reboot' });
    expect((await cli('maintenance', 'on', 'web', 'web-aaaaaa')).stdout).toMatch(
      /^member web-aaaaaa of cluster web in maintenance since .*: the acting autoscaler holds its faults from its next monitor tick\n$/,
    );
    const { entries } = await readMaintenance(pool);
    expect(entries.map((e) => [e.clusterId, e.memberId, e.reason])).toEqual([
      ['web', null, 'and a reboot'],
      ['web', 'web-aaaaaa', ''],
    ]);
    const status = await cli('maintenance', 'status');
    expect(status.code).toBe(0);
    expect(status.stdout.split('\n')[1]).toMatch(
      /^web +\(whole cluster\) +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d .* and a reboot$/,
    );
    expect(status.stdout.split('\n')[2]).toMatch(/^web +web-aaaaaa /);

    const off = await cli('maintenance', 'off', 'web');
    expect(off).toMatchObject({ code: 0, stdout: /^cluster web out of maintenance: / });
    expect(await cli('maintenance', 'off', 'web')).toMatchObject({
      code: 0,
      stdout: 'cluster web was not in maintenance\n',
    });
    expect((await readMaintenance(pool)).entries.map((e) => e.memberId)).toEqual(['web-aaaaaa']);
    expect((await cli('maintenance', 'off', 'web', 'web-aaaaaa')).code).toBe(0);
    expect(JSON.parse((await cli('maintenance', 'status', '--json')).stdout)).toEqual({ op: 'status', entries: [] });
    expect(logger.records.filter((r) => r.event?.startsWith('maintenance.')).map((r) => r.event)).toEqual([
      'maintenance.on',
      'maintenance.on',
      'maintenance.on',
      'maintenance.off',
      'maintenance.off',
    ]);
  }, 120_000);

  it('refuses, with exit 2, a cluster the stack does not run and a member it does not have', async () => {
    expect(await cli('maintenance', 'on', 'nope')).toMatchObject({
      code: 2,
      stderr: /no cluster nope in the stack's configuration; configured: web, api/,
    });
    expect(await cli('maintenance', 'on', 'web', 'web-zzzzzz')).toMatchObject({
      code: 2,
      stderr: /no live member web-zzzzzz in cluster web; its members: web-aaaaaa, web-bbbbbb/,
    });
    expect(await cli('maintenance', 'on', 'web', 'web-bbbbbb')).toMatchObject({
      code: 2,
      stderr: /member web-bbbbbb is already terminating \(above max: 2 members > max 1\): maintenance cannot keep it/,
    });
    expect(await cli('maintenance', 'on', 'api', 'web-aaaaaa')).toMatchObject({
      code: 2,
      stderr: /no live member web-aaaaaa in cluster api; its members: none/,
    });
    // A row of a cluster no longer configured can still be ended.
    await pool.query(`INSERT INTO autoscaler_maintenance (cluster_id, set_by) VALUES ('gone', 'psql')`);
    expect(await cli('maintenance', 'off', 'gone')).toMatchObject({
      code: 0,
      stdout: /^cluster gone out of maintenance/,
    });
    expect(await cli('maintenance', 'off', 'gone')).toMatchObject({ code: 2, stderr: /no cluster gone/ });
    expect((await readMaintenance(pool)).entries).toEqual([]);
  }, 120_000);

  it('the table refuses rows that are not ids, and keeps one row per cluster and member', async () => {
    await expect(
      pool.query(`INSERT INTO autoscaler_maintenance (cluster_id, set_by) VALUES ('a/b', 'psql')`),
    ).rejects.toThrow(/check constraint/);
    await pool.query(`INSERT INTO autoscaler_maintenance (cluster_id, set_by) VALUES ('web', 'psql')`);
    await expect(
      pool.query(`INSERT INTO autoscaler_maintenance (cluster_id, set_by) VALUES ('web', 'psql')`),
    ).rejects.toThrow(/duplicate key/);
    await pool.query('DELETE FROM autoscaler_maintenance');
  });
});
