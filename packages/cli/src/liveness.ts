import type { Clock, TimerHandle } from '@faultline/core';

/** A health probe: true when the service answered; it should give up when `signal` aborts. */
export type Probe = (signal: AbortSignal) => Promise<boolean>;

/**
 * Runs `probe` with a signal aborted after `timeoutMs` on the Clock: false on
 * a timeout or a throw. A probe that ignores its signal still loses the race;
 * aborting `controller` ends it early.
 */
export async function probeWithin(
  clock: Clock,
  probe: Probe,
  timeoutMs: number,
  controller = new AbortController(),
): Promise<boolean> {
  const deadline = clock.setTimeout(() => controller.abort(), timeoutMs);
  const aborted = new Promise<boolean>((resolve) => {
    if (controller.signal.aborted) resolve(false);
    controller.signal.addEventListener('abort', () => resolve(false), { once: true });
  });
  try {
    return await Promise.race([probe(controller.signal).catch(() => false), aborted]);
  } finally {
    clock.clearTimeout(deadline);
  }
}

export interface LivenessOptions {
  clock: Clock;
  probe: Probe;
  /** From the end of one probe to the start of the next. */
  intervalMs: number;
  /** A probe not answered within this has failed (its signal is aborted). */
  timeoutMs: number;
  /** Failures in a row that make the service dead. */
  failureThreshold: number;
  /**
   * Asked after a failed probe: true while the service makes progress
   * without serving (PostgreSQL in crash recovery), which is no failure.
   * @default none
   */
  starting?: Probe;
  /** The service began to make progress without serving (once per stretch, for the log). */
  onProgress?: () => void;
  /** Each failed probe, with the failures in a row so far (for the log). */
  onFailure?: (failures: number) => void;
  /** Called once, when the threshold is reached; the monitor has stopped by then. */
  onDead: (failures: number) => void;
}

/**
 * Probes a ready service's health endpoint every `intervalMs` on the Clock,
 * each probe bound by `timeoutMs`, and declares it dead after
 * `failureThreshold` failures in a row: the supervisor then kills it and
 * restarts it. A service that has died on its own is noticed at once through
 * its exit; this is for one that still runs but no longer answers (SIGSTOP, a
 * blocked event loop, a deadlock). Probes never overlap: the next is scheduled
 * when the last has ended. A failed probe after which `starting` answers (the
 * service recovers) counts no failure.
 */
export class LivenessMonitor {
  private timer: TimerHandle | undefined;
  private inFlight: AbortController | undefined;
  private failures = 0;
  private progressing = false;
  private closed = false;

  constructor(private readonly options: LivenessOptions) {}

  start(): void {
    if (this.closed || this.timer !== undefined) return;
    this.schedule();
  }

  /** Stops probing; a probe under way is aborted and its result ignored. Safe to call twice. */
  close(): void {
    this.closed = true;
    this.options.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.inFlight?.abort();
  }

  private schedule(): void {
    this.timer = this.options.clock.setTimeout(() => void this.probeOnce(), this.options.intervalMs);
  }

  private async probeOnce(): Promise<void> {
    const { clock, probe, timeoutMs, failureThreshold } = this.options;
    const controller = new AbortController();
    this.inFlight = controller;
    const ok = await probeWithin(clock, probe, timeoutMs, controller);
    const progress = !ok && !this.closed && (await this.makesProgress());
    this.inFlight = undefined;
    if (this.closed) return;
    if (ok) {
      this.failures = 0;
      this.progressing = false;
    } else if (progress) {
      // Recovering is no failure: a kill would only make it start over.
      this.failures = 0;
      if (!this.progressing) this.options.onProgress?.();
      this.progressing = true;
    } else {
      this.progressing = false;
      this.failures += 1;
      this.options.onFailure?.(this.failures);
      if (this.failures >= failureThreshold) {
        this.close();
        this.options.onDead(this.failures);
        return;
      }
    }
    this.schedule();
  }

  private async makesProgress(): Promise<boolean> {
    const { clock, starting, timeoutMs } = this.options;
    if (!starting) return false;
    const controller = new AbortController();
    this.inFlight = controller;
    return probeWithin(clock, starting, timeoutMs, controller);
  }
}
