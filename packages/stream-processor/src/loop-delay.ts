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
 * What a whole window keeps for the minute's p99: its largest delays, one per
 * sample. A window holds at most one sample per LOOP_SAMPLE_MS, so a minute's
 * samples above its 99th percentile are at most this many, and all of them
 * may come from one window (a stalled one holds fewer, larger samples).
 */
const TAIL_SAMPLES = Math.ceil((LOOP_DELAY_MINUTE_WINDOWS * LOOP_DELAY_WINDOW_MS) / LOOP_SAMPLE_MS / 100) + 1;

export interface LoopDelay {
  maxDelayMs: number;
  p99DelayMs: number;
  /** The p99 of every sample of the last LOOP_DELAY_MINUTE_WINDOWS whole windows (fewer before there are as many). */
  minuteP99DelayMs: number;
}

/** A whole window's share of the minute: how many samples it had, and its largest (`TAIL_SAMPLES` at most), largest first. */
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

  /** The window's largest samples, read before it is reset: sample j from the top is its percentile 100 × (count − j + 1) / count. */
  private tail(): WindowTail {
    const count = this.histogram.count;
    const kept = Math.min(count, TAIL_SAMPLES);
    const delays = new Array<number>(kept);
    for (let j = 1; j <= kept; j++) delays[j - 1] = delayOf(this.histogram.percentile((100 * (count - j + 1)) / count));
    return { count, delays };
  }
}

/**
 * The 99th percentile of the windows' samples together, as a histogram reads
 * it of its own: the sample at rank ⌈0.99 × total⌉ from the smallest, that is
 * the (total − ⌈0.99 × total⌉ + 1)-th largest. Every sample above it is in some
 * window's tail (at most TAIL_SAMPLES of them in all), so it is exact while no
 * window holds more than one sample per LOOP_SAMPLE_MS, which the histogram's
 * timer cannot exceed; were one to, the smallest kept sample is read, not 0.
 */
function p99Of(tails: readonly WindowTail[]): number {
  const total = tails.reduce((sum, t) => sum + t.count, 0);
  if (total === 0) return 0;
  const rank = total - Math.ceil(0.99 * total) + 1;
  const largest = tails.flatMap((t) => t.delays).sort((a, b) => b - a);
  return largest[Math.min(rank, largest.length) - 1] ?? 0;
}

/** A sample (ns between two of the histogram's timer runs) as the lag beyond the sampling interval, in ms to 0.1. */
function delayOf(nanos: number): number {
  return Math.max(0, Math.round(nanos / 1e5 - 10 * LOOP_SAMPLE_MS) / 10);
}
