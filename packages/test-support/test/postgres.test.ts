import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { DEFAULT_MIGRATIONS_DIR, EARLIER_CHECKSUMS, migrate, REPO_ROOT } from '@faultline/core';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostgres, type TestPostgres } from '../src/index.js';

const run = promisify(execFile);

// A separate OS process that migrates the database and records its pid, the
// way two SP nodes do when they start together. It runs the built core.
const childScript = `
import pg from 'pg';
import { migrate } from ${JSON.stringify(path.join(REPO_ROOT, 'packages/core/dist/index.js'))};
const pool = new pg.Pool({ connectionString: process.argv[1] });
const result = await migrate(pool);
await pool.query('INSERT INTO probe (pid) VALUES ($1)', [process.pid]);
console.log(JSON.stringify({ pid: process.pid, ...result }));
await pool.end();
`;

describe('real PostgreSQL for tests', () => {
  let db: TestPostgres;
  beforeAll(async () => {
    db = await startPostgres();
  });
  afterAll(async () => {
    await db?.stop();
  });

  it('starts, and two separate processes connect and migrate concurrently', async () => {
    // Created here, not by both children: two concurrent CREATE TABLE IF NOT EXISTS race in PostgreSQL.
    const setup = new pg.Client({ connectionString: db.connectionString });
    await setup.connect();
    await setup.query('CREATE TABLE probe (pid int PRIMARY KEY)');
    await setup.end();
    const spawnChild = () =>
      run(process.execPath, ['--input-type=module', '-e', childScript, db.connectionString], {
        cwd: path.join(REPO_ROOT, 'packages/core'),
      });
    const [a, b] = await Promise.all([spawnChild(), spawnChild()]);
    const outputs = [a, b].map((r) => JSON.parse(r.stdout) as { pid: number; applied: string[] });
    // The advisory lock lets exactly one of them apply each migration.
    const applied = outputs.flatMap((o) => o.applied).sort();
    expect(applied).toContain('001_sp_cluster.sql');
    expect(new Set(applied).size).toBe(applied.length);

    const pool = new pg.Pool({ connectionString: db.connectionString });
    try {
      const { rows } = await pool.query<{ pid: number }>('SELECT pid FROM probe ORDER BY pid');
      expect(rows.map((r) => r.pid)).toEqual(outputs.map((o) => o.pid).sort((x, y) => x - y));
      const tables = await pool.query<{ table_name: string }>(
        "SELECT table_name FROM information_schema.tables WHERE table_name IN ('sp_leader', 'sp_node') ORDER BY 1",
      );
      expect(tables.rows.map((r) => r.table_name)).toEqual(['sp_leader', 'sp_node']);
    } finally {
      await pool.end();
    }
  });

  it('runs migrations twice without harm', async () => {
    const pool = new pg.Pool({ connectionString: db.connectionString });
    try {
      const first = await migrate(pool);
      const second = await migrate(pool);
      expect(first.applied).toEqual([]);
      expect(second.applied).toEqual([]);
      expect(second.alreadyApplied).toContain('001_sp_cluster.sql');
      const { rows } = await pool.query('SELECT count(*)::int AS n FROM faultline_migrations');
      expect(rows[0].n).toBe(second.alreadyApplied.length);
    } finally {
      await pool.end();
    }
  });

  it('rolls back a failing migration and refuses an edited one', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faultline-sql-'));
    writeFileSync(path.join(dir, '001_ok.sql'), 'CREATE TABLE mig_ok (x int);');
    writeFileSync(path.join(dir, '002_bad.sql'), 'CREATE TABLE mig_half (x int); SELECT no_such_function();');
    const pool = new pg.Pool({ connectionString: db.connectionString });
    try {
      await expect(migrate(pool, { dir })).rejects.toMatchObject({ code: 'FL_ERR_MIGRATION_FAILED' });
      const half = await pool.query("SELECT to_regclass('mig_half') AS t");
      expect(half.rows[0].t).toBeNull();
      writeFileSync(path.join(dir, '002_bad.sql'), 'SELECT 1;');
      expect((await migrate(pool, { dir })).applied).toEqual(['002_bad.sql']);
      writeFileSync(path.join(dir, '001_ok.sql'), 'CREATE TABLE mig_ok (x int, y int);');
      await expect(migrate(pool, { dir })).rejects.toMatchObject({ code: 'FL_ERR_MIGRATION_CHANGED' });
    } finally {
      await pool.end();
    }
  });

  it('takes a database migrated from an earlier text of a file whose comments alone changed', async () => {
    const pool = new pg.Pool({ connectionString: db.connectionString });
    try {
      await migrate(pool);
      const [name, sums] = Object.entries(EARLIER_CHECKSUMS)[0] as [string, readonly string[]];
      const earlier = sums[0] as string;
      await pool.query('UPDATE faultline_migrations SET checksum = $2 WHERE name = $1', [name, earlier]);
      const again = await migrate(pool);
      expect(again.alreadyApplied).toContain(name);
      const { rows } = await pool.query('SELECT checksum FROM faultline_migrations WHERE name = $1', [name]);
      expect(rows[0].checksum).not.toBe(earlier);
      // Any other checksum is still an edited migration.
      await pool.query("UPDATE faultline_migrations SET checksum = 'abc' WHERE name = $1", [name]);
      await expect(migrate(pool)).rejects.toMatchObject({ code: 'FL_ERR_MIGRATION_CHANGED' });
      await pool.query('UPDATE faultline_migrations SET checksum = $2 WHERE name = $1', [name, rows[0].checksum]);
    } finally {
      await pool.end();
    }
  });

  it('the default migrations folder is the repository infra/sql', () => {
    expect(DEFAULT_MIGRATIONS_DIR).toBe(path.join(REPO_ROOT, 'infra/sql'));
  });
});
