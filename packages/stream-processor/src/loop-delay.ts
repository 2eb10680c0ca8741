import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Clock, TimerHandle } from '@faultline/core';

/** What `LoopDelayWindows` reads of a delay histogram (`monitorEventLoopDelay`'s, in nanoseconds). */
export interface DelayHistogram {
  readonly max: number;
  /** Samples since the last reset. */
  readonly count: number;
  percentile(p: number): number;
  reset(): void;
  enable(): boolean;
  disable(): boolean;
}

/** The histogram samples every this many ms: the lag is what exceeds it. */
const LOOP_SAMPLE_MS = 10;
/** The status's windows: the max of the last whole one and the current one, the p99 of the last whole one. */
export const LOOP_DELAY_WINDOW_MS = 5_000;
/** Whole windows the status's minute p99 covers. */
export const LOOP_DELAY_MINUTE_WINDOWS = 12;
/**
 * What a whole window keeps for the minute's p99: its delay at every 0.1 %
 * from here to the 100th percentile. A minute's top 1 % is at most 12 % of
 * one window's samples (all of them in its worst), so this holds it.
 */
const TAIL_FROM_PERCENT = 100 - LOOP_DELAY_MINUTE_WINDOWS;
const TAIL_STEP_PERCENT = 0.1;

export interface LoopDelay {
  maxDelayMs: number;
  p99DelayMs: number;
  /** The p99 of every sample of the last LOOP_DELAY_MINUTE_WINDOWS whole windows (fewer before there are as many). */
  minuteP99DelayMs: number;
}

/** A whole window's share of the minute: how many samples it had, and its tail (`TAIL_FROM_PERCENT`). */
interface WindowTail {
  count: number;
  delays: number[];
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
  private last: Omit<LoopDelay, 'minuteP99DelayMs'> | undefined;
  private readonly tails: WindowTail[] = [];
  private minuteP99 = 0;
  private timer: TimerHandle | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly histogram: DelayHistogram = monitorEventLoopDelay({ resolution: LOOP_SAMPLE_MS }),
  ) {}

  start(): void {
    this.histogram.enable();
    this.timer = this.clock.setInterval(() => {
      this.last = this.current();
      this.tails.push(this.tail());
      if (this.tails.length > LOOP_DELAY_MINUTE_WINDOWS) this.tails.shift();
      this.minuteP99 = p99Of(this.tails);
      this.histogram.reset();
    }, LOOP_DELAY_WINDOW_MS);
  }

  stop(): void {
    this.clock.clearInterval(this.timer);
    this.histogram.disable();
  }

  status(): LoopDelay {
    const now = this.current();
    if (!this.last) return { ...now, minuteP99DelayMs: now.p99DelayMs };
    return {
      maxDelayMs: Math.max(now.maxDelayMs, this.last.maxDelayMs),
      p99DelayMs: this.last.p99DelayMs,
      minuteP99DelayMs: this.minuteP99,
    };
  }

  private current(): Omit<LoopDelay, 'minuteP99DelayMs'> {
    return { maxDelayMs: delayOf(this.histogram.max), p99DelayMs: delayOf(this.histogram.percentile(99)) };
  }

  /** The window's tail, read before it is reset: 120 reads of its histogram every 5 s. */
  private tail(): WindowTail {
    const steps = Math.round((100 - TAIL_FROM_PERCENT) / TAIL_STEP_PERCENT);
    const delays = new Array<number>(steps);
    for (let i = 1; i <= steps; i++) {
      delays[i - 1] = delayOf(this.histogram.percentile(TAIL_FROM_PERCENT + i * TAIL_STEP_PERCENT));
    }
    return { count: this.histogram.count, delays };
  }
}

/**
 * The 99th percentile of the windows' samples together: each window's tail
 * points stand for 0.1 % of its samples each (at the delay of the point, the
 * largest of its 0.1 %), taken largest first until they make 1 % of all.
 */
function p99Of(tails: readonly WindowTail[]): number {
  const total = tails.reduce((sum, t) => sum + t.count, 0);
  if (total === 0) return 0;
  const points: [delay: number, weight: number][] = [];
  for (const { count, delays } of tails) {
    for (const delay of delays) points.push([delay, (count * TAIL_STEP_PERCENT) / 100]);
  }
  points.sort((a, b) => b[0] - a[0]);
  const budget = total / 100;
  let taken = 0;
  for (const [delay, weight] of points) {
    taken += weight;
    // A hair under the budget is the budget (0.1 % steps summed in floating point).
    if (taken >= budget * (1 - 1e-9)) return delay;
  }
  return 0;
}

/** A sample (ns between two of the histogram's timer runs) as the lag beyond the sampling interval, in ms to 0.1. */
function delayOf(nanos: number): number {
  return Math.max(0, Math.round(nanos / 1e5 - 10 * LOOP_SAMPLE_MS) / 10);
}
