import { METRICS, type Metric, type StatKind } from '@faultline/protocol';
import type { Thresholds } from './policy.js';

/**
 * The Stratos scaling rule (README "Autoscaler", rule 5), on the latest cluster
 * summaries of the CEP monitor. Rates from the CEP are per second (gradient)
 * and per second² (second derivative), so the horizon t = 1 min is 60 s:
 *
 *   predicted = average + gradient·t + ½·secondDerivative·t²      (t = 60 s)
 *
 *   scale up    when ANY predicted metric > 0.8 × its threshold;
 *   scale down  when EVERY predicted metric < 0.1 × its threshold, in
 *               `scaleDownConsecutive` (3) consecutive decisions.
 *
 * A missing gradient or second derivative (too few samples in the window)
 * counts as 0; a metric without an average takes no part. A decision is taken
 * only on news: `decide()` returns undefined unless a cluster summary arrived
 * since the previous decision, so an SP that stopped publishing cannot make
 * the same stale figures count as "three consecutive decisions".
 */
export const PREDICTION_HORIZON_S = 60;
export const SCALE_UP_RATIO = 0.8;
export const SCALE_DOWN_RATIO = 0.1;

export const THRESHOLD_OF: Readonly<Record<Metric, keyof Thresholds>> = {
  LoadAverage: 'loadAverage',
  MemoryConsumption: 'memoryConsumption',
  RequestsInFlight: 'requestsInFlight',
};

/** The Stratos prediction: average + gradient·t + ½·secondDerivative·t². */
export function predict(
  average: number,
  gradientPerS = 0,
  secondDerivativePerS2 = 0,
  horizonS = PREDICTION_HORIZON_S,
): number {
  return average + gradientPerS * horizonS + 0.5 * secondDerivativePerS2 * horizonS * horizonS;
}

export type Predictions = Partial<Record<keyof Thresholds, number>>;

export type ScalingDecision =
  | { kind: 'up'; reason: string; predicted: Predictions; epoch: number | undefined }
  | { kind: 'down'; reason: string; predicted: Predictions; epoch: number | undefined }
  | { kind: 'steady'; predicted: Predictions; consecutiveBelow: number };

interface Latest {
  value: number;
  windowTo: number;
  epoch: number | undefined;
}

const fmt = (n: number): string => String(Math.round(n * 100) / 100);

export class ScalingRule {
  private readonly latest = new Map<string, Latest>();
  private fresh = false;
  private below = 0;

  constructor(
    private readonly thresholds: Thresholds,
    private readonly scaleDownConsecutive: number,
    private readonly horizonS = PREDICTION_HORIZON_S,
  ) {}

  /** Decisions in a row with every metric below the scale-down line. */
  get consecutiveBelow(): number {
    return this.below;
  }

  /** Records a cluster summary; an older window than the one held is ignored (out of order). */
  observe(kind: StatKind, metric: Metric, value: number, windowTo: number, epoch?: number): boolean {
    const key = `${kind}${metric}`;
    const held = this.latest.get(key);
    if (held && held.windowTo > windowTo) return false;
    this.latest.set(key, { value, windowTo, epoch });
    this.fresh = true;
    return true;
  }

  /** The predicted value of every metric that has an average. */
  predicted(): Predictions {
    const out: Predictions = {};
    for (const metric of METRICS) {
      const average = this.latest.get(`Average${metric}`);
      if (!average) continue;
      out[THRESHOLD_OF[metric]] = predict(
        average.value,
        this.latest.get(`GradientOf${metric}`)?.value,
        this.latest.get(`SecondDerivativeOf${metric}`)?.value,
        this.horizonS,
      );
    }
    return out;
  }

  /** One decision on the latest figures, or undefined when nothing new arrived since the last one. */
  decide(): ScalingDecision | undefined {
    if (!this.fresh) return undefined;
    this.fresh = false;
    const predicted = this.predicted();
    const entries = Object.entries(predicted) as [keyof Thresholds, number][];
    if (entries.length === 0) return undefined;
    const epoch = Math.max(-1, ...[...this.latest.values()].map((l) => l.epoch ?? -1));
    const causeEpoch = epoch < 0 ? undefined : epoch;
    const over = entries.filter(([key, value]) => value > SCALE_UP_RATIO * this.thresholds[key]);
    if (over.length > 0) {
      this.below = 0;
      const reason = over
        .map(([key, value]) => `predicted ${key} ${fmt(value)} > ${fmt(SCALE_UP_RATIO * this.thresholds[key])}`)
        .join(', ');
      return { kind: 'up', reason: `${reason} (0.8 × threshold)`, predicted, epoch: causeEpoch };
    }
    if (entries.every(([key, value]) => value < SCALE_DOWN_RATIO * this.thresholds[key])) {
      this.below += 1;
      if (this.below >= this.scaleDownConsecutive) {
        const figures = entries
          .map(([key, value]) => `${key} ${fmt(value)} < ${fmt(SCALE_DOWN_RATIO * this.thresholds[key])}`)
          .join(', ');
        const reason = `every predicted metric below 0.1 × threshold in ${this.below} consecutive decisions (${figures})`;
        return { kind: 'down', reason, predicted, epoch: causeEpoch };
      }
    } else {
      this.below = 0;
    }
    return { kind: 'steady', predicted, consecutiveBelow: this.below };
  }

  /** After a scale action: the next scale down needs a fresh run of consecutive decisions. */
  acted(): void {
    this.below = 0;
  }
}
