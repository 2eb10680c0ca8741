import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type pg from 'pg';
import { REPO_ROOT } from './config.js';
import { MigrationError } from './errors.js';
import { withDefaults } from './lifecycle.js';
import { type Logger, nullLogger } from './logger.js';

export const DEFAULT_MIGRATIONS_DIR = path.join(REPO_ROOT, 'infra/sql');

export interface MigrateOptions {
  /** Folder of `NNN_name.sql` files, applied in name order. @default infra/sql */
  dir?: string;
  logger?: Logger;
}

export interface MigrateResult {
  applied: string[];
  alreadyApplied: string[];
}

// Any constant works; it only has to be the same for every process migrating this database.
const MIGRATION_LOCK_KEY = 0x6661_756c; // "faul"

/**
 * Checksums of earlier texts of applied files that differ from today's in
 * their comments alone: a database that applied one of them is up to date,
 * and its record is moved to today's checksum. Only ever add to it, and only
 * for an edit that changes no statement.
 */
export const EARLIER_CHECKSUMS: Readonly<Record<string, readonly string[]>> = {
  // Their first lines cited a design note kept outside the repository.
  '001_sp_cluster.sql': ['058f039032e036324adc5ad5a096e81bb9def57694e4a3179ee12e69c417bdc4'],
  '002_autoscaler_registry.sql': ['76848da7a3efffa0dabcaf2ce8f8a38ee8022c85762d00c59f9bd54a53e00000'],
};

/**
 * Applies the SQL files not yet recorded in `faultline_migrations`, each in its
 * own transaction. A session-level advisory lock serialises concurrent runners
 * (two SP nodes starting together), so running it twice, or from two processes
 * at once, is harmless. An applied file whose checksum changed is refused.
 */
export async function migrate(pool: pg.Pool, input: MigrateOptions = {}): Promise<MigrateResult> {
  const { dir, logger: log } = withDefaults({ dir: DEFAULT_MIGRATIONS_DIR, logger: nullLogger }, input);
  const files = readdirSync(dir)
    .filter((name) => name.endsWith('.sql'))
    .sort();
  const client = await pool.connect();
  const result: MigrateResult = { applied: [], alreadyApplied: [] };
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    await client.query(`CREATE TABLE IF NOT EXISTS faultline_migrations (
      name text PRIMARY KEY,
      checksum text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT clock_timestamp())`);
    const { rows } = await client.query<{ name: string; checksum: string }>(
      'SELECT name, checksum FROM faultline_migrations',
    );
    const done = new Map(rows.map((row) => [row.name, row.checksum]));
    for (const name of files) {
      const sql = readFileSync(path.join(dir, name), 'utf8');
      const checksum = createHash('sha256').update(sql).digest('hex');
      const previous = done.get(name);
      if (previous !== undefined) {
        if (previous !== checksum && EARLIER_CHECKSUMS[name]?.includes(previous)) {
          await client.query('UPDATE faultline_migrations SET checksum = $2 WHERE name = $1', [name, checksum]);
          log.info('migration record moved to its file as it is now (comments changed)', {
            event: 'migrate.rechecked',
            name,
          });
        } else if (previous !== checksum) {
          throw new MigrationError('FL_ERR_MIGRATION_CHANGED', `migration ${name} changed after it was applied`, {
            context: { name, applied: previous, now: checksum },
          });
        }
        result.alreadyApplied.push(name);
        continue;
      }
      try {
        await client.query('BEGIN');
        await client.query(sql);
        await client.query('INSERT INTO faultline_migrations (name, checksum) VALUES ($1, $2)', [name, checksum]);
        await client.query('COMMIT');
      } catch (cause) {
        await client.query('ROLLBACK').catch(() => {});
        throw new MigrationError('FL_ERR_MIGRATION_FAILED', `migration ${name} failed: ${String(cause)}`, {
          cause,
          context: { name },
        });
      }
      log.info('migration applied', { event: 'migrate.applied', name });
      result.applied.push(name);
    }
    return result;
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => {});
    client.release();
  }
}
