/**
 * Replacement backoff of one cluster (README "Autoscaler", rule 4: repeated
 * failures back off 10 s doubling to 5 min). A failure is a replacement that
 * did not work: a spawn that failed, a member not active within the pending
 * timeout, or a member faulted before it activated or within one fault
 * timeout of it (a workload that dies as soon as it starts: the monitor decides). The n-th failure in a row delays
 * the next spawn by min(initial × 2ⁿ⁻¹, max). The count starts again only
 * after `resetAfterMs` without a failure (Kubernetes' crash-loop rule): a
 * member that activates and dies again at once does not reset it.
 *
 * Its state is plain data (`state`, `restore`), so the monitor persists it
 * and a restarted autoscaler keeps backing off. Pure: times are passed in.
 */
export interface BackoffState {
  failures: number;
  /** Epoch ms before which no spawn should start; null when not backing off. */
  notBefore: number | null;
  /** Epoch ms of the last failure; null before any. */
  lastFailureAt: number | null;
}

export class Backoff {
  private failures = 0;
  private notBefore = Number.NEGATIVE_INFINITY;
  private lastFailureAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly initialMs: number,
    private readonly maxMs: number,
    /** Failure-free time after which the count starts again. @default 2 × maxMs */
    private readonly resetAfterMs: number = 2 * maxMs,
  ) {}

  /** Failures in a row (none further apart than resetAfterMs). */
  get failureCount(): number {
    return this.failures;
  }

  /** Epoch ms before which no spawn should start; -Infinity when not backing off. */
  get readyAt(): number {
    return this.notBefore;
  }

  isReady(now: number): boolean {
    return now >= this.notBefore;
  }

  /** Records a failure at `now`; returns the delay it imposes. */
  failure(now: number): number {
    if (now - this.lastFailureAt >= this.resetAfterMs) this.failures = 0;
    this.failures += 1;
    this.lastFailureAt = now;
    // 2 ** 60 is still finite; the cap keeps the product sane long before that.
    const delayMs = Math.min(this.initialMs * 2 ** Math.min(this.failures - 1, 60), this.maxMs);
    this.notBefore = now + delayMs;
    return delayMs;
  }

  state(): BackoffState {
    return {
      failures: this.failures,
      notBefore: Number.isFinite(this.notBefore) ? this.notBefore : null,
      lastFailureAt: Number.isFinite(this.lastFailureAt) ? this.lastFailureAt : null,
    };
  }

  /** Takes a persisted state back (after a restart). */
  restore(state: BackoffState): void {
    this.failures = Math.max(0, Math.floor(state.failures));
    this.notBefore = state.notBefore ?? Number.NEGATIVE_INFINITY;
    this.lastFailureAt = state.lastFailureAt ?? Number.NEGATIVE_INFINITY;
  }
}
