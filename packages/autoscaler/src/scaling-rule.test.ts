import { describe, expect, it } from 'vitest';
import { predict, ScalingRule } from './scaling-rule.js';

const thresholds = { requestsInFlight: 50, memoryConsumption: 90, loadAverage: 90 };

describe('predict (Stratos): average + gradient·t + ½·secondDerivative·t², t = 60 s', () => {
  it('matches hand-computed values', () => {
    // 30 + 0.1·60 + ½·0.001·3600 = 30 + 6 + 1.8
    expect(predict(30, 0.1, 0.001)).toBeCloseTo(37.8, 10);
    // 70 − 0.5·60 + ½·0.01·3600 = 70 − 30 + 18
    expect(predict(70, -0.5, 0.01)).toBeCloseTo(58, 10);
    // A missing gradient or second derivative counts as 0.
    expect(predict(12)).toBe(12);
    expect(predict(10, 1, 0, 1)).toBe(11);
  });
});

describe('ScalingRule', () => {
  it('scales up when any predicted metric is over 0.8 × its threshold', () => {
    const rule = new ScalingRule(thresholds, 3);
    rule.observe('Average', 'RequestsInFlight', 30, 1_000, 4);
    rule.observe('GradientOf', 'RequestsInFlight', 0.1, 1_000, 4);
    rule.observe('SecondDerivativeOf', 'RequestsInFlight', 0.001, 1_000, 4);
    rule.observe('Average', 'MemoryConsumption', 40, 1_000, 4);
    const decision = rule.decide();
    // requestsInFlight: 37.8 > 0.8 × 50 = 40? No: 37.8 < 40, so steady.
    expect(decision).toMatchObject({ kind: 'steady', predicted: { requestsInFlight: 37.8, memoryConsumption: 40 } });

    rule.observe('GradientOf', 'RequestsInFlight', 0.2, 2_000, 5);
    // 30 + 0.2·60 + 1.8 = 43.8 > 40
    expect(rule.decide()).toEqual({
      kind: 'up',
      reason: 'predicted requestsInFlight 43.8 > 40 (0.8 × threshold)',
      predicted: { requestsInFlight: 43.8, memoryConsumption: 40 },
      epoch: 5,
    });
  });

  it('the boundary itself is not over: 0.8 × threshold exactly is steady', () => {
    const rule = new ScalingRule(thresholds, 3);
    rule.observe('Average', 'LoadAverage', 72, 1_000); // 0.8 × 90 = 72
    expect(rule.decide()?.kind).toBe('steady');
  });

  it('scales down only after 3 consecutive decisions with every metric under 0.1 × threshold', () => {
    const rule = new ScalingRule(thresholds, 3);
    const low = (t: number, load = 5) => {
      rule.observe('Average', 'LoadAverage', load, t); // < 9
      rule.observe('Average', 'MemoryConsumption', 8, t); // < 9
      rule.observe('Average', 'RequestsInFlight', 1, t); // < 5
    };
    low(1_000);
    expect(rule.decide()).toMatchObject({ kind: 'steady', consecutiveBelow: 1 });
    low(2_000);
    expect(rule.decide()).toMatchObject({ kind: 'steady', consecutiveBelow: 2 });
    low(3_000);
    const third = rule.decide();
    expect(third?.kind).toBe('down');
    expect(third?.kind === 'down' && third.reason).toBe(
      'every predicted metric below 0.1 × threshold in 3 consecutive decisions (loadAverage 5 < 9, memoryConsumption 8 < 9, requestsInFlight 1 < 5)',
    );
    rule.acted();
    expect(rule.consecutiveBelow).toBe(0);
  });

  it('one metric at or above 0.1 × threshold breaks the run', () => {
    const rule = new ScalingRule(thresholds, 3);
    rule.observe('Average', 'LoadAverage', 5, 1_000);
    rule.decide();
    rule.observe('Average', 'LoadAverage', 5, 2_000);
    rule.decide();
    // Load 5 now, but a gradient of 0.1/s predicts 5 + 6 = 11 ≥ 9.
    rule.observe('GradientOf', 'LoadAverage', 0.1, 3_000);
    expect(rule.decide()).toMatchObject({ kind: 'steady', consecutiveBelow: 0 });
  });

  it('decides only on news, and ignores a summary older than the one it holds', () => {
    const rule = new ScalingRule(thresholds, 3);
    expect(rule.decide()).toBeUndefined();
    rule.observe('Average', 'LoadAverage', 5, 2_000);
    expect(rule.decide()).toBeDefined();
    expect(rule.decide()).toBeUndefined();
    expect(rule.observe('Average', 'LoadAverage', 80, 1_000)).toBe(false);
    expect(rule.decide()).toBeUndefined();
    expect(rule.predicted()).toEqual({ loadAverage: 5 });
  });
});
