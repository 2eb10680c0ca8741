import pg from 'pg';
import { type Logger, nullLogger } from './logger.js';

export interface PgPoolOptions {
  connectionString: string;
  /** @default 4 */
  max?: number;
  /** A query that takes longer fails, so a hung database cannot hang a heartbeat forever. @default 5_000 */
  queryTimeoutMs?: number;
  /** @default 2_000 */
  connectTimeoutMs?: number;
  logger?: Logger;
}

/**
 * A pg pool with the project's settings. An idle client whose server goes
 * away (PostgreSQL stopped, admin shutdown 57P01) emits 'error' on the pool;
 * without a listener that is an uncaught exception that kills the process, so
 * the listener is always attached here and the failure logged.
 */
export function createPgPool(options: PgPoolOptions): pg.Pool {
  const log = (options.logger ?? nullLogger).child({ component: 'pg' });
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.max ?? 4,
    query_timeout: options.queryTimeoutMs ?? 5_000,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 2_000,
  });
  pool.on('error', (error: Error & { code?: string }) => {
    log.warn('idle database connection failed', { code: error.code, error });
  });
  return pool;
}
