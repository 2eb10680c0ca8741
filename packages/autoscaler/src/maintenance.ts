import { ID_PATTERN } from '@faultline/core';

/**
 * Maintenance mode (README "Autoscaler", "Maintenance mode"): an operator
 * says a cluster, or one member of it, is being worked on. Its faults are
 * logged and shown (held, cause `maintenance`) and not acted on; for a whole
 * cluster the minimum rule and the scaling rule pause as well. The registry's
 * `autoscaler_maintenance` table is the only truth: the stack's supervisor
 * writes it (`faultline maintenance on|off`), the acting autoscaler reads it
 * whole at every monitor tick. No message carries it, so nothing of it can be
 * lost, duplicated, reordered or forged on the way, and a restart or a
 * takeover by the other node of the pair reads the same rows.
 */

/** Longest `--reason` kept (the column's CHECK says the same). */
export const MAX_MAINTENANCE_REASON = 500;
/** Longest `set_by` (user@host). */
export const MAX_MAINTENANCE_BY = 200;
/** Rows read per tick at most: more is a table filled by hand, and is logged. */
export const MAX_MAINTENANCE_ROWS = 10_000;

/** One row of the maintenance table: the whole cluster (`memberId` null) or one member. */
export interface MaintenanceEntry {
  clusterId: string;
  memberId: string | null;
  /** Why, as given (may be empty). */
  reason: string;
  /** Who set it: the user (and host) of the command. */
  by: string;
  /** Epoch ms it began (database time). */
  since: number;
}

/** One cluster's maintenance as its monitor applies it. */
export interface ClusterMaintenance {
  /** The whole cluster is in maintenance. */
  cluster: MaintenanceEntry | undefined;
  /** Members in maintenance on their own, by member id. */
  members: ReadonlyMap<string, MaintenanceEntry>;
}

export const NO_MAINTENANCE: ClusterMaintenance = Object.freeze({ cluster: undefined, members: new Map() });

/**
 * A row as read, checked: a row edited by hand past the table's CHECKs (or
 * another version's) is left out rather than trusted. Undefined when refused.
 */
export function maintenanceEntryOf(row: {
  cluster_id: unknown;
  member_id: unknown;
  reason: unknown;
  set_by: unknown;
  set_at: unknown;
}): MaintenanceEntry | undefined {
  const { cluster_id: clusterId, member_id: memberId, reason, set_by: by, set_at: since } = row;
  if (typeof clusterId !== 'string' || !ID_PATTERN.test(clusterId)) return undefined;
  if (memberId !== null && (typeof memberId !== 'string' || !ID_PATTERN.test(memberId))) return undefined;
  if (typeof reason !== 'string' || typeof by !== 'string') return undefined;
  // A time a Date can hold (PostgreSQL's reach further): shown as an ISO time, it must not throw.
  if (typeof since !== 'number' || !(Math.abs(since) <= 8.64e15)) return undefined;
  return {
    clusterId,
    memberId,
    reason: reason.slice(0, MAX_MAINTENANCE_REASON),
    by: by.slice(0, MAX_MAINTENANCE_BY),
    since: Math.round(since),
  };
}

/** The rows, by cluster. */
export function maintenanceByCluster(entries: readonly MaintenanceEntry[]): Map<string, ClusterMaintenance> {
  const out = new Map<string, { cluster: MaintenanceEntry | undefined; members: Map<string, MaintenanceEntry> }>();
  for (const entry of entries) {
    let cluster = out.get(entry.clusterId);
    if (!cluster) {
      cluster = { cluster: undefined, members: new Map() };
      out.set(entry.clusterId, cluster);
    }
    if (entry.memberId === null) cluster.cluster = entry;
    else cluster.members.set(entry.memberId, entry);
  }
  return out;
}

/** `by alice@host since 10:02:11: kernel upgrade` (the reason only when one was given). */
export function describeMaintenance(entry: MaintenanceEntry): string {
  const since = new Date(entry.since).toISOString().slice(11, 19);
  return `by ${entry.by} since ${since} UTC${entry.reason ? `: ${entry.reason}` : ''}`;
}
