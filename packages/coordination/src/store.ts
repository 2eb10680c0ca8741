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

/** The holder a successful acquire took the lease from. */
export interface PreviousHolder {
  nodeId: string;
  epoch: number;
  /**
   * How long it had not renewed the lease (database time), or, for a lease it
   * released, how long its membership row had not heartbeated; absent when
   * neither is known.
   */
  silentForMs?: number;
}

/**
 * `dbNowMs` is the database's `clock_timestamp()` (epoch ms) while the
 * statement ran: the caller compares its progress with its own monotonic
 * clock (DatabaseClockWatch).
 */
export type AcquireResult =
  | { acquired: true; epoch: number; dbNowMs: number; previous?: PreviousHolder }
  | {
      acquired: false;
      /** Time the current lease has left (database time), 0 when none or expired. */
      remainingMs: number;
      dbNowMs: number;
      /** The lease as it stood: `expiresAtMs` is database time (epoch ms), -Infinity once released. */
      holder?: { nodeId: string; epoch: number; expiresAtMs: number };
    };

export interface AcquireOptions {
  /** The caller stops waiting after this long (a statement timeout). */
  timeoutMs?: number;
  /**
   * The caller's own reckoning of the database time now (epoch ms), carried
   * forward from earlier readings on its monotonic clock, never ahead of the
   * database's: the lease is taken only if it has expired by this time too,
   * so a database clock that steps forward between two readings cannot end
   * the holder's lease early. Unset: database time alone decides.
   */
  reckonedNowMs?: number;
  /** Only read the lease and the database clock, never take it (a node waiting out a clock step). */
  readOnly?: boolean;
  /**
   * Leave a lease this node held in an earlier life (its own row, expired: it
   * died) to another node of the group that heartbeated within one lease: a
   * restarted active comes back as passive, it does not race the passive that
   * followed it for the lease its own death left.
   */
  yieldOwnToPeer?: boolean;
}

export interface RenewOptions {
  /** The caller stops waiting after this long (a statement timeout). */
  timeoutMs?: number;
}

export interface RenewResult {
  renewed: boolean;
  /**
   * The lease row was locked by another statement (another renewal of this
   * node's, a peer's acquire, a registry write fenced by it): neither renewed
   * nor refused; the next renewal tries again. Renewals never queue on the
   * row lock, where a slow commit would make them run one at a time.
   */
  busy?: boolean;
  dbNowMs: number;
}

export type NodeRole = 'PASSIVE' | 'ACTIVE' | 'STEPPING_DOWN';

export interface LeaderRecord {
  nodeId: string;
  epoch: number;
  /** The lease has not expired (database time). */
  valid: boolean;
}

/**
 * The lease and membership statements, behind an interface so LeaderLease's
 * timer logic is unit-tested on fake time with an in-memory store. Database
 * time (`clock_timestamp()`) decides expiry: node clocks may be wrong or
 * paused. An acquirer may only add its own reckoning of that time as a
 * second condition (AcquireOptions.reckonedNowMs), never replace it.
 */
export interface LeaseStore {
  /**
   * One atomic statement: takes the lease iff it is free or expired (and
   * expired by the caller's reckoning, when given), incrementing the epoch.
   * Otherwise says how long the current lease has left, so the caller can
   * try again right at expiry.
   */
  tryAcquire(groupId: string, nodeId: string, leaseMs: number, options?: AcquireOptions): Promise<AcquireResult>;
  /** Extends the lease iff this node still holds it under `epoch` and it has not expired. */
  renew(groupId: string, nodeId: string, epoch: number, leaseMs: number, options?: RenewOptions): Promise<RenewResult>;
  /** Ends the lease at once (graceful shutdown) so the peer need not wait for expiry. */
  release(groupId: string, nodeId: string, epoch: number): Promise<void>;
  heartbeat(groupId: string, node: Omit<NodeRecord, 'alive' | 'silentForMs'>): Promise<void>;
  members(groupId: string, leaseMs: number): Promise<NodeRecord[]>;
  leader(groupId: string, leaseMs: number): Promise<LeaderRecord | undefined>;
}

/** The lease length as an SQL interval, from parameter `$n` (milliseconds). */
const lease = (n: number): string => `make_interval(secs => $${n}::double precision / 1000)`;
/** A timestamp as epoch milliseconds, or an interval as milliseconds (±Infinity stay infinite). */
const ms = (expression: string): string => `(extract(epoch FROM ${expression}) * 1000)::float8`;

/** pg reads `query_timeout` from a query's config too (its types only list it on the client's). */
type TimedQuery = pg.QueryConfig & { query_timeout?: number };
const timed = (text: string, values: unknown[], timeoutMs: number | undefined): TimedQuery =>
  timeoutMs === undefined ? { text, values } : { text, values, query_timeout: Math.max(1, Math.ceil(timeoutMs)) };

export class PgLeaseStore implements LeaseStore {
  constructor(private readonly pool: pg.Pool) {}

  async tryAcquire(
    groupId: string,
    nodeId: string,
    leaseMs: number,
    options: AcquireOptions = {},
  ): Promise<AcquireResult> {
    // INSERT for the first leader ever; otherwise UPDATE only an expired row.
    // The row lock of ON CONFLICT makes concurrent acquirers serialize: the
    // second sees the first's fresh heartbeat and gets no row back (its WHERE
    // is re-checked on the newest row version). `prior` and the outer SELECT
    // see the row as it was before the attempt: the holder taken over, or the
    // one that still holds.
    const { rows } = await this.pool.query<{
      epoch: string | null;
      node_id: string | null;
      prior_epoch: string | null;
      expires_at_ms: number | null;
      db_now_ms: number;
      silent_ms: number | null;
    }>(
      timed(
        `WITH prior AS (
           SELECT l.node_id, l.epoch, l.heartbeat_at, n.heartbeat_at AS node_heartbeat_at
           FROM sp_leader l LEFT JOIN sp_node n ON n.group_id = l.group_id AND n.node_id = l.node_id
           WHERE l.group_id = $1),
         attempt AS (
           INSERT INTO sp_leader (group_id, node_id, epoch, heartbeat_at)
           SELECT $1::text, $2::text, 1, clock_timestamp() WHERE NOT $5::boolean
           ON CONFLICT (group_id) DO UPDATE
             SET node_id = EXCLUDED.node_id, epoch = sp_leader.epoch + 1, heartbeat_at = clock_timestamp()
             WHERE sp_leader.heartbeat_at < clock_timestamp() - ${lease(3)}
               AND ($4::float8 IS NULL OR sp_leader.heartbeat_at + ${lease(3)} <= to_timestamp($4::float8 / 1000))
               AND NOT ($6::boolean AND sp_leader.node_id = $2 AND EXISTS (
                 SELECT 1 FROM sp_node o WHERE o.group_id = $1 AND o.node_id <> $2
                   AND o.heartbeat_at >= clock_timestamp() - ${lease(3)}))
           RETURNING epoch)
         SELECT (SELECT epoch FROM attempt) AS epoch, prior.node_id, prior.epoch AS prior_epoch,
                ${ms(`prior.heartbeat_at + ${lease(3)}`)} AS expires_at_ms,
                ${ms('clock_timestamp()')} AS db_now_ms,
                ${ms(`clock_timestamp() - COALESCE(NULLIF(prior.heartbeat_at, '-infinity'), prior.node_heartbeat_at)`)}
                  AS silent_ms
         FROM (SELECT 1) AS one LEFT JOIN prior ON true`,
        [
          groupId,
          nodeId,
          leaseMs,
          options.reckonedNowMs ?? null,
          options.readOnly === true,
          options.yieldOwnToPeer === true,
        ],
        options.timeoutMs,
      ),
    );
    const row = rows[0];
    if (!row) throw new Error('tryAcquire returned no row');
    const dbNowMs = row.db_now_ms;
    if (row.epoch != null) {
      const epoch = Number(row.epoch);
      // The prior row is the one taken over only if no other acquire came between (epochs count up by one).
      const previous =
        row.node_id != null && Number(row.prior_epoch) === epoch - 1
          ? {
              nodeId: row.node_id,
              epoch: epoch - 1,
              ...(row.silent_ms != null && Number.isFinite(row.silent_ms)
                ? { silentForMs: Math.max(0, row.silent_ms) }
                : {}),
            }
          : undefined;
      return { acquired: true, epoch, dbNowMs, ...(previous ? { previous } : {}) };
    }
    const expiresAtMs = row.expires_at_ms ?? Number.NEGATIVE_INFINITY;
    return {
      acquired: false,
      remainingMs: Math.max(0, Math.ceil(expiresAtMs - dbNowMs)),
      dbNowMs,
      ...(row.node_id != null ? { holder: { nodeId: row.node_id, epoch: Number(row.prior_epoch), expiresAtMs } } : {}),
    };
  }

  async renew(
    groupId: string,
    nodeId: string,
    epoch: number,
    leaseMs: number,
    options: RenewOptions = {},
  ): Promise<RenewResult> {
    const { rows } = await this.pool.query<{ renewed: boolean; busy: boolean; db_now_ms: number }>(
      timed(
        `WITH target AS (
           SELECT group_id FROM sp_leader WHERE group_id = $1 AND node_id = $2 AND epoch = $4
           FOR UPDATE SKIP LOCKED),
         renewed AS (
           UPDATE sp_leader SET heartbeat_at = clock_timestamp()
           FROM target WHERE sp_leader.group_id = target.group_id
             AND sp_leader.heartbeat_at >= clock_timestamp() - ${lease(3)}
           RETURNING 1)
         SELECT EXISTS (SELECT 1 FROM renewed) AS renewed,
                NOT EXISTS (SELECT 1 FROM target)
                  AND EXISTS (SELECT 1 FROM sp_leader WHERE group_id = $1 AND node_id = $2 AND epoch = $4) AS busy,
                ${ms('clock_timestamp()')} AS db_now_ms`,
        [groupId, nodeId, leaseMs, epoch],
        options.timeoutMs,
      ),
    );
    const row = rows[0];
    if (!row) throw new Error('renew returned no row');
    return { renewed: row.renewed, ...(row.busy ? { busy: true } : {}), dbNowMs: row.db_now_ms };
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
              ${ms('clock_timestamp() - heartbeat_at')} AS silent_ms
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
