import {
  type LocalHandle,
  linuxProcessTable,
  localHandle,
  type MemberInstance,
  processState,
} from '@faultline/cloud-controller';
import type pg from 'pg';

export interface MemberRow {
  memberId: string;
  clusterId: string;
  state: string;
  instance: MemberInstance | null;
  createdAt: string;
}

export interface ActionRow {
  at: string;
  action: string;
  clusterId: string;
  memberId: string | null;
  reason: string;
  epoch: number | null;
}

/** Members the autoscaler has not terminated, from its registry (002_autoscaler_registry.sql). */
export async function liveMembers(pool: pg.Pool): Promise<MemberRow[]> {
  const { rows } = await pool.query<{
    member_id: string;
    cluster_id: string;
    state: string;
    instance: MemberInstance | null;
    created_at: Date;
  }>(
    `SELECT member_id, cluster_id, state, instance, created_at FROM autoscaler_member
     WHERE state <> 'Terminated' ORDER BY cluster_id, created_at`,
  );
  return rows.map((r) => ({
    memberId: r.member_id,
    clusterId: r.cluster_id,
    state: r.state,
    instance: r.instance,
    createdAt: r.created_at.toISOString(),
  }));
}

export async function lastActions(pool: pg.Pool, limit = 10): Promise<ActionRow[]> {
  const { rows } = await pool.query<{
    at: Date;
    action: string;
    cluster_id: string;
    member_id: string | null;
    reason: string;
    epoch: string | null;
  }>('SELECT at, action, cluster_id, member_id, reason, epoch FROM autoscaler_action ORDER BY id DESC LIMIT $1', [
    limit,
  ]);
  return rows.map((r) => ({
    at: r.at.toISOString(),
    action: r.action,
    clusterId: r.cluster_id,
    memberId: r.member_id,
    reason: r.reason,
    epoch: r.epoch === null ? null : Number(r.epoch),
  }));
}

/** The local process handle of a member, only if its recorded processes are still the same ones (no reused pid). */
export function liveHandle(member: MemberRow): LocalHandle | undefined {
  const handle = member.instance ? localHandle(member.instance) : undefined;
  if (!handle) return undefined;
  return processState(linuxProcessTable, handle, handle.workload) === 'gone' ? undefined : handle;
}
