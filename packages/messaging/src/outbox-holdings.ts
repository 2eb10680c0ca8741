export interface OutboxEntry {
  readonly seq: number;
  readonly topic: string;
  readonly payload: Buffer;
  /** The stream whose newest record alone is worth sending ('' = none: never coalesced, never dropped). */
  readonly stream: string;
  /** Bytes of its record in the file. */
  readonly bytes: number;
  /** Times it was written to a broker (0 = never). */
  attempts: number;
}

/** What becomes of an add of a group: written, or superseded or dropped by a later add of the same group. */
export type Planned<A> = { add: A; fate: 'written' | 'superseded' | 'dropped' };

export interface Plan<A> {
  planned: Planned<A>[];
  /** Held records the group makes leave (a superseded one needs no removal record: replay coalesces it). */
  evicted: { entry: OutboxEntry; reason: 'superseded' | 'dropped' }[];
  /** Adds the overflow policy refuses: the bound they would pass, and what was held then. */
  refused: { add: A; boundBytes: number; held: number }[];
}

/**
 * What the outbox holds, in memory, and its policy (README "Bounded outbox"):
 * a record of a stream supersedes the held one of that stream; past
 * `maxBytes` the oldest records of a stream are dropped first; a record of a
 * stream that still does not fit is refused, and a precious one (no stream:
 * a MemberFault, an action) only past `hardMaxBytes`. Precious records are
 * never dropped. No I/O here: the outbox plans a group with it, writes, and
 * only then applies the plan.
 */
export class OutboxHoldings {
  /** Held entries by seq, oldest first. */
  readonly pending = new Map<number, OutboxEntry>();
  /** Held entries of a stream, oldest first: what the overflow policy drops. */
  private readonly droppable = new Map<number, OutboxEntry>();
  /** Stream → the seq of its held entry. */
  private readonly streams = new Map<string, number>();
  /** Bytes of the records held. */
  bytes = 0;
  /** Bytes of the held records of a stream: what the overflow policy may drop. */
  private droppableBytes = 0;

  constructor(private readonly bounds: { maxBytes: number; hardMaxBytes: number }) {}

  insert(entry: OutboxEntry): void {
    this.pending.set(entry.seq, entry);
    this.bytes += entry.bytes;
    if (entry.stream === '') return;
    this.droppable.set(entry.seq, entry);
    this.droppableBytes += entry.bytes;
    this.streams.set(entry.stream, entry.seq);
  }

  remove(seq: number): OutboxEntry | undefined {
    const entry = this.pending.get(seq);
    if (!entry) return undefined;
    this.pending.delete(seq);
    this.bytes -= entry.bytes;
    if (entry.stream !== '') {
      this.droppable.delete(seq);
      this.droppableBytes -= entry.bytes;
      if (this.streams.get(entry.stream) === seq) this.streams.delete(entry.stream);
    }
    return entry;
  }

  /**
   * A record read at start-up: it replaces a record of the same seq and
   * supersedes its stream's. No bound is applied here: mid-way through a
   * group, what is held is not what the live outbox held (its removals and
   * supersessions land record by record), and a bound applied there dropped
   * summaries the live outbox kept. `shed()` applies it once the log is read:
   * the live outbox never held more, so it drops nothing unless maxBytes shrank.
   */
  admit(entry: OutboxEntry): { coalesced: number } {
    this.remove(entry.seq);
    let coalesced = 0;
    const older = entry.stream === '' ? undefined : this.streams.get(entry.stream);
    if (older !== undefined && this.remove(older)) coalesced += 1;
    this.insert(entry);
    return { coalesced };
  }

  /** Drops the oldest records of a stream while more than `limit` bytes are held; returns how many. */
  shed(limit = this.bounds.maxBytes): number {
    let dropped = 0;
    while (this.bytes > limit) {
      const oldest = this.droppable.keys().next();
      if (oldest.done) break;
      this.remove(oldest.value);
      dropped += 1;
    }
    return dropped;
  }

  /**
   * Decides each add of a group, in order, against what is held (see the
   * class). Changes nothing: the caller applies the plan once the group is
   * written, or drops it when the write fails.
   */
  plan<A extends { entry: OutboxEntry }>(adds: readonly A[]): Plan<A> {
    const { maxBytes, hardMaxBytes } = this.bounds;
    let held = this.bytes;
    /** Of `held`, the bytes of records of a stream (held or written by this group): what may still make room. */
    let spare = this.droppableBytes;
    const plan: Plan<A> = { planned: [], evicted: [], refused: [] };
    const gone = new Set<number>();
    const newest = new Map<string, Planned<A>>();
    const groupDroppable: Planned<A>[] = [];
    let groupHead = 0;
    const heldDroppable = this.droppable.values();
    const evict = (entry: OutboxEntry, reason: 'superseded' | 'dropped') => {
      gone.add(entry.seq);
      plan.evicted.push({ entry, reason });
      held -= entry.bytes;
      spare -= entry.bytes;
    };
    /** Drops the oldest record of a stream, held ones before this group's; false when none is left. */
    const dropOldest = (): boolean => {
      for (let next = heldDroppable.next(); !next.done; next = heldDroppable.next()) {
        if (gone.has(next.value.seq)) continue;
        evict(next.value, 'dropped');
        return true;
      }
      while (groupHead < groupDroppable.length) {
        const p = groupDroppable[groupHead++] as Planned<A>;
        if (p.fate !== 'written') continue;
        p.fate = 'dropped';
        held -= p.add.entry.bytes;
        spare -= p.add.entry.bytes;
        return true;
      }
      return false;
    };
    for (const add of adds) {
      const { entry } = add;
      const precious = entry.stream === '';
      const boundBytes = precious ? hardMaxBytes : maxBytes;
      // Decided before anything is evicted: with every summary gone (the one it supersedes included), does it fit?
      if (held - spare + entry.bytes > boundBytes) {
        plan.refused.push({ add, boundBytes, held });
        continue;
      }
      if (!precious) {
        const older = newest.get(entry.stream);
        if (older?.fate === 'written') {
          older.fate = 'superseded';
          held -= older.add.entry.bytes;
          spare -= older.add.entry.bytes;
        } else if (older === undefined) {
          const seq = this.streams.get(entry.stream);
          const heldOlder = seq === undefined ? undefined : this.pending.get(seq);
          if (heldOlder && !gone.has(heldOlder.seq)) evict(heldOlder, 'superseded');
        }
      }
      while (held + entry.bytes > maxBytes && dropOldest()) {}
      held += entry.bytes;
      const p: Planned<A> = { add, fate: 'written' };
      plan.planned.push(p);
      if (!precious) {
        spare += entry.bytes;
        newest.set(entry.stream, p);
        groupDroppable.push(p);
      }
    }
    return plan;
  }
}
