import { FaultlineError, type FaultlineErrorOptions } from '@faultline/core';
import type { ActionRecord } from './decisions.js';
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
 * The autoscaler's memory across restarts (DESIGN.md "Autoscaler": "the
 * member registry lives in PostgreSQL, so a restarted autoscaler adopts the
 * members that are still running"). PgRegistry is the real one;
 * MemoryRegistry serves unit tests. Methods reject with RegistryError.
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
  /** Raises the stored epoch to `epoch` (never lowers it). */
  saveEpoch(epoch: number): Promise<void>;
}

/** An in-memory registry for unit tests; `down = true` makes every call fail as a lost database would. */
export class MemoryRegistry implements Registry {
  readonly members = new Map<string, MemberRecord>();
  readonly actions: ActionRecord[] = [];
  epoch: number | undefined;
  down = false;
  writes = 0;

  constructor(initial: readonly MemberRecord[] = []) {
    for (const record of initial) this.members.set(record.memberId, structuredClone(record));
  }

  private check(operation: string): void {
    if (this.down) throw new RegistryError(operation, { cause: new Error('database unavailable') });
  }

  async liveMembers(): Promise<MemberRecord[]> {
    this.check('read');
    return [...this.members.values()]
      .filter((m) => m.state !== 'Terminated')
      .sort((a, b) => a.createdAt - b.createdAt)
      .map((m) => structuredClone(m));
  }

  async saveMember(record: MemberRecord): Promise<void> {
    this.check('member write');
    this.writes += 1;
    this.members.set(record.memberId, structuredClone(record));
  }

  async recordAction(action: ActionRecord): Promise<void> {
    this.check('action write');
    this.actions.push({ ...action });
  }

  async recentActions(limit: number): Promise<ActionRecord[]> {
    this.check('read');
    return this.actions.slice(-limit).map((a) => ({ ...a }));
  }

  async newestEpoch(): Promise<number | undefined> {
    this.check('read');
    return this.epoch;
  }

  async saveEpoch(epoch: number): Promise<void> {
    this.check('epoch write');
    this.epoch = Math.max(this.epoch ?? epoch, epoch);
  }
}
