import { type Clock, ConfigError, DEFAULTS, type Logger, nullLogger, withDefaults } from '@faultline/core';
import type { LeaseEvent } from './leader-lease.js';
import type { LeaseStore, NodeRole } from './store.js';

export interface LeaderLeaseOptions {
  store: LeaseStore;
  groupId: string;
  nodeId: string;
  /** What this node reports in its membership row at every heartbeat. */
  describe: () => { role: NodeRole; syncEndpoint: string; thriftEndpoint: string };
  onChange: (event: LeaseEvent) => void;
  clock: Clock;
  /** @default DEFAULTS.heartbeatIntervalMs (1 000, WSO2 SP) */
  heartbeatIntervalMs?: number;
  /** The lease lasts interval × retries. @default DEFAULTS.heartbeatMaxRetry (2) */
  heartbeatMaxRetry?: number;
  /**
   * Step down this long before the lease could expire in the database; shorter than the lease.
   * @default DEFAULTS.fencingMarginMs (300)
   */
  fencingMarginMs?: number;
  /** @default nullLogger */
  logger?: Logger;
}

export type ResolvedLeaderLeaseOptions = Required<LeaderLeaseOptions>;

/**
 * Resolves every default once, and refuses a margin that would leave the
 * lease no valid time at all (a ConfigError naming `fencingMarginMs`).
 */
export function resolveLeaderLeaseOptions(input: LeaderLeaseOptions): ResolvedLeaderLeaseOptions {
  const options = withDefaults(
    {
      heartbeatIntervalMs: DEFAULTS.heartbeatIntervalMs as number,
      heartbeatMaxRetry: DEFAULTS.heartbeatMaxRetry as number,
      fencingMarginMs: DEFAULTS.fencingMarginMs as number,
      logger: nullLogger,
    },
    input,
  );
  const leaseMs = options.heartbeatIntervalMs * options.heartbeatMaxRetry;
  if (options.fencingMarginMs >= leaseMs) {
    throw ConfigError.forKey(
      'fencingMarginMs',
      'must be shorter than the lease (heartbeatIntervalMs × heartbeatMaxRetry)',
      {
        fencingMarginMs: options.fencingMarginMs,
        leaseMs,
      },
    );
  }
  return options;
}

/** A holder starts a renewal every interval / RENEWALS_PER_INTERVAL (leader-lease.ts says why). */
export const RENEWALS_PER_INTERVAL = 8;

/**
 * Renewals one LeaderLease keeps in flight at most: one every
 * interval / RENEWALS_PER_INTERVAL, each abandoned after lease − margin. With
 * its acquire and its node heartbeat, what a connection pool of its own needs
 * so that statements never queue for a connection (queueing is latency too).
 */
export function maxRenewalsInFlight(
  options: Pick<ResolvedLeaderLeaseOptions, 'heartbeatIntervalMs' | 'heartbeatMaxRetry' | 'fencingMarginMs'>,
): number {
  const { heartbeatIntervalMs, heartbeatMaxRetry, fencingMarginMs } = options;
  return Math.ceil(
    (heartbeatIntervalMs * heartbeatMaxRetry - fencingMarginMs) / (heartbeatIntervalMs / RENEWALS_PER_INTERVAL),
  );
}
