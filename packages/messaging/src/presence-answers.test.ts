import { systemClock } from '@faultline/core';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ANSWER_BURST, AnswerThrottle, answerGapMs } from './presence-answers.js';

describe('AnswerThrottle (how a subscriber link answers presence asks)', () => {
  beforeEach(() => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] }));
  afterEach(() => vi.useRealTimers());

  const setup = (minGapMs = 100) => {
    const answers: number[] = [];
    const throttle = new AnswerThrottle({
      clock: systemClock,
      minGapMs,
      answer: () => answers.push(systemClock.monotonicNow()),
    });
    throttle.reset();
    return { throttle, answers, start: systemClock.monotonicNow() };
  };

  it('answers a tenth of the ping interval apart at most, once its burst is spent', () => {
    expect(answerGapMs(1_000)).toBe(100);
    expect(answerGapMs(10_000)).toBe(1_000);
    expect(answerGapMs(5)).toBe(1);
  });

  it('answers at once while its burst lasts, then once at the end of the gap for every ask meanwhile', async () => {
    const { throttle, answers, start } = setup();
    const outcomes = Array.from({ length: ANSWER_BURST }, () => throttle.ask());
    expect(outcomes).toEqual(Array(ANSWER_BURST).fill('answered'));
    expect(answers).toEqual(Array(ANSWER_BURST).fill(start));
    expect(throttle.ask()).toBe('deferred');
    expect(throttle.ask()).toBe('coalesced');
    await vi.advanceTimersByTimeAsync(99);
    expect(throttle.ask()).toBe('coalesced');
    expect(answers).toHaveLength(ANSWER_BURST);
    await vi.advanceTimersByTimeAsync(1);
    expect(answers).toHaveLength(ANSWER_BURST + 1);
    expect(answers.at(-1)).toBe(start + 100);
    // Quiet for a while: the burst is back.
    await vi.advanceTimersByTimeAsync(ANSWER_BURST * 100);
    expect(Array.from({ length: ANSWER_BURST }, () => throttle.ask())).toEqual(Array(ANSWER_BURST).fill('answered'));
  });

  it('a flood of asks costs a bounded number of answers: the burst, then one per gap', async () => {
    const { throttle, answers } = setup();
    const outcomes = new Map<string, number>();
    // 100 000 asks over 10 s, one every 0.1 ms.
    for (let i = 0; i < 100_000; i++) {
      const outcome = throttle.ask();
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      if (i % 10 === 9) await vi.advanceTimersByTimeAsync(1);
    }
    expect(answers.length).toBeLessThanOrEqual(ANSWER_BURST + 10_000 / 100 + 1);
    expect(answers.length).toBeGreaterThanOrEqual(10_000 / 100);
    expect(outcomes.get('answered')).toBe(ANSWER_BURST);
    expect((outcomes.get('deferred') ?? 0) + ANSWER_BURST + (outcomes.get('coalesced') ?? 0)).toBe(100_000);
    // Never two answers closer than the gap once the burst is spent.
    const gaps = answers.slice(ANSWER_BURST).map((at, i) => at - (answers[ANSWER_BURST + i - 1] as number));
    expect(Math.min(...gaps.slice(1))).toBeGreaterThanOrEqual(100);
  });

  it('an announcement answers at once and takes over an answer that was due; reset() forgets everything', async () => {
    const { throttle, answers, start } = setup();
    for (let i = 0; i < ANSWER_BURST; i++) throttle.ask();
    expect(throttle.ask()).toBe('deferred');
    throttle.announce();
    expect(answers).toHaveLength(ANSWER_BURST + 1);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(answers).toHaveLength(ANSWER_BURST + 1); // the deferred answer was the announcement
    expect(answers.at(-1)).toBe(start);
    for (let i = 0; i < ANSWER_BURST; i++) throttle.ask();
    expect(throttle.ask()).toBe('deferred');
    throttle.reset();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(answers).toHaveLength(2 * ANSWER_BURST + 1);
    expect(throttle.ask()).toBe('answered');
  });
});
