/**
 * The fault-storm guard of one cluster (README "Autoscaler", rule 6): when more
 * than half of a cluster of at least 3 members faults within one fault
 * timeout, the monitor, not the members, is the likely fault, so the cluster
 * holds its terminations.
 *
 *   faulted  = distinct members with a MemberFault in the last `windowMs`
 *   size     = max(live members now, faulted)        live: Created, Starting, Active
 *   storm   ⇔ size ≥ 3  and  faulted > size / 2
 *
 * `size` counts the member that just faulted (still live when it is
 * evaluated) and the replacements of members faulted earlier in the window:
 * a replacement takes its predecessor's place. Faults acted upon before the
 * storm tipped stay acted upon; the guard limits a storm to at most half of
 * the cluster. Pure: times are passed in.
 */
export const MIN_STORM_CLUSTER_SIZE = 3;

export type StormVerdict =
  | { type: 'normal' }
  | { type: 'tipped'; faultedMemberIds: string[]; clusterSize: number }
  | { type: 'held' };

export class FaultStorm {
  private readonly faults = new Map<string, number>();
  private since: number | undefined;

  constructor(readonly windowMs: number) {}

  /** Epoch ms the current hold began, or undefined when not held. */
  get heldSince(): number | undefined {
    return this.since;
  }

  get held(): boolean {
    return this.since !== undefined;
  }

  /** Records a fault of `memberId` at `now` in a cluster of `liveMembers` and says what it means. */
  record(memberId: string, now: number, liveMembers: number): StormVerdict {
    this.prune(now);
    this.faults.set(memberId, now);
    if (this.since !== undefined) return { type: 'held' };
    const faulted = this.faults.size;
    const clusterSize = Math.max(liveMembers, faulted);
    if (clusterSize >= MIN_STORM_CLUSTER_SIZE && faulted * 2 > clusterSize) {
      this.since = now;
      return { type: 'tipped', faultedMemberIds: [...this.faults.keys()], clusterSize };
    }
    return { type: 'normal' };
  }

  /** Distinct members faulted within the window ending `now`. */
  faultedCount(now: number): number {
    this.prune(now);
    return this.faults.size;
  }

  /** A hold persisted by an earlier life of the autoscaler. */
  restore(heldSince: number | undefined): void {
    this.since = heldSince;
  }

  /** Ends the hold and forgets the window: the faults of the storm must not tip the next one. */
  release(): void {
    this.since = undefined;
    this.faults.clear();
  }

  private prune(now: number): void {
    for (const [memberId, at] of this.faults) if (now - at >= this.windowMs) this.faults.delete(memberId);
  }
}
