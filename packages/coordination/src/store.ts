import type pg from 'pg';

/** What a node knows of one member of its group, as the database says. */
export interface NodeRecord {
  nodeId: string;
  role: NodeRole;
  syncEndpoint: string;
  thriftEndpoint: string;
  /** The node heartbeated within one lease (database time). */
  alive: boolean;
  /** Milliseconds since its last heartbeat (database time). */
  silentForMs: number;
}

export type AcquireResult = { acquired: true; epoch: number } | { acquired: false; remainingMs: number };

export type NodeRole = 'PASSIVE' | 'ACTIVE' | 'STEPPING_DOWN';

export interface LeaderRecord {
  nodeId: string;
  epoch: number;
  /** The lease has not expired (database time). */
  valid: boolean;
}

/**
 * The lease and membership statements, behind an interface so LeaderLease's
 * timer logic is unit-tested on fake time with an in-memory store. Only
 * database time (`clock_timestamp()`) decides expiry: node clocks may be
 * wrong or paused, the database is the one arbiter.
 */
export interface LeaseStore {
  /**
   * One atomic statement: takes the lease iff it is free or expired,
   * incrementing the epoch. Otherwise says how long the current lease has
   * left (database time), so the caller can try again right at expiry.
   */
  tryAcquire(groupId: string, nodeId: string, leaseMs: number): Promise<AcquireResult>;
  /** Extends the lease iff this node still holds it under `epoch` and it has not expired. */
  renew(groupId: string, nodeId: string, epoch: number, leaseMs: number): Promise<boolean>;
  /** Ends the lease at once (graceful shutdown) so the peer need not wait for expiry. */
  release(groupId: string, nodeId: string, epoch: number): Promise<void>;
  heartbeat(groupId: string, node: Omit<NodeRecord, 'alive' | 'silentForMs'>): Promise<void>;
  members(groupId: string, leaseMs: number): Promise<NodeRecord[]>;
  leader(groupId: string, leaseMs: number): Promise<LeaderRecord | undefined>;
}

/** The lease length as an SQL interval, from parameter `$n` (milliseconds). */
const lease = (n: number): string => `make_interval(secs => $${n}::double precision / 1000)`;

export class PgLeaseStore implements LeaseStore {
  constructor(private readonly pool: pg.Pool) {}

  async tryAcquire(groupId: string, nodeId: string, leaseMs: number): Promise<AcquireResult> {
    // INSERT for the first leader ever; otherwise UPDATE only an expired row.
    // The row lock of ON CONFLICT makes two concurrent acquirers serialize:
    // the second sees the first's fresh heartbeat and gets no row back. The
    // outer SELECT sees the row as it was before the attempt: the current
    // holder's remaining time when the attempt failed.
    const { rows } = await this.pool.query<{ epoch: string | null; remaining_ms: number | null }>(
      `WITH attempt AS (
         INSERT INTO sp_leader (group_id, node_id, epoch, heartbeat_at)
         VALUES ($1, $2, 1, clock_timestamp())
         ON CONFLICT (group_id) DO UPDATE
           SET node_id = EXCLUDED.node_id, epoch = sp_leader.epoch + 1, heartbeat_at = clock_timestamp()
           WHERE sp_leader.heartbeat_at < clock_timestamp() - ${lease(3)}
         RETURNING epoch)
       SELECT (SELECT epoch FROM attempt) AS epoch,
              (SELECT extract(epoch FROM heartbeat_at + ${lease(3)} - clock_timestamp()) * 1000
                 FROM sp_leader WHERE group_id = $1)::float8 AS remaining_ms`,
      [groupId, nodeId, leaseMs],
    );
    const row = rows[0];
    if (row?.epoch != null) return { acquired: true, epoch: Number(row.epoch) };
    return { acquired: false, remainingMs: Math.max(0, Math.ceil(row?.remaining_ms ?? leaseMs)) };
  }

  async renew(groupId: string, nodeId: string, epoch: number, leaseMs: number): Promise<boolean> {
    const { rowCount } = await this.pool.query(
      `UPDATE sp_leader SET heartbeat_at = clock_timestamp()
       WHERE group_id = $1 AND node_id = $2 AND epoch = $4
         AND heartbeat_at >= clock_timestamp() - ${lease(3)}`,
      [groupId, nodeId, leaseMs, epoch],
    );
    return rowCount === 1;
  }

  async release(groupId: string, nodeId: string, epoch: number): Promise<void> {
    await this.pool.query(
      `UPDATE sp_leader SET heartbeat_at = '-infinity' WHERE group_id = $1 AND node_id = $2 AND epoch = $3`,
      [groupId, nodeId, epoch],
    );
  }

  async heartbeat(groupId: string, node: Omit<NodeRecord, 'alive' | 'silentForMs'>): Promise<void> {
    await this.pool.query(
      `INSERT INTO sp_node (group_id, node_id, role, sync_endpoint, thrift_endpoint, heartbeat_at)
       VALUES ($1, $2, $3, $4, $5, clock_timestamp())
       ON CONFLICT (group_id, node_id) DO UPDATE
         SET role = EXCLUDED.role, sync_endpoint = EXCLUDED.sync_endpoint,
             thrift_endpoint = EXCLUDED.thrift_endpoint, heartbeat_at = clock_timestamp()`,
      [groupId, node.nodeId, node.role, node.syncEndpoint, node.thriftEndpoint],
    );
  }

  async members(groupId: string, leaseMs: number): Promise<NodeRecord[]> {
    const { rows } = await this.pool.query<{
      node_id: string;
      role: NodeRole;
      sync_endpoint: string;
      thrift_endpoint: string;
      alive: boolean;
      silent_ms: number;
    }>(
      `SELECT node_id, role, sync_endpoint, thrift_endpoint,
              heartbeat_at >= clock_timestamp() - ${lease(2)} AS alive,
              (extract(epoch FROM clock_timestamp() - heartbeat_at) * 1000)::float8 AS silent_ms
       FROM sp_node WHERE group_id = $1 ORDER BY node_id`,
      [groupId, leaseMs],
    );
    return rows.map((r) => ({
      nodeId: r.node_id,
      role: r.role,
      syncEndpoint: r.sync_endpoint,
      thriftEndpoint: r.thrift_endpoint,
      alive: r.alive,
      silentForMs: Math.round(r.silent_ms),
    }));
  }

  async leader(groupId: string, leaseMs: number): Promise<LeaderRecord | undefined> {
    const { rows } = await this.pool.query<{ node_id: string; epoch: string; valid: boolean }>(
      `SELECT node_id, epoch, heartbeat_at >= clock_timestamp() - ${lease(2)} AS valid
       FROM sp_leader WHERE group_id = $1`,
      [groupId, leaseMs],
    );
    const row = rows[0];
    return row ? { nodeId: row.node_id, epoch: Number(row.epoch), valid: row.valid } : undefined;
  }
}
