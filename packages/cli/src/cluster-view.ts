import {
  type ActionRecord,
  type MaintenanceEntry,
  type MemberRecord,
  type MonitorState,
  parseMonitorState,
  readClusterStates,
  readLastActions,
  readLiveMembers,
  readMaintenance,
} from '@faultline/autoscaler';
import {
  type LocalHandle,
  linuxProcessTable,
  localHandle,
  type ProcessTable,
  processState,
} from '@faultline/cloud-controller';
import type pg from 'pg';

/** A member the autoscaler has not terminated, as its registry keeps it. */
export type MemberRow = MemberRecord;

/** An autoscaler decision as `faultline stack status` shows it (`--json` too): `at` as an ISO time. */
export interface ActionRow extends Omit<ActionRecord, 'at'> {
  at: string;
}

/** Members the autoscaler has not terminated, through the autoscaler's registry reader. */
export function liveMembers(pool: pg.Pool): Promise<MemberRow[]> {
  return readLiveMembers(pool);
}

/** Each cluster's persisted monitor state (held faults, storm hold, detector silence); rows that do not parse are left out. */
export async function clusterStates(pool: pg.Pool): Promise<Map<string, MonitorState>> {
  const out = new Map<string, MonitorState>();
  for (const [clusterId, raw] of await readClusterStates(pool)) {
    const state = parseMonitorState(raw);
    if (typeof state !== 'string') out.set(clusterId, state);
  }
  return out;
}

/** Every maintenance row (whole clusters and members), as the acting autoscaler reads them. */
export async function maintenanceRows(pool: pg.Pool): Promise<MaintenanceEntry[]> {
  return (await readMaintenance(pool)).entries;
}

/** The autoscaler's last `limit` decisions, newest first. */
export async function lastActions(pool: pg.Pool, limit = 10): Promise<ActionRow[]> {
  const actions = await readLastActions(pool, limit);
  return actions.map((action) => ({ ...action, at: new Date(action.at).toISOString() }));
}

/** The local process handle of a member, only if its recorded processes are still the same ones (no reused pid). */
export function liveHandle(member: MemberRow, table: ProcessTable = linuxProcessTable): LocalHandle | undefined {
  const handle = member.instance ? localHandle(member.instance) : undefined;
  if (!handle) return undefined;
  return processState(table, handle, handle.workload) === 'gone' ? undefined : handle;
}
