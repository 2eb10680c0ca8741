/**
 * A FIFO with O(1) push and shift (an array and a head index, compacted now
 * and then), for the publisher's unsent messages: a backlog of 100 000
 * after a long outage must not turn every PUBACK into an O(n) shift.
 */
/** Shifted items that may accumulate before the array is compacted (and only once they are half of it). */
const COMPACT_AFTER_SHIFTS = 1_024;

export class SendQueue<T> implements Iterable<T> {
  /** Shifted slots are cleared, so what left the queue is not kept alive until the next compaction. */
  private items: (T | undefined)[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head] as T;
    this.items[this.head] = undefined;
    this.head += 1;
    if (this.head > COMPACT_AFTER_SHIFTS && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  /** The item shift() would return next, left in the queue. */
  peek(): T | undefined {
    return this.items[this.head];
  }

  reset(items: T[]): void {
    this.items = items;
    this.head = 0;
  }

  *[Symbol.iterator](): Iterator<T> {
    for (let i = this.head; i < this.items.length; i++) yield this.items[i] as T;
  }
}
