import type { Clock } from '@faultline/core';
import { SendQueue } from './send-queue.js';

export interface ReplayWindowOptions {
  clock: Clock;
  /** An entry is kept this long after its PUBACK (`replayWindowMs`). */
  windowMs: number;
  /** At most this many entries are kept, the newest. */
  maxEntries: number;
  /** At most this many bytes of records are kept, the newest (the outbox's own bound). */
  maxBytes: number;
}

/**
 * What the current broker acknowledged lately, oldest first. A PUBACK means
 * the broker has a message, not that it delivered it: on failover what it
 * acknowledged within the window is sent again (subscribers drop the copies
 * by id). An entry is forgotten once it leaves the window on the clock, and
 * past the count and byte bounds: kept by count alone, 10 000–20 000
 * summaries of 80 KB stayed referenced (~1 GB) long after any replay could
 * want them.
 */
export class ReplayWindow<T extends { readonly bytes: number }> {
  private acked = new SendQueue<{ entry: T; at: number }>();
  private heldBytes = 0;

  constructor(private readonly o: ReplayWindowOptions) {}

  get size(): number {
    return this.acked.length;
  }

  add(entry: T): void {
    this.acked.push({ entry, at: this.o.clock.monotonicNow() });
    this.heldBytes += entry.bytes;
    this.trim();
  }

  /** Forgets what left the window, and the oldest past the bounds; O(1) per entry forgotten. */
  trim(): void {
    const since = this.o.clock.monotonicNow() - this.o.windowMs;
    for (let oldest = this.acked.peek(); oldest !== undefined; oldest = this.acked.peek()) {
      const within = oldest.at >= since && this.acked.length <= this.o.maxEntries && this.heldBytes <= this.o.maxBytes;
      if (within) return;
      this.acked.shift();
      this.heldBytes -= oldest.entry.bytes;
    }
  }

  /** What was acknowledged within the window, oldest first; the window is left empty. */
  take(): T[] {
    this.trim();
    const entries = Array.from(this.acked, (a) => a.entry);
    this.acked = new SendQueue();
    this.heldBytes = 0;
    return entries;
  }
}
