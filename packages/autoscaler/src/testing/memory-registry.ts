import type { ActionRecord } from '../decisions.js';
import type { MaintenanceEntry } from '../maintenance.js';
import type { MemberRecord } from '../member.js';
import { type Registry, RegistryError } from '../registry.js';

/** An in-memory registry for unit tests; `down = true` makes every call fail as a lost database would. */
export class MemoryRegistry implements Registry {
  readonly members = new Map<string, MemberRecord>();
  readonly actions: ActionRecord[] = [];
  epoch: number | undefined;
  /** The lease table's newest epoch, as leaderEpoch() reads it. */
  leader: number | undefined;
  readonly clusters = new Map<string, unknown>();
  /** The maintenance rows, as `faultline maintenance` would write them: a test adds and deletes them directly. */
  readonly maintenanceRows: MaintenanceEntry[] = [];
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
    // Like PgRegistry: raised, never above the lease table's epoch (which a restore may have lowered).
    this.epoch = Math.min(Math.max(this.epoch ?? epoch, epoch), this.leader ?? Number.POSITIVE_INFINITY);
  }

  async leaderEpoch(): Promise<number | undefined> {
    this.check('read');
    return this.leader;
  }

  async clusterStates(): Promise<Map<string, unknown>> {
    this.check('read');
    return new Map([...this.clusters].map(([id, state]) => [id, structuredClone(state)]));
  }

  async saveClusterState(clusterId: string, state: unknown): Promise<void> {
    this.check('cluster state write');
    this.clusters.set(clusterId, structuredClone(state));
  }

  async maintenance(): Promise<MaintenanceEntry[]> {
    this.check('read');
    return this.maintenanceRows.map((row) => ({ ...row }));
  }
}
