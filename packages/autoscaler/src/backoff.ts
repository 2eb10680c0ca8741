/**
 * Replacement backoff of one cluster (README "Autoscaler", rule 4: repeated
 * failures back off 10 s doubling to 5 min). A failure is a replacement that
 * did not work: a spawn that failed, or a member not active within the
 * pending timeout. The n-th failure in a row delays the next spawn by
 * min(initial × 2ⁿ⁻¹, max); a member that becomes active resets it.
 *
 * Pure: times are passed in (the monitor's `clock.now()`), so the arithmetic
 * is tested without any timer.
 */
export class Backoff {
  private failures = 0;
  private notBefore = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly initialMs: number,
    private readonly maxMs: number,
  ) {}

  /** Failures in a row since the last success. */
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
    this.failures += 1;
    // 2 ** 60 is still finite; the cap keeps the product sane long before that.
    const delayMs = Math.min(this.initialMs * 2 ** Math.min(this.failures - 1, 60), this.maxMs);
    this.notBefore = now + delayMs;
    return delayMs;
  }

  success(): void {
    this.failures = 0;
    this.notBefore = Number.NEGATIVE_INFINITY;
  }
}
