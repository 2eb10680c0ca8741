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
 *
 * Stabilization (`clusters[].scaling`, below: `recommendedMembers`,
 * `ScaleStabilizer`) decides how many members a decision moves and when.
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

/** A decision that asks for a scale action. */
export type ScaleDecision = Extract<ScalingDecision, { kind: 'up' | 'down' }>;

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

/** Slack for floating point: 3 members × 40 ÷ 40 must be 3, not 3.0000000001 rounded up to 4. */
const EPSILON = 1e-9;

/**
 * The member count a prediction asks for: the fewest members that keep every
 * predicted metric at or under `ratio` × its threshold when the cluster's load
 * (the per-member average × `members`) spreads over them (the HPA's
 * ceil(current × metric ÷ target)). Never negative.
 */
export function membersFor(predicted: Predictions, thresholds: Thresholds, members: number, ratio: number): number {
  let needed = 0;
  for (const [key, value] of Object.entries(predicted) as [keyof Thresholds, number][]) {
    needed = Math.max(needed, Math.ceil((value * members) / (ratio * thresholds[key]) - EPSILON));
  }
  return needed;
}

/**
 * The member count one decision recommends, within [min, max]: a scale up
 * asks for enough members to bring every predicted metric to 0.8 × its
 * threshold (at least one more); every metric under 0.1 × its threshold asks
 * for the fewest members that keep it there (at least one fewer: Stratos
 * removes one), whether or not the consecutive rule has fired yet; anything
 * else asks for the members there are.
 */
export function recommendedMembers(
  predicted: Predictions,
  thresholds: Thresholds,
  live: number,
  bounds: { min: number; max: number },
): number {
  const entries = Object.entries(predicted) as [keyof Thresholds, number][];
  let wanted = live;
  if (entries.some(([key, value]) => value > SCALE_UP_RATIO * thresholds[key])) {
    wanted = Math.max(live + 1, membersFor(predicted, thresholds, live, SCALE_UP_RATIO));
  } else if (entries.length > 0 && entries.every(([key, value]) => value < SCALE_DOWN_RATIO * thresholds[key])) {
    wanted = Math.min(live - 1, membersFor(predicted, thresholds, live, SCALE_DOWN_RATIO));
  }
  return Math.min(Math.max(wanted, bounds.min), Math.max(bounds.max, bounds.min));
}

export type ScaleAction = 'ScaleUpAction' | 'ScaleDownAction';

/**
 * What scale stabilization keeps across a restart or a takeover by the other
 * autoscaler node (with the cluster's monitor state, `autoscaler_cluster`).
 * Wall-clock times (epoch ms): the only time both nodes share.
 */
export interface StabilizationState {
  /** The scaling rule's last scale action: which, when, and the member count it went to. */
  lastScale: { action: ScaleAction; at: number; members: number } | null;
  /** For status readers: the end of the cooldown after it; null without a cooldown. Derived again at restore. */
  cooldownUntil: number | null;
  /**
   * The recommendations of the scale-down window that can still bound a scale
   * down, oldest first: each is higher than every later one (a lower or equal
   * one before a higher one can never be the window's highest again).
   */
  recommendations: { at: number; members: number }[];
}

/** The stabilization part of a cluster's `scaling` status. */
export interface StabilizationStatus {
  /** Epoch ms until which the scaling rule does not act (the cooldown after its last action); null: not cooling down. */
  cooldownUntil: number | null;
  lastScale: { action: ScaleAction; at: number; members: number } | null;
  /** The highest recommendation in the scale-down window (no scale down below it) and when it leaves the window. */
  scaleDownFloor: { members: number; until: number } | null;
}

/** A cluster's `scaling` status: the rule's figures, what they recommend, and stabilization. */
export interface ScalingStatus extends StabilizationStatus {
  predicted: Predictions;
  consecutiveBelow: number;
  /** The member count the latest decision's predictions recommend (within min and max); null before any. */
  recommended: number | null;
  /** Why the last decision that asked for a scale action did not act (cooldown, scale-down window); null otherwise. */
  held: string | null;
}

interface Mark {
  /** Monotonic ms: elapsed time inside this process. */
  mono: number;
  /** Wall-clock ms: what is persisted and shown. */
  at: number;
}

/**
 * Scale stabilization of one cluster, on top of Stratos' rule: the cooldown
 * after each scale action and the scale-down window (the HPA's: a scale down
 * goes no lower than the highest recommendation within the window). Elapsed
 * time is measured on the monotonic clock; wall time is only kept to be
 * persisted and shown, and a persisted wall time becomes a monotonic mark at
 * restore (its age by the wall clock, never negative: a peer's clock ahead of
 * this one holds a full window at most, never longer). Pure: times are passed in.
 */
export class ScaleStabilizer {
  /** The window's recommendations, oldest first, members strictly decreasing (a sliding maximum). */
  private window: (Mark & { members: number })[] = [];
  private last: (Mark & { action: ScaleAction; members: number }) | undefined;

  constructor(private readonly options: { scaleDownWindowMs: number; cooldownMs: number }) {}

  /** Records one decision's recommendation; returns whether the state to persist changed. */
  recommend(members: number, mono: number, at: number): boolean {
    if (this.options.scaleDownWindowMs <= 0) return false;
    this.expire(mono);
    while (this.window.length > 0 && (this.window.at(-1)?.members ?? 0) <= members) this.window.pop();
    this.window.push({ mono, at, members });
    return true;
  }

  /** The highest recommendation within the window; undefined when the window is off or empty. */
  floor(mono: number): number | undefined {
    this.expire(mono);
    return this.window[0]?.members;
  }

  /** Monotonic ms at which the cooldown ends; undefined when not cooling down. */
  coolingDownUntil(mono: number): number | undefined {
    if (!this.last || this.options.cooldownMs <= 0) return undefined;
    const until = this.last.mono + this.options.cooldownMs;
    return until > mono ? until : undefined;
  }

  /** A scale action was decided: the cooldown starts. */
  acted(action: ScaleAction, members: number, mono: number, at: number): void {
    this.last = { action, members, mono, at };
  }

  state(): StabilizationState {
    const last = this.last;
    return {
      lastScale: last ? { action: last.action, at: last.at, members: last.members } : null,
      cooldownUntil: last && this.options.cooldownMs > 0 ? last.at + this.options.cooldownMs : null,
      recommendations: this.window.map(({ at, members }) => ({ at, members })),
    };
  }

  /** Takes a persisted state back: each wall time becomes a monotonic mark of the same age. */
  restore(state: StabilizationState, mono: number, at: number): void {
    const markOf = (then: number): Mark => ({ mono: mono - Math.max(0, at - then), at: then });
    if (state.lastScale) this.last = { ...state.lastScale, ...markOf(state.lastScale.at) };
    this.window = [];
    if (this.options.scaleDownWindowMs <= 0) return;
    for (const r of [...state.recommendations].sort((a, b) => a.at - b.at)) {
      const mark = markOf(r.at);
      while (this.window.length > 0 && (this.window.at(-1)?.members ?? 0) <= r.members) this.window.pop();
      this.window.push({ ...mark, members: r.members });
    }
    this.expire(mono);
  }

  status(mono: number, at: number): StabilizationStatus {
    const cooling = this.coolingDownUntil(mono);
    const last = this.last;
    const floor = this.floor(mono);
    const front = this.window[0];
    return {
      cooldownUntil: cooling === undefined ? null : at + (cooling - mono),
      lastScale: last ? { action: last.action, at: last.at, members: last.members } : null,
      scaleDownFloor:
        floor === undefined || !front
          ? null
          : { members: floor, until: at + (front.mono + this.options.scaleDownWindowMs - mono) },
    };
  }

  /** Drops the recommendations that left the window. */
  private expire(mono: number): void {
    const windowMs = this.options.scaleDownWindowMs;
    while (this.window.length > 0 && mono - (this.window[0]?.mono ?? mono) >= windowMs) this.window.shift();
  }
}
