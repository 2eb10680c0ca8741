import { FaultlineError } from '@faultline/core';
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

  /** Replaces the whole state with a peer's export; throws FL_ERR_STATE_INVALID (nothing applied) when it is not one. */
  importState(state: unknown): void {
    const s = state as { total?: unknown; members?: unknown } | null;
    if (typeof s !== 'object' || s === null) throw invalidState('', 'not an object');
    if (!Number.isSafeInteger(s.total) || (s.total as number) < 0) throw invalidState('total', 'not a count');
    if (typeof s.members !== 'object' || s.members === null || Array.isArray(s.members))
      throw invalidState('members', 'not an object');
    const members = new Map<string, MemberLedger>();
    for (const [memberId, m] of Object.entries(s.members as Record<string, unknown>)) {
      const ledger = m as Partial<Record<keyof MemberLedger, unknown>> | null;
      const fields = ['count', 'sum', 'lastValue', 'lastTimestamp'] as const;
      const bad =
        ledger === null || typeof ledger !== 'object' ? 'count' : fields.find((f) => !Number.isFinite(ledger[f]));
      if (bad) throw invalidState(`members.${memberId}.${bad}`, 'not a finite number');
      const { count, sum, lastValue, lastTimestamp } = ledger as MemberLedger;
      members.set(memberId, { count, sum, lastValue, lastTimestamp });
    }
    this.total = s.total as number;
    this.members = members;
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

function invalidState(path: string, reason: string): FaultlineError {
  return new FaultlineError('FL_ERR_STATE_INVALID', `invalid ledger state at ${path || '(root)'}: ${reason}`, {
    context: { path },
  });
}
