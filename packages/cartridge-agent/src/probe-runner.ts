import type { Clock, Logger, ProbeKind, TimerHandle } from '@faultline/core';
import type { CheckOutcome, ProbeCheck } from './probe-checks.js';

/** Whether a probe passes; it changes only after its threshold of results in a row. */
export type ProbeState = 'passing' | 'failing';

export interface ProbeRunnerOptions {
  kind: ProbeKind;
  check: ProbeCheck;
  /** Between the starts of two checks; one that overruns it delays the next (no overlap). */
  periodMs: number;
  /** A check not passed within this failed; its signal is aborted. */
  timeoutMs: number;
  /** Failures in a row that make a passing probe fail (Infinity: never, the startup probe). */
  failureThreshold: number;
  /** Passes in a row that make a failing probe pass. */
  successThreshold: number;
  /** The state before any check: passing (liveness, readiness) or failing (startup, until it passes). */
  initial: ProbeState;
  clock: Clock;
  logger: Logger;
  /** Told of each change of state, with the last failure's reason when it starts failing. */
  onChange: (state: ProbeState, reason: string | undefined) => void;
}

export interface ProbeCounters {
  checks: number;
  /** Checks that failed, timeouts included. */
  failures: number;
  /** Checks that did not end within timeoutMs. */
  timeouts: number;
}

/**
 * One probe of the agent (README "Probes"): runs its check every `periodMs`
 * on the injected Clock, the first at start, never two at once, and counts
 * results in a row. A passing probe fails after `failureThreshold` failures
 * in a row; a failing one passes after `successThreshold` passes in a row.
 * A single slow answer is a failure counted, not a state changed.
 */
export class ProbeRunner {
  readonly counters: ProbeCounters = { checks: 0, failures: 0, timeouts: 0 };
  private current: ProbeState;
  private failuresInRow = 0;
  private passesInRow = 0;
  private running = false;
  private timer: TimerHandle | undefined;
  private inFlight: AbortController | undefined;
  private neverPassedLogged = false;
  private readonly log: Logger;

  constructor(private readonly options: ProbeRunnerOptions) {
    this.current = options.initial;
    this.log = options.logger.child({ probe: options.kind });
  }

  get state(): ProbeState {
    return this.current;
  }

  get kind(): ProbeKind {
    return this.options.kind;
  }

  /** Starts checking, the first check at once. Idempotent. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop();
  }

  /** Stops: no further check, the one under way aborted and its result ignored. Idempotent. */
  stop(): void {
    this.running = false;
    this.options.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.inFlight?.abort();
  }

  private loop(): void {
    const { clock, periodMs } = this.options;
    const startedAt = clock.monotonicNow();
    void this.checkOnce()
      .then((outcome) => {
        if (this.running) this.record(outcome);
      })
      .catch((error: unknown) =>
        this.log.error('probe result not recorded', { event: 'agent.probe_record_failed', error }),
      )
      .finally(() => {
        // onChange may have stopped it (the startup probe, once passed).
        if (!this.running) return;
        const elapsed = clock.monotonicNow() - startedAt;
        this.timer = clock.setTimeout(() => this.loop(), Math.max(0, periodMs - elapsed));
      });
  }

  /** One check against its deadline; never rejects. */
  private async checkOnce(): Promise<CheckOutcome> {
    const { clock, timeoutMs, check } = this.options;
    const controller = new AbortController();
    this.inFlight = controller;
    let timer: TimerHandle | undefined;
    const deadline = new Promise<CheckOutcome>((resolve) => {
      timer = clock.setTimeout(() => {
        this.counters.timeouts += 1;
        resolve({ ok: false, reason: `no answer within ${timeoutMs} ms` });
        controller.abort();
      }, timeoutMs);
    });
    const checked = check(controller.signal).catch(
      (error: unknown): CheckOutcome => ({ ok: false, reason: error instanceof Error ? error.message : String(error) }),
    );
    try {
      return await Promise.race([checked, deadline]);
    } finally {
      clock.clearTimeout(timer);
      if (this.inFlight === controller) this.inFlight = undefined;
    }
  }

  private record(outcome: CheckOutcome): void {
    const { failureThreshold, successThreshold, kind } = this.options;
    this.counters.checks += 1;
    if (outcome.ok) {
      this.failuresInRow = 0;
      this.passesInRow += 1;
      if (this.current === 'failing' && this.passesInRow >= successThreshold) this.change('passing', undefined);
      return;
    }
    this.counters.failures += 1;
    this.passesInRow = 0;
    this.failuresInRow += 1;
    if (this.current === 'passing' && this.failuresInRow >= failureThreshold) {
      this.change('failing', outcome.reason);
      return;
    }
    if (this.current === 'passing') {
      // Counted toward the threshold: one line per failure while it still passes, none once it fails.
      this.log.info(`${kind} check failed, ${this.failuresInRow} of ${failureThreshold} in a row`, {
        event: 'agent.probe_check_failed',
        failuresInRow: this.failuresInRow,
        failureThreshold,
        reason: outcome.reason,
      });
    } else if (
      !this.neverPassedLogged &&
      this.options.initial === 'failing' &&
      this.counters.checks === this.counters.failures
    ) {
      // A probe that starts failing (startup): a workload still starting, said once.
      this.neverPassedLogged = true;
      this.log.info(`${kind} check not passed yet`, { event: 'agent.probe_not_passed_yet', reason: outcome.reason });
    } else {
      this.log.debug(`${kind} check failed`, { event: 'agent.probe_check_failed', reason: outcome.reason });
    }
  }

  private change(state: ProbeState, reason: string | undefined): void {
    this.current = state;
    this.options.onChange(state, reason);
  }
}
