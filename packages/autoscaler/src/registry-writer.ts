import type { Logger } from '@faultline/core';
import type { ActionRecord } from './decisions.js';
import type { MemberRecord } from './member.js';
import type { Registry } from './registry.js';
import { SerialQueue } from './serial-queue.js';

/**
 * Writes to the registry in the order the decisions were taken, one at a
 * time (two writes of one member can never overtake each other), without
 * making a decision wait for the database. The in-memory context is the
 * truth while the autoscaler runs; the registry is its copy for the next
 * life. A member row that could not be written is kept (only its newest
 * version) and written again by `retry()` at every monitor tick, so a
 * PostgreSQL outage costs a log line per failure, not a lost member.
 * A failed action row is logged and dropped: the log keeps it anyway.
 */
export class RegistryWriter {
  private readonly queue = new SerialQueue();
  /** memberId → the newest record handed in. */
  private readonly newest = new Map<string, MemberRecord>();
  /** memberId → a newest record whose write failed. */
  private readonly failed = new Map<string, MemberRecord>();
  private failedEpoch: number | undefined;
  /** clusterId → the newest monitor state handed in and not written yet. */
  private readonly clusterStates = new Map<string, unknown>();
  private readonly counted = { writes: 0, errors: 0 };
  /** The outcome of the last call to the registry: false after a failure, until a call succeeds. */
  private lastCallOk = true;

  constructor(
    private readonly registry: Registry,
    private readonly log: Logger,
  ) {}

  /** Writes that succeeded, and writes that failed (each logged). */
  get counts(): { writes: number; errors: number } {
    return { ...this.counted };
  }

  /** Members whose newest row is not in the registry yet. */
  get backlog(): number {
    return this.failed.size;
  }

  /**
   * Whether the registry answered the last call. Spawns wait while it does not:
   * a spawn whose intent cannot be recorded would be an orphan if the
   * autoscaler died before the row was written.
   */
  get reachable(): boolean {
    return this.lastCallOk;
  }

  /** Another read or write of the registry (the core's re-reads) succeeded or failed. */
  observed(ok: boolean): void {
    this.lastCallOk = ok;
  }

  /**
   * Queues the member's row. Resolves true once this row (or a newer one of
   * the member) is written, false when its write failed (it is retried at the
   * next tick): the intent-before-act paths await it.
   */
  member(record: MemberRecord): Promise<boolean> {
    this.newest.set(record.memberId, record);
    this.failed.delete(record.memberId);
    return this.queue.run(() => this.writeMember(record));
  }

  /** Queues a cluster's monitor state; only the newest of each cluster is written. */
  cluster(clusterId: string, state: unknown): void {
    this.clusterStates.set(clusterId, state);
    void this.queue.run(() => this.writeCluster(clusterId));
  }

  action(record: ActionRecord): void {
    void this.queue.run(async () => {
      try {
        await this.registry.recordAction(record);
        this.counted.writes += 1;
        this.lastCallOk = true;
      } catch (error) {
        this.failure('action', 'autoscaler.registry_action_write_failed', error, {
          actionType: record.action,
          memberId: record.memberId,
        });
      }
    });
  }

  epoch(epoch: number): void {
    void this.queue.run(async () => {
      try {
        await this.registry.saveEpoch(epoch);
        this.counted.writes += 1;
        this.lastCallOk = true;
        if (this.failedEpoch !== undefined && this.failedEpoch <= epoch) this.failedEpoch = undefined;
      } catch (error) {
        this.failedEpoch = Math.max(this.failedEpoch ?? epoch, epoch);
        this.failure('epoch', 'autoscaler.registry_epoch_write_failed', error, { epoch });
      }
    });
  }

  /** Queues again every write that failed (the newest row of each member). */
  retry(): void {
    const rows = [...this.failed.values()];
    this.failed.clear();
    for (const record of rows) void this.queue.run(() => this.writeMember(record));
    const epoch = this.failedEpoch;
    this.failedEpoch = undefined;
    if (epoch !== undefined) this.epoch(epoch);
    for (const clusterId of this.clusterStates.keys()) void this.queue.run(() => this.writeCluster(clusterId));
  }

  /** Resolves once every write queued so far has been tried. */
  flush(): Promise<void> {
    return this.queue.idle();
  }

  private async writeMember(record: MemberRecord): Promise<boolean> {
    // A newer row of this member was queued meanwhile: that one will be written (and answers for this one).
    if (this.newest.get(record.memberId) !== record) return true;
    try {
      await this.registry.saveMember(record);
      this.counted.writes += 1;
      this.lastCallOk = true;
      if (this.newest.get(record.memberId) === record) this.newest.delete(record.memberId);
      return true;
    } catch (error) {
      if (this.newest.get(record.memberId) === record) this.failed.set(record.memberId, record);
      this.failure('member', 'autoscaler.registry_member_write_failed', error, {
        memberId: record.memberId,
        state: record.state,
      });
      return false;
    }
  }

  private async writeCluster(clusterId: string): Promise<void> {
    const state = this.clusterStates.get(clusterId);
    if (state === undefined) return;
    try {
      await this.registry.saveClusterState(clusterId, state);
      this.counted.writes += 1;
      this.lastCallOk = true;
      if (this.clusterStates.get(clusterId) === state) this.clusterStates.delete(clusterId);
    } catch (error) {
      this.failure('cluster state', 'autoscaler.registry_cluster_write_failed', error, { clusterId });
    }
  }

  private failure(what: string, event: string, error: unknown, fields: Record<string, unknown>): void {
    this.counted.errors += 1;
    this.lastCallOk = false;
    const code = (error as { code?: unknown }).code;
    this.log.warn(`registry ${what} write failed`, { event, ...fields, code, error });
  }
}
