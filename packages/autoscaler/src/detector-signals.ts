/** Network partitions remembered; beyond it the least recently listed is forgotten (it reads as silent). */
const MAX_PARTITIONS = 10_000;

/**
 * Whether the fault detector (the SP pair, through the brokers) can see a
 * network partition: the last time (autoscaler clock) a member summary listed
 * any member of it. A partition no summary listed for `silentAfterMs` is
 * silent: either every member there died, or the detector path failed, and
 * the autoscaler cannot tell which from the summaries alone, so faults there
 * are held and verified through the Iaas (README "Liveness from state").
 * Before its first listing a partition counts from `start()`, so a restarted
 * autoscaler gives everybody one period.
 */
export class DetectorSignals {
  private readonly partitions = new Map<string, number>();
  /** Partitions listed again after a silence → when. */
  private readonly resumed = new Map<string, number>();
  private startedAt: number;

  constructor(
    readonly silentAfterMs: number,
    now: number,
  ) {
    this.startedAt = now;
  }

  start(now: number): void {
    this.startedAt = now;
  }

  listed(networkPartitionId: string, now: number): void {
    const last = this.partitions.get(networkPartitionId) ?? this.startedAt;
    if (now - last > this.silentAfterMs) {
      this.resumed.set(networkPartitionId, now);
      if (this.resumed.size > MAX_PARTITIONS) this.resumed.delete(this.resumed.keys().next().value as string);
    }
    this.partitions.delete(networkPartitionId);
    this.partitions.set(networkPartitionId, now);
    if (this.partitions.size > MAX_PARTITIONS) this.partitions.delete(this.partitions.keys().next().value as string);
  }

  /** When the partition was last listed (or the start), if it is silent now; undefined while it is listed. */
  silentSince(networkPartitionId: string, now: number): number | undefined {
    const last = this.partitions.get(networkPartitionId) ?? this.startedAt;
    return now - last > this.silentAfterMs ? last : undefined;
  }

  /**
   * Listed again less than `silentAfterMs` ago after a silence: the detector
   * is still settling. Its first faults then may be of members whose agents
   * have not found the new active yet (they back off while the SP pair is
   * down), and one member reporting again does not vouch for the others.
   */
  settling(networkPartitionId: string, now: number): boolean {
    return this.resumedAt(networkPartitionId, now) !== undefined;
  }

  /** When the partition was listed again after a silence, while it is settling; else undefined. */
  resumedAt(networkPartitionId: string, now: number): number | undefined {
    const at = this.resumed.get(networkPartitionId);
    return at !== undefined && now - at < this.silentAfterMs ? at : undefined;
  }

  /**
   * Less than `silentAfterMs` since this autoscaler started: it has no view
   * yet, and its persistent session hands it what queued while it was away,
   * faults that may be stale. Faults are held and verified meanwhile, like a
   * settling detector's (not announced: nothing about the detector is known).
   */
  starting(now: number): boolean {
    return now - this.startedAt < this.silentAfterMs;
  }
}
