import type { Clock, TimerHandle } from '@faultline/core';

/** Timers that fire only when the test advances time; I/O stays real. */
export class ManualClock implements Clock {
  private t = 0;
  private next = 1;
  private readonly timers = new Map<number, { at: number; fn: () => void; every?: number }>();
  now = () => this.t;
  monotonicNow = () => this.t;
  setTimeout = (fn: () => void, ms: number) => this.add(fn, ms);
  setInterval = (fn: () => void, ms: number) => this.add(fn, ms, ms);
  clearTimeout = (handle: TimerHandle | undefined) => void this.timers.delete(handle as unknown as number);
  clearInterval = (handle: TimerHandle | undefined) => void this.timers.delete(handle as unknown as number);
  advance(ms: number): void {
    const until = this.t + ms;
    for (;;) {
      const due = [...this.timers].filter(([, timer]) => timer.at <= until).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      const [id, timer] = due;
      this.t = timer.at;
      if (timer.every) timer.at += timer.every;
      else this.timers.delete(id);
      timer.fn();
    }
    this.t = until;
  }
  private add(fn: () => void, ms: number, every?: number): TimerHandle {
    const id = this.next++;
    this.timers.set(id, { at: this.t + ms, fn, every });
    return id as unknown as TimerHandle;
  }
}
