/** The restart policy's settings: `supervisor.restart*` of the configuration. */
export interface RestartBackoffOptions {
  initialMs: number;
  maxMs: number;
  /** Up (ready) this long without dying: the next death starts from `initialMs` again. */
  resetMs: number;
}

/**
 * The delay before a dead service is started again: `initialMs`, doubling
 * with each death up to `maxMs`, and back to `initialMs` once the service has
 * been up for `resetMs` (Kubernetes' CrashLoopBackOff, with shorter numbers: a
 * platform service is the platform). A service that keeps dying costs one
 * start every `maxMs`, not one every second; one that died once after a long
 * life comes back at once. Pure: the caller passes monotonic times.
 */
export class RestartBackoff {
  private deaths = 0;
  private upSince: number | undefined;

  constructor(private readonly options: RestartBackoffOptions) {}

  /** The service became ready at `nowMs`. */
  up(nowMs: number): void {
    this.upSince = nowMs;
  }

  /** The service died at `nowMs`: the delay before it is started again. */
  died(nowMs: number): number {
    if (this.upSince !== undefined && nowMs - this.upSince >= this.options.resetMs) this.deaths = 0;
    this.upSince = undefined;
    this.deaths += 1;
    // 2^30 already passes any sane maxMs; the cap keeps the exponent from overflowing to Infinity.
    const delay = this.options.initialMs * 2 ** Math.min(this.deaths - 1, 30);
    return Math.min(delay, this.options.maxMs);
  }

  /** Deaths since the last reset. */
  get streak(): number {
    return this.deaths;
  }
}
