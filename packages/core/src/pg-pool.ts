import pg from 'pg';
import { withDefaults } from './lifecycle.js';
import { type Logger, nullLogger } from './logger.js';

export interface PgPoolOptions {
  connectionString: string;
  /** @default 4 */
  max?: number;
  /** A query that takes longer fails, so a hung database cannot hang a heartbeat forever. @default 5_000 */
  queryTimeoutMs?: number;
  /** @default 2_000 */
  connectTimeoutMs?: number;
  /** @default nullLogger */
  logger?: Logger;
}

const POOL_DEFAULTS = { max: 4, queryTimeoutMs: 5_000, connectTimeoutMs: 2_000, logger: nullLogger };

/**
 * A pg pool with the project's settings. An idle client whose server goes
 * away (PostgreSQL stopped, admin shutdown 57P01) emits 'error' on the pool;
 * without a listener that is an uncaught exception that kills the process, so
 * the listener is always attached here and the failure logged.
 */
export function createPgPool(input: PgPoolOptions): pg.Pool {
  const options = withDefaults(POOL_DEFAULTS, input);
  const log = options.logger.child({ component: 'pg' });
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.max,
    query_timeout: options.queryTimeoutMs,
    connectionTimeoutMillis: options.connectTimeoutMs,
  });
  pool.on('error', (error: Error & { code?: string }) => {
    log.warn('idle database connection failed', { event: 'pg.idle_connection_failed', code: error.code, error });
  });
  return pool;
}
