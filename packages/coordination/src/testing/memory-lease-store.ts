import type { Clock } from '@faultline/core';
import type { AcquireResult, LeaderRecord, LeaseStore, NodeRecord } from '../store.js';

/** The two tables, shareable between the stores of several nodes. */
export class MemoryLeaseTables {
  readonly leaders = new Map<string, { nodeId: string; epoch: number; at: number }>();
  readonly nodes = new Map<string, Omit<NodeRecord, 'alive' | 'silentForMs'> & { at: number }>();
}

/**
 * The lease statements over in-memory tables with the clock as "database
 * time": for unit tests of the lease logic, and to make the same semantics
 * explicit in code. Each node gets its own store over shared tables, and a
 * store can be cut off (`unreachable`) like a node partitioned from the
 * database.
 */
export class MemoryLeaseStore implements LeaseStore {
  unreachable = false;
  private readonly leaders: MemoryLeaseTables['leaders'];
  private readonly nodes: MemoryLeaseTables['nodes'];

  constructor(
    private readonly clock: Clock,
    tables: MemoryLeaseTables = new MemoryLeaseTables(),
  ) {
    this.leaders = tables.leaders;
    this.nodes = tables.nodes;
  }

  private check(): void {
    if (this.unreachable) throw new Error('connect ECONNREFUSED (database)');
  }

  async tryAcquire(groupId: string, nodeId: string, leaseMs: number): Promise<AcquireResult> {
    this.check();
    const now = this.clock.now();
    const row = this.leaders.get(groupId);
    if (row && row.at >= now - leaseMs) return { acquired: false, remainingMs: row.at + leaseMs - now };
    const epoch = (row?.epoch ?? 0) + 1;
    this.leaders.set(groupId, { nodeId, epoch, at: now });
    return { acquired: true, epoch };
  }

  async renew(groupId: string, nodeId: string, epoch: number, leaseMs: number): Promise<boolean> {
    this.check();
    const now = this.clock.now();
    const row = this.leaders.get(groupId);
    if (!row || row.nodeId !== nodeId || row.epoch !== epoch || row.at < now - leaseMs) return false;
    row.at = now;
    return true;
  }

  async release(groupId: string, nodeId: string, epoch: number): Promise<void> {
    this.check();
    const row = this.leaders.get(groupId);
    if (row && row.nodeId === nodeId && row.epoch === epoch) row.at = Number.NEGATIVE_INFINITY;
  }

  async heartbeat(groupId: string, node: Omit<NodeRecord, 'alive' | 'silentForMs'>): Promise<void> {
    this.check();
    this.nodes.set(`${groupId}/${node.nodeId}`, { ...node, at: this.clock.now() });
  }

  async members(groupId: string, leaseMs: number): Promise<NodeRecord[]> {
    this.check();
    const now = this.clock.now();
    return [...this.nodes.entries()]
      .filter(([key]) => key.startsWith(`${groupId}/`))
      .map(([, { at, ...node }]) => ({ ...node, alive: at >= now - leaseMs, silentForMs: now - at }));
  }

  async leader(groupId: string, leaseMs: number): Promise<LeaderRecord | undefined> {
    this.check();
    const row = this.leaders.get(groupId);
    return row ? { nodeId: row.nodeId, epoch: row.epoch, valid: row.at >= this.clock.now() - leaseMs } : undefined;
  }
}
