import { FaultlineError, type FaultlineErrorOptions } from '@faultline/core';
import type { ActionRecord } from './decisions.js';
import type { MaintenanceEntry } from './maintenance.js';
import type { MemberRecord } from './member.js';

/** The registry could not be read or written (PostgreSQL down, a query timed out). */
export class RegistryError extends FaultlineError {
  constructor(operation: string, options: FaultlineErrorOptions = {}) {
    const cause = options.cause instanceof Error ? `: ${options.cause.message}` : '';
    super('FL_ERR_REGISTRY_FAILED', `member registry ${operation} failed${cause}`, {
      ...options,
      context: { operation, ...options.context },
    });
  }
}

/**
 * The autoscaler's memory across restarts (README "Autoscaler", "Registry"
 * and "Restart and adoption": the member registry lives in PostgreSQL, so a
 * restarted autoscaler adopts the members that are still running).
 * PgRegistry is the real one; MemoryRegistry (`@faultline/autoscaler/testing`)
 * serves unit tests. Methods reject with RegistryError.
 */
export interface Registry {
  /** Every member not Terminated, oldest first. */
  liveMembers(): Promise<MemberRecord[]>;
  /** Inserts or replaces a member's row (the whole row: writes are idempotent). */
  saveMember(record: MemberRecord): Promise<void>;
  recordAction(action: ActionRecord): Promise<void>;
  /** The last `limit` actions, oldest first. */
  recentActions(limit: number): Promise<ActionRecord[]>;
  /** The newest SP leader epoch the autoscaler has seen, so a restart keeps fencing. */
  newestEpoch(): Promise<number | undefined>;
  /** Raises the stored epoch to `epoch` (never lowers it; PgRegistry caps it at the newest SP leader epoch). */
  saveEpoch(epoch: number): Promise<void>;
  /**
   * The newest epoch an SP leader holds or held (the lease table), re-read
   * every monitor interval: the fence rises with the lease, not only with the
   * first message of a new leader. Undefined before the first lease.
   */
  leaderEpoch(): Promise<number | undefined>;
  /** Every cluster's persisted monitor state, as stored (validated by the caller). */
  clusterStates(): Promise<Map<string, unknown>>;
  /** Replaces a cluster's persisted monitor state (backoff, storm hold, held faults). */
  saveClusterState(clusterId: string, state: unknown): Promise<void>;
  /**
   * Every maintenance row (README "Maintenance mode"), re-read whole at every
   * monitor tick: one query for all clusters. The autoscaler never writes them.
   */
  maintenance(): Promise<MaintenanceEntry[]>;
}
