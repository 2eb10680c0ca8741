import type { Clock } from '@faultline/core';
import type {
  AcquireOptions,
  AcquireResult,
  LeaderRecord,
  LeaseStore,
  NodeRecord,
  RenewOptions,
  RenewResult,
} from '../store.js';

/** The two tables, shareable between the stores of several nodes, and the database's clock. */
export class MemoryLeaseTables {
  readonly leaders = new Map<string, { nodeId: string; epoch: number; at: number }>();
  readonly nodes = new Map<string, Omit<NodeRecord, 'alive' | 'silentForMs'> & { at: number }>();
  /** How far the database host's clock is from the stores' clock (ms): `stepDatabaseClock` moves it. */
  databaseClockOffsetMs = 0;

  /** The database host's clock steps by `ms` (forward if positive), as an NTP step or an operator would. */
  stepDatabaseClock(ms: number): void {
    this.databaseClockOffsetMs += ms;
  }
}

/** A statement of the store, as latency functions see it. */
export type MemoryLeaseStatement = keyof LeaseStore;

/**
 * The lease statements over in-memory tables with the clock (plus the
 * tables' offset) as "database time": for unit tests of the lease logic, and
 * to make the same semantics explicit in code. Each node gets its own store
 * over shared tables; a store can be cut off (`unreachable`) like a node
 * partitioned from the database, or slowed (`latencyMs`) like one whose
 * statements take long, on the store's clock (fake time in tests).
 */
export class MemoryLeaseStore implements LeaseStore {
  unreachable = false;
  /**
   * Round trip of each statement (ms): it runs halfway, the caller hears of
   * it at the end; a statement with a `timeoutMs` shorter than that fails at
   * its timeout, whether it ran or not (as a statement timeout does). A
   * number, or a function asked once per statement. @default 0
   */
  latencyMs: number | ((statement: MemoryLeaseStatement) => number) = 0;
  private readonly tables: MemoryLeaseTables;

  constructor(
    private readonly clock: Clock,
    tables: MemoryLeaseTables = new MemoryLeaseTables(),
  ) {
    this.tables = tables;
  }

  tryAcquire(groupId: string, nodeId: string, leaseMs: number, options: AcquireOptions = {}): Promise<AcquireResult> {
    return this.run('tryAcquire', options.timeoutMs, () => {
      const now = this.databaseNow();
      const row = this.tables.leaders.get(groupId);
      const expired = !row || row.at < now - leaseMs;
      const reckonedExpired = !row || options.reckonedNowMs === undefined || row.at + leaseMs <= options.reckonedNowMs;
      const peerAlive = [...this.tables.nodes.entries()].some(
        ([key, n]) => key.startsWith(`${groupId}/`) && n.nodeId !== nodeId && n.at >= now - leaseMs,
      );
      const yields = options.yieldOwnToPeer === true && row?.nodeId === nodeId && peerAlive;
      if (!options.readOnly && expired && reckonedExpired && !yields) {
        const epoch = (row?.epoch ?? 0) + 1;
        const silentForMs = row && this.silence(groupId, row, now);
        this.tables.leaders.set(groupId, { nodeId, epoch, at: now });
        const previous = row && {
          nodeId: row.nodeId,
          epoch: row.epoch,
          ...(silentForMs === undefined ? {} : { silentForMs }),
        };
        return { acquired: true, epoch, dbNowMs: now, ...(previous ? { previous } : {}) };
      }
      return {
        acquired: false,
        remainingMs: row ? Math.max(0, row.at + leaseMs - now) : 0,
        dbNowMs: now,
        ...(row ? { holder: { nodeId: row.nodeId, epoch: row.epoch, expiresAtMs: row.at + leaseMs } } : {}),
      };
    });
  }

  renew(
    groupId: string,
    nodeId: string,
    epoch: number,
    leaseMs: number,
    options: RenewOptions = {},
  ): Promise<RenewResult> {
    return this.run('renew', options.timeoutMs, () => {
      const now = this.databaseNow();
      const row = this.tables.leaders.get(groupId);
      const renewed = !!row && row.nodeId === nodeId && row.epoch === epoch && row.at >= now - leaseMs;
      if (row && renewed) row.at = now;
      return { renewed, dbNowMs: now };
    });
  }

  release(groupId: string, nodeId: string, epoch: number): Promise<void> {
    return this.run('release', undefined, () => {
      const row = this.tables.leaders.get(groupId);
      if (row && row.nodeId === nodeId && row.epoch === epoch) row.at = Number.NEGATIVE_INFINITY;
    });
  }

  heartbeat(groupId: string, node: Omit<NodeRecord, 'alive' | 'silentForMs'>): Promise<void> {
    return this.run('heartbeat', undefined, () => {
      this.tables.nodes.set(`${groupId}/${node.nodeId}`, { ...node, at: this.databaseNow() });
    });
  }

  members(groupId: string, leaseMs: number): Promise<NodeRecord[]> {
    return this.run('members', undefined, () => {
      const now = this.databaseNow();
      return [...this.tables.nodes.entries()]
        .filter(([key]) => key.startsWith(`${groupId}/`))
        .map(([, { at, ...node }]) => ({ ...node, alive: at >= now - leaseMs, silentForMs: now - at }));
    });
  }

  leader(groupId: string, leaseMs: number): Promise<LeaderRecord | undefined> {
    return this.run('leader', undefined, () => {
      const row = this.tables.leaders.get(groupId);
      return row ? { nodeId: row.nodeId, epoch: row.epoch, valid: row.at >= this.databaseNow() - leaseMs } : undefined;
    });
  }

  private databaseNow(): number {
    return this.clock.now() + this.tables.databaseClockOffsetMs;
  }

  /** How long the holder of `row` has not renewed, or (released) not heartbeated; undefined when unknown. */
  private silence(groupId: string, row: { nodeId: string; at: number }, now: number): number | undefined {
    if (Number.isFinite(row.at)) return now - row.at;
    const node = this.tables.nodes.get(`${groupId}/${row.nodeId}`);
    return node ? now - node.at : undefined;
  }

  /** Runs `execute` as a statement: at once without latency, else halfway through the round trip. */
  private run<T>(statement: MemoryLeaseStatement, timeoutMs: number | undefined, execute: () => T): Promise<T> {
    const ms = typeof this.latencyMs === 'function' ? this.latencyMs(statement) : this.latencyMs;
    const executeNow = (): T => {
      if (this.unreachable) throw new Error('connect ECONNREFUSED (database)');
      return execute();
    };
    if (ms <= 0) {
      try {
        return Promise.resolve(executeNow());
      } catch (error) {
        return Promise.reject(error);
      }
    }
    const { clock } = this;
    return new Promise<T>((resolve, reject) => {
      let done = false;
      const timer =
        timeoutMs !== undefined && timeoutMs < ms
          ? clock.setTimeout(() => {
              done = true;
              reject(new Error(`statement timeout: ${statement} took over ${timeoutMs} ms`));
            }, timeoutMs)
          : undefined;
      clock.setTimeout(() => {
        let outcome: { value: T } | { error: unknown };
        try {
          outcome = { value: executeNow() };
        } catch (error) {
          outcome = { error };
        }
        clock.setTimeout(
          () => {
            if (done) return;
            done = true;
            clock.clearTimeout(timer);
            if ('value' in outcome) resolve(outcome.value);
            else reject(outcome.error);
          },
          ms - ms / 2,
        );
      }, ms / 2);
    });
  }
}
