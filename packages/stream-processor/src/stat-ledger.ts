import { FaultlineError } from '@faultline/core';
import { type AnyBatch, isStatColumns } from '@faultline/protocol';
import type { EngineExportStream, QueryEngine } from './query-engine.js';
import { MAX_CHUNK_ITEMS } from './sync-messages.js';

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

  apply(batch: AnyBatch): void {
    if (isStatColumns(batch)) {
      // One member's stats: its record looked up once.
      const { memberId } = batch.ids;
      this.stale?.delete(memberId);
      const ledger = this.ledgerOf(memberId);
      const { values, timestamps } = batch;
      for (let i = 0; i < values.length; i++) {
        ledger.count += 1;
        ledger.sum += values[i] as number;
        ledger.lastValue = values[i] as number;
        ledger.lastTimestamp = timestamps[i] as number;
      }
      this.total += values.length;
      return;
    }
    for (const stat of batch.stats) {
      this.stale?.delete(stat.memberId);
      const ledger = this.ledgerOf(stat.memberId);
      ledger.count += 1;
      ledger.sum += stat.value;
      ledger.lastValue = stat.value;
      ledger.lastTimestamp = stat.timestamp;
      this.total += 1;
    }
  }

  private ledgerOf(memberId: string): MemberLedger {
    let ledger = this.members.get(memberId);
    if (!ledger) {
      ledger = { count: 0, sum: 0, lastValue: 0, lastTimestamp: 0 };
      this.members.set(memberId, ledger);
    }
    return ledger;
  }

  activate(epoch: number): void {
    this.epoch = epoch;
    this.stale = undefined;
  }

  deactivate(): void {
    this.epoch = undefined;
  }

  exportState(): { total: number; members: Record<string, MemberLedger> } {
    return { total: this.total, members: Object.fromEntries(this.members) };
  }

  /** One member's part of `exportState()`, in its shape. */
  exportMember(memberId: string): { total: number; members: Record<string, MemberLedger> } {
    const ledger = this.members.get(memberId);
    return { total: this.total, members: ledger ? { [memberId]: ledger } : {} };
  }

  trackedMembers(): number {
    return this.members.size;
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

  /**
   * Header: the total so far. Chunks: `[memberId, count, sum, lastValue,
   * lastTimestamp]` rows, each read when its chunk is made. The total of the
   * header plus the batches that follow it on the link is the active's total.
   */
  exportStream(): EngineExportStream {
    const ids = [...this.members.keys()];
    let next = 0;
    return {
      header: { total: this.total, members: ids.length },
      next: (maxItems) => {
        if (next >= ids.length) return undefined;
        const rows: [string, number, number, number, number][] = [];
        for (const end = Math.min(ids.length, next + Math.max(1, maxItems)); next < end; next++) {
          const id = ids[next] as string;
          const m = this.members.get(id);
          if (m) rows.push([id, m.count, m.sum, m.lastValue, m.lastTimestamp]);
        }
        return rows;
      },
    };
  }

  importBegin(header: unknown): void {
    const h = header as { total?: unknown } | null;
    if (typeof h !== 'object' || h === null) throw invalidState('', 'not an object');
    if (!Number.isSafeInteger(h.total) || (h.total as number) < 0) throw invalidState('total', 'not a count');
    this.total = h.total as number;
    // Marked, not dropped: a takeover before the import ends keeps what this node counted.
    this.stale = new Set(this.members.keys());
  }

  /** Members held when a streamed import began that no row or batch has spoken of since. */
  private stale: Set<string> | undefined;

  importChunk(chunk: unknown): void {
    if (!Array.isArray(chunk)) throw invalidState('(chunk)', 'not a list');
    if (chunk.length > MAX_CHUNK_ITEMS) throw invalidState('(chunk)', `more than ${MAX_CHUNK_ITEMS} rows`);
    chunk.forEach((row, i) => {
      if (!Array.isArray(row) || row.length !== 5 || typeof row[0] !== 'string' || row[0].length === 0)
        throw invalidState(`[${i}]`, 'not a [memberId, count, sum, lastValue, lastTimestamp] row');
      if (!row.slice(1).every(Number.isFinite)) throw invalidState(`[${i}]`, 'not a finite number');
    });
    for (const [memberId, count, sum, lastValue, lastTimestamp] of chunk as [
      string,
      number,
      number,
      number,
      number,
    ][]) {
      this.stale?.delete(memberId);
      this.members.set(memberId, { count, sum, lastValue, lastTimestamp });
    }
  }

  importEnd(): void {
    for (const id of this.stale ?? []) this.members.delete(id);
    this.stale = undefined;
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
