/** An entry of a DeadlineHeap: the heap keeps `heapIndex` current (−1 when out of the heap). */
export interface HeapItem {
  deadline: number;
  heapIndex: number;
}

/**
 * A binary min-heap on `deadline` whose items carry their own position, so
 * moving a deadline (every stat of a member) or removing an item (a fault,
 * a forgotten member) costs O(log n) instead of a search. With 10 000
 * members that is ~14 swaps a stat, against a timer per member, which would
 * put 10 000 handles in Node's timer lists.
 */
export class DeadlineHeap<T extends HeapItem> {
  private items: T[] = [];

  get size(): number {
    return this.items.length;
  }

  /** The item with the earliest deadline. */
  peek(): T | undefined {
    return this.items[0];
  }

  push(item: T): void {
    item.heapIndex = this.items.length;
    this.items.push(item);
    this.up(item.heapIndex);
  }

  /** Restores the order after `item.deadline` changed. */
  update(item: T): void {
    if (item.heapIndex < 0) return;
    this.up(item.heapIndex);
    this.down(item.heapIndex);
  }

  remove(item: T): void {
    const index = item.heapIndex;
    if (index < 0) return;
    const last = this.items.pop() as T;
    item.heapIndex = -1;
    if (last === item) return;
    this.items[index] = last;
    last.heapIndex = index;
    this.up(index);
    this.down(index);
  }

  pop(): T | undefined {
    const top = this.items[0];
    if (top) this.remove(top);
    return top;
  }

  /** Rebuilds the order in O(n) after many deadlines changed at once (a grace period). */
  heapify(): void {
    for (let i = (this.items.length >> 1) - 1; i >= 0; i--) this.down(i);
  }

  /** Every item, in heap (not deadline) order. */
  values(): readonly T[] {
    return this.items;
  }

  clear(): void {
    for (const item of this.items) item.heapIndex = -1;
    this.items = [];
  }

  private up(index: number): void {
    const items = this.items;
    const item = items[index] as T;
    let i = index;
    while (i > 0) {
      const parentIndex = (i - 1) >> 1;
      const parent = items[parentIndex] as T;
      if (parent.deadline <= item.deadline) break;
      items[i] = parent;
      parent.heapIndex = i;
      i = parentIndex;
    }
    items[i] = item;
    item.heapIndex = i;
  }

  private down(index: number): void {
    const items = this.items;
    const n = items.length;
    const item = items[index] as T;
    let i = index;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      let child = left;
      if (right < n && (items[right] as T).deadline < (items[left] as T).deadline) child = right;
      const smallest = items[child] as T;
      if (smallest.deadline >= item.deadline) break;
      items[i] = smallest;
      smallest.heapIndex = i;
      i = child;
    }
    items[i] = item;
    item.heapIndex = i;
  }
}
