import { ConfigError } from '@faultline/core';

/**
 * Remembers the last `capacity` envelope ids, so an envelope that arrives
 * through both brokers of the pair (or is republished after a failover)
 * reaches the application once. Memory is bounded: the oldest id is
 * forgotten first (a Map iterates in insertion order).
 */
export class DedupeWindow {
  private readonly ids = new Map<string, true>();

  constructor(private readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw ConfigError.forKey('dedupeCapacity', 'must be a positive integer', { capacity });
    }
  }

  /** True when `id` was seen before; otherwise records it and returns false. */
  seen(id: string): boolean {
    if (this.ids.has(id)) return true;
    this.ids.set(id, true);
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
