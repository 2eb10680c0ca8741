import { systemClock } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { CheckOutcome, ProbeCheck } from './probe-checks.js';
import { ProbeRunner, type ProbeRunnerOptions, type ProbeState } from './probe-runner.js';

/**
 * A workload whose answers the test decides, one per check: `pass`, `fail`,
 * `slow` (answers only after `slowMs`, past the probe's deadline) or `hang`
 * (never answers). Records every check's signal.
 */
function scriptedCheck(slowMs = 5_000) {
  const script: ('pass' | 'fail' | 'slow' | 'hang')[] = [];
  const signals: AbortSignal[] = [];
  let next: 'pass' | 'fail' | 'slow' | 'hang' = 'pass';
  const check: ProbeCheck = (signal) => {
    signals.push(signal);
    const step = script.shift() ?? next;
    if (step === 'pass') return Promise.resolve({ ok: true });
    if (step === 'fail') return Promise.resolve({ ok: false, reason: 'HTTP 503, expected 200' });
    if (step === 'hang') return new Promise<CheckOutcome>(() => {});
    return new Promise<CheckOutcome>((resolve) => setTimeout(() => resolve({ ok: true }), slowMs));
  };
  return {
    check,
    signals,
    script,
    set afterwards(step: 'pass' | 'fail' | 'slow' | 'hang') {
      next = step;
    },
  };
}

function runner(check: ProbeCheck, extra: Partial<ProbeRunnerOptions> = {}) {
  const changes: [ProbeState, string | undefined][] = [];
  const logger = createMemoryLogger();
  const r = new ProbeRunner({
    kind: 'liveness',
    check,
    periodMs: 15_000,
    timeoutMs: 2_000,
    failureThreshold: 3,
    successThreshold: 1,
    initial: 'passing',
    clock: systemClock,
    logger,
    onChange: (state, reason) => changes.push([state, reason]),
    ...extra,
  });
  return { r, changes, logger };
}

describe('ProbeRunner (README "Probes"), on fake time', () => {
  beforeEach(() => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date', 'performance'] }));
  afterEach(() => vi.useRealTimers());

  it('two slow answers with threshold 3 change nothing; a third in a row fails it', async () => {
    const w = scriptedCheck();
    w.script.push('slow', 'slow', 'pass', 'slow', 'slow');
    w.afterwards = 'slow';
    const { r, changes, logger } = runner(w.check);
    r.start();
    // Checks at 0 and 15 s time out at 2 s and 17 s: two failures in a row, still passing.
    await vi.advanceTimersByTimeAsync(17_000);
    expect(r.counters).toEqual({ checks: 2, failures: 2, timeouts: 2 });
    expect(r.state).toBe('passing');
    expect(changes).toEqual([]);
    // The pass at 30 s resets the count: two more slow answers are two in a row again, not four.
    await vi.advanceTimersByTimeAsync(15_000 + 15_000 + 2_000);
    expect(r.counters).toEqual({ checks: 4, failures: 3, timeouts: 3 });
    expect(r.state).toBe('passing');
    await vi.advanceTimersByTimeAsync(15_000);
    expect(r.counters.failures).toBe(4);
    expect(changes).toEqual([]);
    // The third slow answer in a row (the check at 75 s, given up at 77 s): failing, with the reason.
    await vi.advanceTimersByTimeAsync(15_000);
    expect(r.state).toBe('failing');
    expect(changes).toEqual([['failing', 'no answer within 2000 ms']]);
    expect(logger.events().filter((e) => e === 'agent.probe_check_failed')).toHaveLength(4);
    r.stop();
  });

  it('fails exactly at the threshold, on the check that reaches it, and passes again after successThreshold passes', async () => {
    const w = scriptedCheck();
    w.script.push('pass', 'fail', 'fail', 'fail', 'fail', 'pass', 'fail', 'pass', 'pass');
    const { r, changes } = runner(w.check, { periodMs: 1_000, successThreshold: 2 });
    r.start();
    await vi.advanceTimersByTimeAsync(2_000);
    expect(r.state).toBe('passing');
    await vi.advanceTimersByTimeAsync(1_000);
    expect(changes).toEqual([['failing', 'HTTP 503, expected 200']]);
    // A fourth failure, one pass, a failure: a pass in a row is not two.
    await vi.advanceTimersByTimeAsync(3_000);
    expect(r.state).toBe('failing');
    // One pass is not two; two in a row: passing again.
    await vi.advanceTimersByTimeAsync(1_000);
    expect(r.state).toBe('failing');
    await vi.advanceTimersByTimeAsync(1_000);
    expect(r.state).toBe('passing');
    expect(changes).toEqual([
      ['failing', 'HTTP 503, expected 200'],
      ['passing', undefined],
    ]);
    r.stop();
  });

  it('aborts a check at its deadline and never runs two at once; a slow check delays the next', async () => {
    const w = scriptedCheck();
    w.afterwards = 'hang';
    const { r } = runner(w.check, { periodMs: 1_000, timeoutMs: 3_000, failureThreshold: 100 });
    r.start();
    await vi.advanceTimersByTimeAsync(2_999);
    // The period has passed, the check has not ended: no second one.
    expect(w.signals).toHaveLength(1);
    expect(w.signals[0]?.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(w.signals[0]?.aborted).toBe(true);
    // Overran its period: the next starts at once (a timer of 0 ms).
    await vi.advanceTimersByTimeAsync(1);
    expect(w.signals).toHaveLength(2);
    expect(r.counters).toEqual({ checks: 1, failures: 1, timeouts: 1 });
    r.stop();
    expect(w.signals[1]?.aborted).toBe(true);
  });

  it('a startup probe starts failing, never fails further, and passes on its first pass', async () => {
    const w = scriptedCheck();
    w.script.push(...Array.from({ length: 50 }, () => 'fail' as const));
    const { r, changes, logger } = runner(w.check, {
      kind: 'startup',
      initial: 'failing',
      failureThreshold: Number.POSITIVE_INFINITY,
      periodMs: 1_000,
    });
    r.start();
    await vi.advanceTimersByTimeAsync(49_500);
    expect(r.state).toBe('failing');
    expect(changes).toEqual([]);
    // A workload still starting is said once, not once a second.
    expect(logger.events()).toEqual(['agent.probe_not_passed_yet', ...Array(49).fill('agent.probe_check_failed')]);
    expect(logger.records.filter((rec) => rec.level === 'info')).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(changes).toEqual([['passing', undefined]]);
    r.stop();
  });

  it('stops: no check after stop(), the one under way aborted and its result ignored', async () => {
    const w = scriptedCheck();
    w.afterwards = 'hang';
    const { r, changes } = runner(w.check, { periodMs: 1_000, failureThreshold: 1 });
    r.start();
    r.start();
    expect(w.signals).toHaveLength(1);
    r.stop();
    expect(w.signals[0]?.aborted).toBe(true);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(w.signals).toHaveLength(1);
    expect(r.counters.checks).toBe(0);
    expect(changes).toEqual([]);
  });

  it('takes a check that throws for a failure with its message', async () => {
    const { r, changes } = runner(() => Promise.reject(new Error('spawn EACCES')), { failureThreshold: 1 });
    r.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(changes).toEqual([['failing', 'spawn EACCES']]);
    r.stop();
  });
});
