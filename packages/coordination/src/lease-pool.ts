import { createPgPool, type Logger, nullLogger } from '@faultline/core';
import type pg from 'pg';
import type { ResolvedLeaderLeaseOptions } from './options.js';
import { maxRenewalsInFlight } from './options.js';

export interface LeasePoolOptions
  extends Pick<ResolvedLeaderLeaseOptions, 'heartbeatIntervalMs' | 'heartbeatMaxRetry' | 'fencingMarginMs'> {
  connectionString: string;
  /** Connections besides the renewals: the acquire, the node heartbeat, and the caller's own reads. */
  extra: number;
  logger?: Logger;
}

/**
 * The pool of a LeaderLease's PgLeaseStore, sized and kept so that latency
 * is the only thing a renewal waits for:
 * - one connection per renewal that can be in flight, plus `extra`, all kept
 *   open however long they idle (`min` = `max`) and opened at once (`warm()`):
 *   a renewal that first had to open a connection (TCP, start-up,
 *   authentication, several round trips) would be late by exactly the latency
 *   it is meant to survive;
 * - the server gives up on a statement and on a lock wait after lease −
 *   margin (`statement_timeout`, `lock_timeout`), when the renewal can no
 *   longer extend anything: an abandoned renewal does not keep running,
 *   queued on the row lock, and commit a lease extension later.
 */
export function createLeasePool(options: LeasePoolOptions): pg.Pool & { warm(): Promise<void> } {
  const size = maxRenewalsInFlight(options) + options.extra;
  const leaseMs = options.heartbeatIntervalMs * options.heartbeatMaxRetry;
  const logger = options.logger ?? nullLogger;
  const pool = createPgPool({
    connectionString: options.connectionString,
    max: size,
    min: size,
    serverTimeoutMs: leaseMs - options.fencingMarginMs,
    logger,
  });
  return Object.assign(pool, {
    /** Opens every connection now; a database that does not answer yet is not an error (they open on use). */
    async warm(): Promise<void> {
      const clients = await Promise.allSettled(Array.from({ length: size }, () => pool.connect()));
      for (const c of clients) if (c.status === 'fulfilled') c.value.release();
      const failed = clients.filter((c) => c.status === 'rejected').length;
      if (failed > 0) {
        logger.warn('lease connections not all opened yet; they open on use', {
          event: 'lease.pool_warm_incomplete',
          failed,
          size,
        });
      }
    },
  });
}
