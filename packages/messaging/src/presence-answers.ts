import type { Clock, TimerHandle } from '@faultline/core';

/** What became of one presence ask: answered at once, answered at the end of the gap, or left to an answer already due. */
export type AskOutcome = 'answered' | 'deferred' | 'coalesced';

/** A subscriber link answers asks at once this many times, then at most once a gap: a tenth of its ping interval (100 ms for the seed's 1 s). */
export const ANSWER_BURST = 4;
export const ANSWER_GAP_DIVISOR = 10;

export function answerGapMs(pingIntervalMs: number): number {
  return Math.max(1, Math.round(pingIntervalMs / ANSWER_GAP_DIVISOR));
}

export interface AnswerThrottleOptions {
  clock: Clock;
  /** Once the burst is spent, at most one answer per this many ms. */
  minGapMs: number;
  /** Sends one answer: a ping of the link's current subscription. */
  answer: () => void;
}

/**
 * How a subscriber link answers presence asks (`presence/<role>/+`, see
 * `@faultline/protocol`): a token bucket of ANSWER_BURST answers, one more
 * every `minGapMs`. An ask is answered with a ping at once while the bucket
 * holds one; otherwise one answer is scheduled for when it does, and every
 * ask until then rides on that one: a ping answers every publisher that
 * subscribed to `ping/<role>` before it was sent, and a publisher asks only
 * once its subscription is acknowledged. So a failover of a hundred
 * publishers costs a few pings, and a peer that floods asks costs O(1) per
 * ask and at most ANSWER_BURST + t / `minGapMs` pings over t (ten times the
 * regular rate), which every watcher of `ping/<role>` receives.
 */
export class AnswerThrottle {
  private tokens = ANSWER_BURST;
  private refilledAt = Number.NEGATIVE_INFINITY;
  private timer: TimerHandle | undefined;

  constructor(private readonly options: AnswerThrottleOptions) {}

  ask(): AskOutcome {
    if (this.timer !== undefined) return 'coalesced';
    const { clock, minGapMs } = this.options;
    this.refill();
    if (this.tokens >= 1) {
      this.tokens -= 1;
      this.options.answer();
      return 'answered';
    }
    this.timer = clock.setTimeout(
      () => {
        this.timer = undefined;
        this.refill();
        this.tokens = Math.max(0, this.tokens - 1);
        this.options.answer();
      },
      Math.ceil((1 - this.tokens) * minGapMs),
    );
    return 'deferred';
  }

  /** Answers now, unasked (a new subscription announces itself); an answer that was due is this one. */
  announce(): void {
    this.cancel();
    this.refill();
    this.tokens = Math.max(0, this.tokens - 1);
    this.options.answer();
  }

  /** A new connection: its bucket full, nothing due. */
  reset(): void {
    this.cancel();
    this.tokens = ANSWER_BURST;
    this.refilledAt = this.options.clock.monotonicNow();
  }

  private cancel(): void {
    this.options.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private refill(): void {
    const now = this.options.clock.monotonicNow();
    const earned = Math.max(0, now - this.refilledAt) / this.options.minGapMs;
    this.tokens = Math.min(ANSWER_BURST, this.tokens + earned);
    this.refilledAt = now;
  }
}
