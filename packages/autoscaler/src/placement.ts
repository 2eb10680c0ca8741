import type { Metric } from '@faultline/protocol';
import { isLive, type LiveMember, type MemberContext } from './member.js';
import type { Thresholds } from './policy.js';

/** The latest per-member averages (MemberAverage…Event), for "least loaded" in scale down. */
export class LoadBook {
  private readonly members = new Map<string, { loadAverage?: number; memoryConsumption?: number }>();

  observe(memberId: string, metric: Metric, value: number): void {
    const entry = this.members.get(memberId) ?? {};
    if (metric === 'LoadAverage') entry.loadAverage = value;
    else if (metric === 'MemoryConsumption') entry.memoryConsumption = value;
    else return;
    this.members.set(memberId, entry);
  }

  forget(memberId: string): void {
    this.members.delete(memberId);
  }

  /** load/threshold + memory/threshold over the figures known; undefined without any. */
  score(memberId: string, thresholds: Thresholds): number | undefined {
    const entry = this.members.get(memberId);
    if (!entry) return undefined;
    const parts: number[] = [];
    if (entry.loadAverage !== undefined) parts.push(entry.loadAverage / thresholds.loadAverage);
    if (entry.memoryConsumption !== undefined) parts.push(entry.memoryConsumption / thresholds.memoryConsumption);
    return parts.length === 0 ? undefined : parts.reduce((a, b) => a + b, 0);
  }
}

/**
 * Which member goes on a scale down: the lowest load score (its latest
 * MemberAverageLoadAverage / MemberAverageMemoryConsumption against the
 * cluster's thresholds: load/threshold + memory/threshold). Members without
 * any figure are chosen only when none has one, and then the newest goes
 * (it has the least warm state; Stratos' fallback too). Ties: the newest.
 */
export function leastLoaded(
  candidates: readonly LiveMember[],
  load: LoadBook,
  thresholds: Thresholds,
): LiveMember | undefined {
  const newestFirst = [...candidates].sort((a, b) => b.createdAt - a.createdAt);
  let best: { member: LiveMember; score: number } | undefined;
  for (const member of newestFirst) {
    const score = load.score(member.memberId, thresholds);
    if (score !== undefined && (best === undefined || score < best.score)) best = { member, score };
  }
  return best?.member ?? newestFirst[0];
}

/** Where a new member goes (Stratos' round robin): the partition with the fewest live members, policy order on a tie. */
export function choosePartition<P extends { id: string }>(
  partitions: readonly P[],
  members: readonly MemberContext[],
): P {
  const counts = new Map<string, number>();
  for (const m of members) if (isLive(m)) counts.set(m.partitionId, (counts.get(m.partitionId) ?? 0) + 1);
  let best = partitions[0] as P;
  for (const p of partitions) if ((counts.get(p.id) ?? 0) < (counts.get(best.id) ?? 0)) best = p;
  return best;
}
