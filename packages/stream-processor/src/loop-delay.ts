import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Clock, TimerHandle } from '@faultline/core';

/** What `LoopDelayWindows` reads of a delay histogram (`monitorEventLoopDelay`'s, in nanoseconds). */
export interface DelayHistogram {
  readonly max: number;
  percentile(p: number): number;
  reset(): void;
  enable(): boolean;
  disable(): boolean;
}

/** The histogram samples every this many ms: the lag is what exceeds it. */
const LOOP_SAMPLE_MS = 10;
/** The status's windows: the max of the last whole one and the current one, the p99 of the last whole one. */
export const LOOP_DELAY_WINDOW_MS = 5_000;

export interface LoopDelay {
  maxDelayMs: number;
  p99DelayMs: number;
}

/**
 * How late the event loop runs, in windows of LOOP_DELAY_WINDOW_MS on the
 * node's clock: what a burst of work (a hostile frame, a snapshot) cost every
 * other peer. The max covers the last whole window and the current one, so a
 * stall shows at once. The p99 is the last whole window's (the current one's
 * only before any is whole): a window a few samples old has its largest sample
 * for its 99th percentile, and one stall just after a window began read as a
 * p99 of its own length.
 */
export class LoopDelayWindows {
  private last: LoopDelay | undefined;
  private timer: TimerHandle | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly histogram: DelayHistogram = monitorEventLoopDelay({ resolution: LOOP_SAMPLE_MS }),
  ) {}

  start(): void {
    this.histogram.enable();
    this.timer = this.clock.setInterval(() => {
      this.last = this.current();
      this.histogram.reset();
    }, LOOP_DELAY_WINDOW_MS);
  }

  stop(): void {
    this.clock.clearInterval(this.timer);
    this.histogram.disable();
  }

  status(): LoopDelay {
    const now = this.current();
    if (!this.last) return now;
    return { maxDelayMs: Math.max(now.maxDelayMs, this.last.maxDelayMs), p99DelayMs: this.last.p99DelayMs };
  }

  private current(): LoopDelay {
    return { maxDelayMs: delayOf(this.histogram.max), p99DelayMs: delayOf(this.histogram.percentile(99)) };
  }
}

/** A sample (ns between two of the histogram's timer runs) as the lag beyond the sampling interval, in ms to 0.1. */
function delayOf(nanos: number): number {
  return Math.max(0, Math.round(nanos / 1e5) / 10 - LOOP_SAMPLE_MS);
}
