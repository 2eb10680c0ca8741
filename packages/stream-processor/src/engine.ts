import type { Envelope, HealthStatBatch } from '@faultline/protocol';

export interface ActivateOptions {
  /**
   * Wall-clock time after which this node heard nothing from an active: what
   * it concluded on its own since then (a member silent only because its
   * stats went to an active this node did not hear from) is not to be trusted.
   */
  unverifiedAfter?: number;
}

/**
 * What the SP node asks of its query engine (the CEP monitor implements it).
 * Both nodes apply every accepted batch, in the same order; only the active
 * lets outputs out (`activate`), the passive keeps them suppressed: a hot
 * standby that needs no replay to take over.
 */
export interface QueryEngine {
  apply(batch: HealthStatBatch, receivedAt: number): void;
  /** This node became active under `epoch`: outputs may flow. */
  activate(epoch: number, options?: ActivateOptions): void;
  /** This node is passive (again): outputs stay suppressed. */
  deactivate(): void;
  /** Plain JSON of the whole state, for a passive that joins. */
  exportState(): unknown;
  importState(state: unknown): void;
  /** A small summary for the status call. */
  status(): Record<string, unknown>;
  close(): void;
  /** Engines with outputs (the CEP monitor) emit them here, on the active only. */
  onOutput?(listener: (envelope: Envelope) => void): void;
  /** Passive: the active has published these outputs; drop them from what a takeover would publish. */
  confirm?(ids: readonly string[]): void;
  /** The topology removed this member (MemberTerminatedEvent): stop watching it. */
  forget?(memberId: string): void;
}

/** Where the active's outputs go: the durable MQTT publisher. */
export interface OutputSink {
  /** Resolves once the envelope is durable (in the outbox). */
  publish(envelope: Envelope): Promise<void>;
}

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
