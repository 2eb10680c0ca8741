import type { MemberInstance } from '@faultline/cloud-controller';
import type pg from 'pg';
import type { ActionRecord, ActionType, FaultTimes } from './decisions.js';
import { FencedError } from './fence.js';
import { MAX_MAINTENANCE_ROWS, type MaintenanceEntry, maintenanceEntryOf } from './maintenance.js';
import type { MemberRecord, MemberState } from './member.js';
import { type PgRegistryOptions, type ResolvedPgRegistryOptions, resolvePgRegistryOptions } from './options.js';
import { type Registry, RegistryError } from './registry.js';

interface MemberRow {
  member_id: string;
  cluster_id: string;
  cluster_instance_id: string;
  network_partition_id: string;
  partition_id: string;
  cartridge_type: string;
  state: MemberState;
  instance: MemberInstance | null;
  reason: string | null;
  created_at: number;
  activated_at: number | null;
  terminated_at: number | null;
  drain_until: number | null;
}

interface ActionRow {
  id: string;
  at: number;
  action: ActionType;
  cluster_id: string;
  member_id: string | null;
  reason: string;
  epoch: string | null;
  detail: { fault?: FaultTimes; replaces?: string } | null;
}

/** An action with its row id: ids rise in the order actions were recorded. */
export interface ActionEntry extends ActionRecord {
  id: number;
}

function actionOf(row: ActionRow): ActionEntry {
  const fault = row.detail?.fault;
  return {
    id: Number(row.id),
    at: Math.round(row.at),
    action: row.action,
    clusterId: row.cluster_id,
    memberId: row.member_id,
    reason: row.reason,
    epoch: row.epoch === null ? null : Number(row.epoch),
    fault: fault && typeof fault.declaredAt === 'number' ? fault : null,
    replaces: typeof row.detail?.replaces === 'string' ? row.detail.replaces : null,
  };
}

/** An action's `detail` column: what it knew beyond its reason, or NULL. */
function detailOf(a: ActionRecord): { fault?: FaultTimes; replaces?: string } | null {
  if (!a.fault && !a.replaces) return null;
  return { ...(a.fault ? { fault: a.fault } : {}), ...(a.replaces ? { replaces: a.replaces } : {}) };
}

/** Milliseconds of a timestamptz column, as float8 (bigint would come back as a string). */
const ms = (column: string): string => `(extract(epoch FROM ${column}) * 1000)::float8 AS ${column}`;
const ACTION_COLUMNS = `id, ${ms('at')}, action, cluster_id, member_id, reason, epoch, detail`;

/** Parameter `$n` (epoch ms or NULL) as a timestamptz. */
const ts = (n: number): string => `to_timestamp($${n}::float8 / 1000)`;
/** Writes between two prunes of the action table. */
const PRUNE_EVERY = 100;

/** One query of the registry's tables; a failure becomes a RegistryError with the pg error as its cause. */
async function queryRegistry<R extends pg.QueryResultRow>(
  pool: pg.Pool,
  operation: string,
  sql: string,
  params: unknown[] = [],
): Promise<pg.QueryResult<R>> {
  try {
    return await pool.query<R>(sql, params);
  } catch (cause) {
    throw new RegistryError(operation, { cause });
  }
}

/**
 * Every member the autoscaler has not terminated, oldest first, as its
 * registry keeps them (the autoscaler at start, and tools such as the CLI
 * that show or act on the members). Rejects with RegistryError.
 */
export async function readLiveMembers(pool: pg.Pool): Promise<MemberRecord[]> {
  const { rows } = await queryRegistry<MemberRow>(
    pool,
    'read members',
    `SELECT member_id, cluster_id, cluster_instance_id, network_partition_id, partition_id, cartridge_type,
            state, instance, reason, ${ms('created_at')}, ${ms('activated_at')}, ${ms('terminated_at')},
            ${ms('drain_until')}
       FROM autoscaler_member WHERE state <> 'Terminated' ORDER BY created_at, member_id`,
  );
  return rows.map(memberOf);
}

const MEMBER_COLUMNS = `member_id, cluster_id, cluster_instance_id, network_partition_id, partition_id, cartridge_type,
            state, instance, reason, ${ms('created_at')}, ${ms('activated_at')}, ${ms('terminated_at')},
            ${ms('drain_until')}`;

function memberOf(row: MemberRow): MemberRecord {
  return {
    memberId: row.member_id,
    clusterId: row.cluster_id,
    clusterInstanceId: row.cluster_instance_id,
    networkPartitionId: row.network_partition_id,
    partitionId: row.partition_id,
    cartridgeType: row.cartridge_type,
    state: row.state,
    instance: row.instance,
    reason: row.reason,
    createdAt: Math.round(row.created_at),
    activatedAt: row.activated_at === null ? null : Math.round(row.activated_at),
    terminatedAt: row.terminated_at === null ? null : Math.round(row.terminated_at),
    // A time a Date can hold, or none: `infinity` set by hand is no drain end anyone can show or wait for.
    drainUntil:
      row.drain_until === null || !(Math.abs(row.drain_until) <= 8.64e15) ? null : Math.round(row.drain_until),
  };
}

/** Members by id, in any state (terminated ones until they are pruned). Rejects with RegistryError. */
export async function readMembers(pool: pg.Pool, memberIds: readonly string[]): Promise<MemberRecord[]> {
  if (memberIds.length === 0) return [];
  const { rows } = await queryRegistry<MemberRow>(
    pool,
    'read members by id',
    `SELECT ${MEMBER_COLUMNS} FROM autoscaler_member WHERE member_id = ANY($1::text[])`,
    [memberIds],
  );
  return rows.map(memberOf);
}

/** Up to `limit` actions recorded after the action `afterId`, oldest first (the console's feed). Rejects with RegistryError. */
export async function readActionsAfter(pool: pg.Pool, afterId: number, limit: number): Promise<ActionEntry[]> {
  const { rows } = await queryRegistry<ActionRow>(
    pool,
    'read actions',
    `SELECT ${ACTION_COLUMNS} FROM autoscaler_action WHERE id > $1 ORDER BY id LIMIT $2`,
    [afterId, limit],
  );
  return rows.map(actionOf);
}

/**
 * What a member's causal chain is read from: the member's own actions; the
 * minimum-rule spawn that names it as the member it replaces, when the
 * autoscaler knew (`replacedBy`); and, for a spawn recorded without that
 * (an autoscaler that restarted in between), the removals, scale-downs and
 * minimum-rule spawns of its cluster around its removal (`around` rows
 * either side at most). Oldest first. Rejects with RegistryError.
 */
export async function readMemberActions(
  pool: pg.Pool,
  memberId: string,
  around = 500,
): Promise<{ own: ActionEntry[]; replacedBy: ActionEntry | undefined; cluster: ActionEntry[] }> {
  const own = (
    await queryRegistry<ActionRow>(
      pool,
      'read member actions',
      `SELECT ${ACTION_COLUMNS} FROM autoscaler_action WHERE member_id = $1 ORDER BY id LIMIT 100`,
      [memberId],
    )
  ).rows.map(actionOf);
  const last = own.find((a) => a.action === 'MemberRemoved') ?? own.at(-1);
  if (!last) return { own, replacedBy: undefined, cluster: [] };
  const named = await queryRegistry<ActionRow>(
    pool,
    'read replacement',
    `SELECT ${ACTION_COLUMNS} FROM autoscaler_action
      WHERE cluster_id = $1 AND action = 'MemberSpawnAction' AND detail->>'replaces' = $2 ORDER BY id LIMIT 1`,
    [last.clusterId, memberId],
  );
  const replacedBy = named.rows[0] ? actionOf(named.rows[0]) : undefined;
  if (replacedBy) return { own, replacedBy, cluster: [] };
  const { rows } = await queryRegistry<ActionRow>(
    pool,
    'read cluster actions',
    `(SELECT ${ACTION_COLUMNS} FROM autoscaler_action
        WHERE cluster_id = $1 AND id < $2 AND action IN ('MemberRemoved', 'MemberSpawnAction', 'ScaleDownAction')
        ORDER BY id DESC LIMIT $3)
     UNION ALL
     (SELECT ${ACTION_COLUMNS} FROM autoscaler_action
        WHERE cluster_id = $1 AND id >= $2 AND action IN ('MemberRemoved', 'MemberSpawnAction', 'ScaleDownAction')
        ORDER BY id LIMIT $3)`,
    [last.clusterId, last.id, around],
  );
  return { own, replacedBy: undefined, cluster: rows.map(actionOf).sort((a, b) => a.id - b.id) };
}

/** Every cluster's persisted monitor state as stored (`parseMonitorState` checks it). Rejects with RegistryError. */
export async function readClusterStates(pool: pg.Pool): Promise<Map<string, unknown>> {
  const { rows } = await queryRegistry<{ cluster_id: string; state: unknown }>(
    pool,
    'read cluster states',
    'SELECT cluster_id, state FROM autoscaler_cluster',
  );
  return new Map(rows.map((row) => [row.cluster_id, row.state]));
}

const MAINTENANCE_COLUMNS = `cluster_id, member_id, reason, set_by, ${ms('set_at')}`;

type MaintenanceRow = { cluster_id: string; member_id: string | null; reason: string; set_by: string; set_at: number };

/**
 * Every maintenance row (infra/sql/005_autoscaler_maintenance.sql), whole
 * clusters first, at most MAX_MAINTENANCE_ROWS (`truncated` then): one query
 * for every cluster, what the acting autoscaler reads at each monitor tick
 * and `faultline stack status` shows. A row that does not check is left out.
 * Rejects with RegistryError.
 */
export async function readMaintenance(pool: pg.Pool): Promise<{ entries: MaintenanceEntry[]; truncated: boolean }> {
  const { rows } = await queryRegistry<MaintenanceRow>(
    pool,
    'read maintenance',
    `SELECT ${MAINTENANCE_COLUMNS} FROM autoscaler_maintenance
      ORDER BY cluster_id, member_id NULLS FIRST LIMIT $1`,
    [MAX_MAINTENANCE_ROWS + 1],
  );
  const entries = rows.slice(0, MAX_MAINTENANCE_ROWS).flatMap((row) => maintenanceEntryOf(row) ?? []);
  return { entries, truncated: rows.length > MAX_MAINTENANCE_ROWS };
}

/**
 * Puts a cluster (`memberId` null) or one member in maintenance: one row,
 * written again by a second call (reason and who updated, its start kept).
 * Returns the row as stored. Rejects with RegistryError (the table's CHECKs
 * refuse an id that is not one, a reason over 500 characters).
 */
export async function writeMaintenance(
  pool: pg.Pool,
  entry: Omit<MaintenanceEntry, 'since'>,
): Promise<MaintenanceEntry> {
  const { rows } = await queryRegistry<MaintenanceRow>(
    pool,
    'write maintenance',
    `INSERT INTO autoscaler_maintenance (cluster_id, member_id, reason, set_by) VALUES ($1, $2, $3, $4)
       ON CONFLICT (cluster_id, (coalesce(member_id, ''))) DO UPDATE
         SET reason = EXCLUDED.reason, set_by = EXCLUDED.set_by, updated_at = clock_timestamp()
     RETURNING ${MAINTENANCE_COLUMNS}`,
    [entry.clusterId, entry.memberId, entry.reason, entry.by],
  );
  const stored = rows[0] && maintenanceEntryOf(rows[0]);
  if (!stored) throw new RegistryError('write maintenance', { context: { clusterId: entry.clusterId } });
  return stored;
}

/** Ends a cluster's (`memberId` null) or a member's maintenance; the row deleted, if there was one. Rejects with RegistryError. */
export async function deleteMaintenance(
  pool: pg.Pool,
  clusterId: string,
  memberId: string | null,
): Promise<MaintenanceEntry | undefined> {
  const { rows } = await queryRegistry<MaintenanceRow>(
    pool,
    'delete maintenance',
    `DELETE FROM autoscaler_maintenance WHERE cluster_id = $1 AND coalesce(member_id, '') = coalesce($2, '')
     RETURNING ${MAINTENANCE_COLUMNS}`,
    [clusterId, memberId],
  );
  return rows[0] && maintenanceEntryOf(rows[0]);
}

/** The autoscaler's last `limit` decisions, newest first. Rejects with RegistryError. */
export async function readLastActions(pool: pg.Pool, limit: number): Promise<ActionEntry[]> {
  const { rows } = await queryRegistry<ActionRow>(
    pool,
    'read actions',
    `SELECT ${ACTION_COLUMNS} FROM autoscaler_action ORDER BY id DESC LIMIT $1`,
    [limit],
  );
  return rows.map(actionOf);
}

/** The SP group's current lease epoch, from parameter `$n` (the group id); NULL (so LEAST ignores it) before its first lease. */
const leaderEpochOf = (n: number): string => `(SELECT epoch FROM sp_leader WHERE group_id = $${n})`;

/** Locks the autoscaler node's own lease row if it still holds it under its epoch and the lease has not expired. */
const HOLDS_LEASE = `SELECT 1 FROM sp_leader
   WHERE group_id = $1 AND node_id = $2 AND epoch = $3
     AND heartbeat_at >= clock_timestamp() - make_interval(secs => $4::double precision / 1000)
   FOR SHARE`;

/**
 * The registry in PostgreSQL (infra/sql/002_autoscaler_registry.sql): one row
 * per member ever created, the last actions, the newest SP epoch. Every
 * failure becomes a RegistryError with the pg error as its cause. Its two
 * readers, readLiveMembers and readLastActions, serve tools as well.
 */
export class PgRegistry implements Registry {
  /** How many action rows and terminated member rows prune() keeps. */
  private readonly retention: ResolvedPgRegistryOptions;
  private actionWrites = 0;

  constructor(
    private readonly pool: pg.Pool,
    options: PgRegistryOptions = {},
  ) {
    this.retention = resolvePgRegistryOptions(options);
  }

  private query<R extends pg.QueryResultRow>(operation: string, sql: string, params: unknown[] = []) {
    return queryRegistry<R>(this.pool, operation, sql, params);
  }

  /**
   * A write. With a fence (the autoscaler pair), in one transaction that
   * first locks the node's own lease row (FOR SHARE): written only if the
   * node holds the lease under its epoch and it has not expired (database
   * time), and the peer cannot take the lease before the write commits. A
   * deposed or paused node's write is refused (FencedError) whatever it
   * believes about itself.
   */
  private async write(operation: string, sql: string, params: unknown[]): Promise<void> {
    const { fence } = this.retention;
    if (!fence) {
      await this.query(operation, sql, params);
      return;
    }
    const epoch = fence.lease.isValid() ? fence.lease.epoch : undefined;
    if (epoch === undefined) throw new FencedError(`registry ${operation}`, { nodeId: fence.nodeId });
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (cause) {
      throw new RegistryError(operation, { cause });
    }
    let failed: unknown;
    try {
      await client.query('BEGIN');
      const held = await client.query(HOLDS_LEASE, [fence.groupId, fence.nodeId, epoch, fence.leaseMs]);
      if (held.rowCount !== 1) {
        await client.query('ROLLBACK');
        throw new FencedError(`registry ${operation}`, { nodeId: fence.nodeId, epoch });
      }
      await client.query(sql, params);
      await client.query('COMMIT');
    } catch (error) {
      failed = error;
      await client.query('ROLLBACK').catch(() => {});
      if (error instanceof FencedError) throw error;
      throw new RegistryError(operation, { cause: error });
    } finally {
      // A connection whose transaction state is unknown is not handed to the next caller.
      client.release(failed !== undefined && !(failed instanceof FencedError));
    }
  }

  liveMembers(): Promise<MemberRecord[]> {
    return readLiveMembers(this.pool);
  }

  async saveMember(r: MemberRecord): Promise<void> {
    await this.write(
      'write member',
      `INSERT INTO autoscaler_member (member_id, cluster_id, cluster_instance_id, network_partition_id, partition_id,
                                      cartridge_type, state, instance, reason, created_at, activated_at, terminated_at,
                                      drain_until)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, ${ts(10)}, ${ts(11)}, ${ts(12)}, ${ts(13)})
       ON CONFLICT (member_id) DO UPDATE
         SET state = EXCLUDED.state, instance = EXCLUDED.instance, reason = EXCLUDED.reason,
             activated_at = EXCLUDED.activated_at, terminated_at = EXCLUDED.terminated_at,
             drain_until = EXCLUDED.drain_until, updated_at = clock_timestamp()`,
      [
        r.memberId,
        r.clusterId,
        r.clusterInstanceId,
        r.networkPartitionId,
        r.partitionId,
        r.cartridgeType,
        r.state,
        r.instance === null ? null : JSON.stringify(r.instance),
        r.reason,
        r.createdAt,
        r.activatedAt,
        r.terminatedAt,
        r.drainUntil ?? null,
      ],
    );
  }

  async recordAction(a: ActionRecord): Promise<void> {
    await this.write(
      'write action',
      `INSERT INTO autoscaler_action (at, action, cluster_id, member_id, reason, epoch, detail)
       VALUES (${ts(1)}, $2, $3, $4, $5, $6, $7)`,
      [a.at, a.action, a.clusterId, a.memberId, a.reason, a.epoch, detailOf(a)],
    );
    this.actionWrites += 1;
    if (this.actionWrites % PRUNE_EVERY === 0) await this.prune();
  }

  async recentActions(limit: number): Promise<ActionRecord[]> {
    return (await readLastActions(this.pool, limit)).reverse();
  }

  /**
   * The fence, never above the SP group's current lease epoch (the lease in
   * `sp_leader`, same database): no real SP event can carry more, so a fence
   * above it (poisoned by a forged epoch before decoding refused them, or
   * left from before a database restore that lowered the lease) reads as that
   * epoch. With no lease row yet, the fence as stored.
   */
  async newestEpoch(): Promise<number | undefined> {
    const { rows } = await this.query<{ newest_epoch: string }>(
      'read epoch',
      `SELECT LEAST(newest_epoch, ${leaderEpochOf(1)}) AS newest_epoch FROM autoscaler_fence`,
      [this.retention.spGroupId],
    );
    return rows[0] ? Number(rows[0].newest_epoch) : undefined;
  }

  /** Raises the fence to `epoch`, capped like newestEpoch() (which also repairs a poisoned or restored row). */
  async saveEpoch(epoch: number): Promise<void> {
    await this.write(
      'write epoch',
      `INSERT INTO autoscaler_fence (id, newest_epoch) VALUES (true, LEAST($1::bigint, ${leaderEpochOf(2)}))
       ON CONFLICT (id) DO UPDATE
         SET newest_epoch = LEAST(GREATEST(autoscaler_fence.newest_epoch, EXCLUDED.newest_epoch), ${leaderEpochOf(2)}),
             updated_at = clock_timestamp()`,
      [epoch, this.retention.spGroupId],
    );
  }

  /** The SP group's current lease epoch (its one row in `sp_leader`; other groups, the autoscaler pair's own, are not it). */
  async leaderEpoch(): Promise<number | undefined> {
    const { rows } = await this.query<{ epoch: string }>(
      'read leader epoch',
      `SELECT epoch FROM sp_leader WHERE group_id = $1`,
      [this.retention.spGroupId],
    );
    const epoch = rows[0]?.epoch;
    return epoch === undefined ? undefined : Number(epoch);
  }

  clusterStates(): Promise<Map<string, unknown>> {
    return readClusterStates(this.pool);
  }

  async maintenance(): Promise<MaintenanceEntry[]> {
    return (await readMaintenance(this.pool)).entries;
  }

  async saveClusterState(clusterId: string, state: unknown): Promise<void> {
    await this.write(
      'write cluster state',
      `INSERT INTO autoscaler_cluster (cluster_id, state) VALUES ($1, $2::jsonb)
       ON CONFLICT (cluster_id) DO UPDATE SET state = EXCLUDED.state, updated_at = clock_timestamp()`,
      [clusterId, JSON.stringify(state)],
    );
  }

  /** Keeps the newest `keepActions` actions and `keepTerminated` terminated members. */
  async prune(): Promise<void> {
    await this.write(
      'prune',
      `WITH old_actions AS (
         DELETE FROM autoscaler_action
          WHERE id <= (SELECT id FROM autoscaler_action ORDER BY id DESC OFFSET $1 LIMIT 1))
       DELETE FROM autoscaler_member
        WHERE member_id IN (SELECT member_id FROM autoscaler_member WHERE state = 'Terminated'
                             ORDER BY terminated_at DESC NULLS LAST OFFSET $2)`,
      [this.retention.keepActions, this.retention.keepTerminated],
    );
  }
}
