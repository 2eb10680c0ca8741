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
  /**
   * Connections kept open however long they idle (pg-pool's `min`); a pool
   * whose every statement is late when it needs a new connection (the
   * lease's) keeps all of them. @default 0
   */
  min?: number;
  /**
   * The server gives up on a statement, and on a lock wait, after this long
   * (`statement_timeout`, `lock_timeout`): a statement the client abandoned
   * at its query timeout does not keep running, holding or awaiting a row
   * lock, and commit later. @default none
   */
  serverTimeoutMs?: number;
  /** @default nullLogger */
  logger?: Logger;
}

const POOL_DEFAULTS = {
  max: 4,
  min: 0,
  queryTimeoutMs: 5_000,
  connectTimeoutMs: 2_000,
  serverTimeoutMs: undefined as number | undefined,
  logger: nullLogger,
};

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
    min: options.min,
    query_timeout: options.queryTimeoutMs,
    connectionTimeoutMillis: options.connectTimeoutMs,
    ...(options.serverTimeoutMs === undefined
      ? {}
      : { statement_timeout: options.serverTimeoutMs, lock_timeout: options.serverTimeoutMs }),
  });
  pool.on('error', (error: Error & { code?: string }) => {
    log.warn('idle database connection failed', { event: 'pg.idle_connection_failed', code: error.code, error });
  });
  return pool;
}
