import { ConfigError } from '@faultline/core';

/**
 * Remembers the last `capacity` envelopes by topic root and id, so an envelope
 * that arrives through both brokers of the pair (or is republished after a
 * failover) reaches the application once. Keyed by root too: ids are chosen
 * by publishers, and only the root is vouched for by the brokers' ACL, so an
 * agent that publishes first under an id the SP will use (they are
 * predictable) cannot make the SP's envelope a duplicate. Memory is bounded:
 * the oldest is forgotten first (a Map iterates in insertion order).
 */
export class DedupeWindow {
  private readonly ids = new Map<string, true>();

  constructor(private readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw ConfigError.forKey('dedupeCapacity', 'must be a positive integer', { capacity });
    }
  }

  /** True when `id` was seen under `root` before; otherwise records it and returns false. */
  seen(root: string, id: string): boolean {
    // Length-prefixed: no id can make one root's key equal another root's.
    const key = `${root.length}:${root}${id}`;
    if (this.ids.has(key)) return true;
    this.ids.set(key, true);
    if (this.ids.size > this.capacity) {
      const oldest = this.ids.keys().next().value as string;
      this.ids.delete(oldest);
    }
    return false;
  }

  get size(): number {
    return this.ids.size;
  }
}
