import type { HealthStatBatch } from '@faultline/protocol';
import type { QueryEngine } from './query-engine.js';

interface MemberLedger {
  count: number;
  sum: number;
  lastValue: number;
  lastTimestamp: number;
}

/**
 * The simplest engine: per member, how many stats arrived and their sum.
 * It has no outputs; it proves the pair's promise on its own (every stat
 * exactly once on whichever node is active) and is the engine of the SP
 * benchmarks, where the CEP's cost is measured separately.
 */
export class StatLedger implements QueryEngine {
  private members = new Map<string, MemberLedger>();
  private total = 0;
  private epoch: number | undefined;

  apply(batch: HealthStatBatch): void {
    for (const stat of batch.stats) {
      let ledger = this.members.get(stat.memberId);
      if (!ledger) {
        ledger = { count: 0, sum: 0, lastValue: 0, lastTimestamp: 0 };
        this.members.set(stat.memberId, ledger);
      }
      ledger.count += 1;
      ledger.sum += stat.value;
      ledger.lastValue = stat.value;
      ledger.lastTimestamp = stat.timestamp;
      this.total += 1;
    }
  }

  activate(epoch: number): void {
    this.epoch = epoch;
  }

  deactivate(): void {
    this.epoch = undefined;
  }

  exportState(): { total: number; members: Record<string, MemberLedger> } {
    return { total: this.total, members: Object.fromEntries(this.members) };
  }

  importState(state: unknown): void {
    const s = state as { total: number; members: Record<string, MemberLedger> };
    this.total = s.total;
    this.members = new Map(Object.entries(s.members));
  }

  status(): Record<string, unknown> {
    return {
      engine: 'ledger',
      members: this.members.size,
      stats: this.total,
      outputsEnabled: this.epoch !== undefined,
    };
  }

  close(): void {}
}
