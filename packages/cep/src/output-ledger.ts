import type { Envelope } from '@faultline/protocol';

export type OutputKind = 'fault' | 'summary';

/**
 * An output of the engine before it is stamped with an epoch. Its id is
 * `<stream>:<seq>`: the stream names the fact's subject
 * (`MemberFaultEvent:<memberId>`, `<Type>:<clusterId>:<networkPartitionId>[:<part>]`)
 * and the seq orders the facts of one stream (the member's last stat
 * timestamp, the summary's windowTo). Both nodes derive both from the same
 * stats, so they compute the same id for the same fact.
 */
export interface Output {
  kind: OutputKind;
  stream: string;
  seq: number;
  envelope: Envelope;
}

export function outputId(stream: string, seq: number): string {
  return `${stream}:${seq}`;
}

const FAULT_PREFIX = 'MemberFaultEvent:';

/** Splits an id at its last `:` (the seq is a number, so the stream may hold colons). */
export function parseOutputId(id: string): Pick<Output, 'kind' | 'stream' | 'seq'> | undefined {
  const at = id.lastIndexOf(':');
  if (at <= 0) return undefined;
  const seq = Number(id.slice(at + 1));
  if (!Number.isSafeInteger(seq)) return undefined;
  return { kind: id.startsWith(FAULT_PREFIX) ? 'fault' : 'summary', stream: id.slice(0, at), seq };
}

export interface LedgerState {
  pending: Output[];
  /** Per member fault stream, the newest fault published: `[stream, lastStatAt]`. */
  published: [string, number][];
  /** The newest summary tick (windowTo) published, in part or whole; null before any. */
  summariesPublishedThrough: number | null;
}

/**
 * What is published and what is not: the active tells the passive which
 * outputs it has published; on takeover the new active publishes what was
 * not confirmed (README, "CEP monitor").
 *
 * - what is published (by this node while active, or confirmed by the active
 *   while passive): per member the newest fault, and for summaries the newest
 *   tick. An output at or below that is not kept: a confirmation can overtake
 *   the passive's own deadline or tick by a few ms, and that output must not
 *   wait forever for a confirmation that has already come. Summaries share
 *   one watermark, because a tick is emitted whole and a watermark per
 *   stream cost ~1.4 KB a member (six member-summary streams); the price is
 *   that an active dying halfway through publishing a tick whose
 *   confirmations overtook the passive's own tick loses the rest of that
 *   tick, which the next tick replaces 15 s later. Faults keep one per member.
 * - pending faults, by id, each kept until confirmed.
 * - pending summaries, only the newest per stream: a summary is superseded by
 *   the next tick's, and the autoscaler acts on the latest figures only.
 *
 * Bounded at `maxPending`: the oldest summary goes first, then the oldest
 * fault; each is counted in `dropped`, faults also in `faultsDropped`. With
 * more than maxPending / 6 members a passive's tick alone passes the bound
 * until the confirmations of that tick arrive; losing summaries then is
 * harmless (the next tick replaces them), losing faults is not.
 */
export class OutputLedger {
  private readonly faults = new Map<string, Output>();
  private readonly summaries = new Map<string, Output>();
  private readonly publishedFaults = new Map<string, number>();
  private summariesThrough = Number.NEGATIVE_INFINITY;
  dropped = 0;
  faultsDropped = 0;
  superseded = 0;

  constructor(private readonly maxPending: number) {}

  get size(): number {
    return this.faults.size + this.summaries.size;
  }

  /** Whether this member's fault (or a later one of it) is published. */
  faultPublished(output: Pick<Output, 'stream' | 'seq'>): boolean {
    const done = this.publishedFaults.get(output.stream);
    return done !== undefined && output.seq <= done;
  }

  /** Whether the summaries of this tick (windowTo) are published, in part or whole. */
  tickPublished(windowTo: number): boolean {
    return windowTo <= this.summariesThrough;
  }

  /** Whether a later tick than this one (windowTo) is published: a summary of this one would go out of order. */
  olderThanPublishedTick(windowTo: number): boolean {
    return windowTo < this.summariesThrough;
  }

  markPublished(output: Pick<Output, 'kind' | 'stream' | 'seq'>): void {
    if (output.kind === 'summary') {
      if (output.seq > this.summariesThrough) this.summariesThrough = output.seq;
      return;
    }
    const done = this.publishedFaults.get(output.stream);
    if (done === undefined || output.seq > done) this.publishedFaults.set(output.stream, output.seq);
  }

  /** Keeps an output until it is confirmed; returns how many faults the bound dropped. */
  hold(output: Output): number {
    if (output.kind === 'summary') {
      if (this.summaries.delete(output.stream)) this.superseded += 1;
      this.summaries.set(output.stream, output);
    } else {
      this.faults.set(output.envelope.id, output);
    }
    let faults = 0;
    while (this.size > this.maxPending) {
      const victims = this.summaries.size > 0 ? this.summaries : this.faults;
      if (victims === this.faults) faults += 1;
      victims.delete(victims.keys().next().value as string);
      this.dropped += 1;
    }
    this.faultsDropped += faults;
    return faults;
  }

  /** The active published these ids: they are no longer pending. Returns how many pending outputs went. */
  confirm(ids: readonly string[]): number {
    let removed = 0;
    for (const id of ids) {
      const parsed = parseOutputId(id);
      if (!parsed) continue;
      this.markPublished(parsed);
      if (parsed.kind === 'fault') {
        if (this.faults.delete(id)) removed += 1;
        continue;
      }
      const summary = this.summaries.get(parsed.stream);
      if (summary && summary.seq <= parsed.seq) {
        this.summaries.delete(parsed.stream);
        removed += 1;
      }
    }
    return removed;
  }

  /**
   * Every pending output, faults first, each in the order it was produced; the
   * ledger is left empty. A summary older than the newest tick published is
   * stale (the active got further than it) and is dropped as superseded.
   */
  takeAll(): Output[] {
    const summaries = [...this.summaries.values()].filter((o) => o.seq >= this.summariesThrough);
    this.superseded += this.summaries.size - summaries.length;
    const all = [...this.faults.values(), ...summaries];
    this.faults.clear();
    this.summaries.clear();
    return all;
  }

  /** Forgets a fault stream's watermark (a member the topology removed). */
  forgetStream(stream: string): void {
    this.publishedFaults.delete(stream);
  }

  export(): LedgerState {
    return { ...this.exportHeld(), published: [...this.publishedFaults] };
  }

  /** The export without the fault watermarks (one per member: a streamed export reads those as it goes). */
  exportHeld(): Omit<LedgerState, 'published'> {
    return {
      pending: [...this.faults.values(), ...this.summaries.values()],
      summariesPublishedThrough: Number.isFinite(this.summariesThrough) ? this.summariesThrough : null,
    };
  }

  import(state: LedgerState): void {
    this.faults.clear();
    this.summaries.clear();
    this.publishedFaults.clear();
    for (const [stream, seq] of state.published) this.publishedFaults.set(stream, seq);
    this.summariesThrough = state.summariesPublishedThrough ?? Number.NEGATIVE_INFINITY;
    for (const output of state.pending) this.hold(output);
  }

  /** The fault streams with a published watermark (a streamed export sends them in chunks, read as it goes). */
  publishedStreams(): string[] {
    return [...this.publishedFaults.keys()];
  }

  /**
   * A streamed import's start: the exporter's pending outputs and summary
   * watermark join this node's own. Nothing is dropped here: should the
   * import never end (the exporter died mid-stream and this node takes
   * over), what it held stays (deterministic ids make a repeat harmless).
   */
  merge(state: Omit<LedgerState, 'published'>): void {
    const through = state.summariesPublishedThrough ?? Number.NEGATIVE_INFINITY;
    if (through > this.summariesThrough) this.summariesThrough = through;
    for (const output of state.pending) this.hold(output);
  }

  /** The published watermark of one fault stream, if any. */
  publishedOf(stream: string): number | undefined {
    return this.publishedFaults.get(stream);
  }

  /** One fault watermark of a streamed import; a higher one already here (a confirmation that came first) stays. */
  importPublished(stream: string, seq: number): void {
    const done = this.publishedFaults.get(stream);
    if (done === undefined || seq > done) this.publishedFaults.set(stream, seq);
  }
}
