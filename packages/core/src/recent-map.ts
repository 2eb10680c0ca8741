/** Marked entries one eviction moves to the back at most before it forgets the next entry, marked or not. */
const MAX_SECOND_CHANCES = 32;

/**
 * A Map of at most `max` entries that forgets the least recently used first,
 * approximately: the CLOCK algorithm ("second chance"). A hit only marks its
 * entry; the Map's order changes only when an entry has to go, and then a
 * marked entry is unmarked and moved to the back instead of forgotten, at
 * most MAX_SECOND_CHANCES of them per entry forgotten: when every entry is
 * in use (more keys in use than `max`), an eviction costs a bounded time, not
 * a lap of the whole map (1.7 s at 100 000 agents).
 *
 * An exact LRU moves an entry to the back on every hit (delete, then set):
 * on a map of 100 000 agents hit thousands of times a second, that kept the
 * newest copy of every key (a string decoded from each request) and rehashed
 * the whole table every few seconds, most of what an SP node promoted to the
 * old generation.
 *
 * Iteration order is the eviction order: least recently inserted or moved
 * first.
 */
export class RecentMap<K, V> {
  private readonly entries = new Map<K, { value: V; used: boolean }>();

  constructor(readonly max: number) {
    if (!Number.isSafeInteger(max) || max < 1)
      throw new RangeError(`RecentMap: max must be a positive integer, got ${max}`);
  }

  get size(): number {
    return this.entries.size;
  }

  /** The value, marking the entry used. */
  get(key: K): V | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    entry.used = true;
    return entry.value;
  }

  /** The value, leaving the entry as it is. */
  peek(key: K): V | undefined {
    return this.entries.get(key)?.value;
  }

  has(key: K): boolean {
    return this.entries.has(key);
  }

  /**
   * Sets the value: a known key keeps its place and is marked used; for a new
   * one, entries are forgotten until there is room, then it goes to the back
   * (it is never the one forgotten for its own sake).
   */
  set(key: K, value: V): this {
    const entry = this.entries.get(key);
    if (entry !== undefined) {
      entry.value = value;
      entry.used = true;
      return this;
    }
    while (this.entries.size >= this.max) this.evictOne();
    this.entries.set(key, { value, used: false });
    return this;
  }

  delete(key: K): boolean {
    return this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }

  /** Keys in eviction order. */
  keys(): IterableIterator<K> {
    return this.entries.keys();
  }

  private evictOne(): void {
    for (let chances = 0; ; chances++) {
      const first = this.entries.entries().next();
      if (first.done) return;
      const [key, entry] = first.value;
      this.entries.delete(key);
      if (!entry.used || chances >= MAX_SECOND_CHANCES) return;
      entry.used = false;
      this.entries.set(key, entry);
    }
  }
}
