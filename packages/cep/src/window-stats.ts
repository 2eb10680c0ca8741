import { MEMBER_METRICS, METRICS, type MemberIdentity, type Metric, type StatKind } from '@faultline/protocol';
import { type SeriesSummary, summarize } from './window-math.js';

/** One summarized figure of a tick; `memberId` set for the per-member summaries. */
export interface WindowSummary {
  kind: StatKind;
  metric: Metric;
  clusterId: string;
  clusterInstanceId: string;
  networkPartitionId: string;
  memberId?: string;
  value: number;
  /** The window, epoch ms: samples with windowFrom < timestamp ≤ windowTo. */
  windowFrom: number;
  windowTo: number;
}

/** Where a sample comes from: its member's identity without the partition, which no summary names. */
export type SampleSource = Pick<MemberIdentity, 'clusterId' | 'clusterInstanceId' | 'networkPartitionId' | 'memberId'>;

/** One member's samples in exported state: per metric, `[timestamp, value]` pairs in time order. */
export interface MemberSeriesState extends SampleSource {
  samples: Partial<Record<Metric, [number, number][]>>;
}

export interface WindowStatsOptions {
  windowMs: number;
  /** A flooding agent loses its oldest samples beyond this. */
  maxSamplesPerSeries: number;
}

interface Series {
  times: number[];
  values: number[];
}

interface MemberSeries {
  source: SampleSource;
  group: ClusterGroup;
  series: Map<Metric, Series>;
}

interface ClusterGroup {
  key: string;
  clusterId: string;
  networkPartitionId: string;
  /** The cluster instance last reported in this (cluster, network partition). */
  clusterInstanceId: string;
  members: Map<string, MemberSeries>;
}

const groupKey = (clusterId: string, networkPartitionId: string) => `${clusterId}\u0000${networkPartitionId}`;

/**
 * Summarized stats (issue 5, part 2): per member and metric the samples of
 * the window, keyed by the agent's own timestamps; per (cluster, network
 * partition) and metric the summaries over its members' series.
 *
 * Per member (memory and load; Stratos' member summaries): the formulas of
 * window-math.ts on that member's samples.
 *
 * Per cluster: average = the mean of every sample of every member in the
 * window (Stratos). Gradient and second derivative = the mean of the members'
 * own gradients (second derivatives), over the members that have one. Stratos
 * took last − first over the cluster's mixed stream, so two members at load
 * 10 and 90 reporting in turn gave a gradient of ±80/Δt out of nothing; the
 * mean of the members' slopes is the slope of the cluster average (the
 * derivative is linear) and ignores which member happened to report last.
 * A member the topology removed takes its samples out of its cluster's
 * figures (`forgetMember`); a faulted member's samples age out with the window.
 */
export class WindowStats {
  private readonly members = new Map<string, MemberSeries>();
  private readonly groups = new Map<string, ClusterGroup>();

  constructor(private readonly options: WindowStatsOptions) {}

  /** Members with samples. */
  get size(): number {
    return this.members.size;
  }

  get clusters(): number {
    return this.groups.size;
  }

  add(source: SampleSource, metric: Metric, timestamp: number, value: number): void {
    const member = this.memberFor(source);
    let series = member.series.get(metric);
    if (!series) {
      series = { times: [], values: [] };
      member.series.set(metric, series);
    }
    insertSorted(series, timestamp, value);
    if (series.times.length > this.options.maxSamplesPerSeries) {
      series.times.shift();
      series.values.shift();
    }
  }

  /**
   * The summaries of the window ending at `windowTo`, in a fixed order (cluster by
   * cluster in first-seen order; its metrics, then its members'), so two nodes fed
   * the same stats emit the same outputs. Drops the samples no later window can hold.
   */
  summarize(windowTo: number): WindowSummary[] {
    const windowFrom = windowTo - this.options.windowMs;
    const out: WindowSummary[] = [];
    for (const group of [...this.groups.values()]) {
      const base = {
        clusterId: group.clusterId,
        clusterInstanceId: group.clusterInstanceId,
        networkPartitionId: group.networkPartitionId,
        windowFrom,
        windowTo,
      };
      const perMember = new Map<MemberSeries, Map<Metric, SeriesSummary>>();
      for (const member of [...group.members.values()]) {
        const summaries = new Map<Metric, SeriesSummary>();
        for (const [metric, series] of member.series) {
          prune(series, windowFrom);
          if (series.times.length === 0) member.series.delete(metric);
          else summaries.set(metric, summarizeWindow(series, windowTo));
        }
        if (member.series.size === 0) this.drop(member);
        else perMember.set(member, summaries);
      }
      for (const metric of METRICS) {
        let count = 0;
        let sum = 0;
        const gradients: number[] = [];
        const seconds: number[] = [];
        for (const summaries of perMember.values()) {
          const s = summaries.get(metric);
          if (!s) continue;
          count += s.count;
          sum += s.sum;
          if (s.gradient !== undefined) gradients.push(s.gradient);
          if (s.secondDerivative !== undefined) seconds.push(s.secondDerivative);
        }
        push(out, { ...base, metric }, count > 0 ? sum / count : undefined, mean(gradients), mean(seconds));
      }
      for (const [member, summaries] of perMember) {
        for (const metric of MEMBER_METRICS) {
          const s = summaries.get(metric);
          if (!s) continue;
          const where = {
            ...base,
            clusterInstanceId: member.source.clusterInstanceId,
            memberId: member.source.memberId,
          };
          push(out, { ...where, metric }, s.average, s.gradient, s.secondDerivative);
        }
      }
    }
    return out;
  }

  forgetMember(memberId: string): boolean {
    const member = this.members.get(memberId);
    if (!member) return false;
    this.drop(member);
    return true;
  }

  export(): MemberSeriesState[] {
    return [...this.members.values()].map((member) => ({
      ...member.source,
      samples: Object.fromEntries(
        [...member.series].map(([metric, s]) => [metric, s.times.map((t, i) => [t, s.values[i] as number])]),
      ),
    }));
  }

  import(state: readonly MemberSeriesState[]): void {
    this.members.clear();
    this.groups.clear();
    for (const m of state) {
      for (const metric of METRICS) {
        for (const [t, v] of m.samples[metric] ?? []) this.add(m, metric, t, v);
      }
    }
  }

  private memberFor(source: SampleSource): MemberSeries {
    const key = groupKey(source.clusterId, source.networkPartitionId);
    let member = this.members.get(source.memberId);
    if (member && member.group.key !== key) {
      // The member moved (not expected of a Stratos member): its old samples describe the old cluster.
      this.drop(member);
      member = undefined;
    }
    let group = member?.group ?? this.groups.get(key);
    if (!group) {
      group = {
        key,
        clusterId: source.clusterId,
        networkPartitionId: source.networkPartitionId,
        clusterInstanceId: source.clusterInstanceId,
        members: new Map(),
      };
      this.groups.set(key, group);
    }
    group.clusterInstanceId = source.clusterInstanceId;
    if (!member) {
      member = {
        source: {
          clusterId: source.clusterId,
          clusterInstanceId: source.clusterInstanceId,
          networkPartitionId: source.networkPartitionId,
          memberId: source.memberId,
        },
        group,
        series: new Map(),
      };
      this.members.set(source.memberId, member);
      group.members.set(source.memberId, member);
    } else if (member.source.clusterInstanceId !== source.clusterInstanceId) {
      member.source.clusterInstanceId = source.clusterInstanceId;
    }
    return member;
  }

  private drop(member: MemberSeries): void {
    this.members.delete(member.source.memberId);
    member.group.members.delete(member.source.memberId);
    if (member.group.members.size === 0) this.groups.delete(member.group.key);
  }
}

function push(
  out: WindowSummary[],
  where: Omit<WindowSummary, 'kind' | 'value'>,
  average: number | undefined,
  gradient: number | undefined,
  secondDerivative: number | undefined,
): void {
  // A non-finite figure (values near the float limit) cannot go on the wire.
  if (average !== undefined && Number.isFinite(average)) out.push({ ...where, kind: 'Average', value: average });
  if (gradient !== undefined && Number.isFinite(gradient)) out.push({ ...where, kind: 'GradientOf', value: gradient });
  if (secondDerivative !== undefined && Number.isFinite(secondDerivative)) {
    out.push({ ...where, kind: 'SecondDerivativeOf', value: secondDerivative });
  }
}

function mean(xs: readonly number[]): number | undefined {
  if (xs.length === 0) return undefined;
  let sum = 0;
  for (const x of xs) sum += x;
  return sum / xs.length;
}

/** Samples arrive in time order per member, so this is a push; a late one walks back a step or two. */
function insertSorted(series: Series, t: number, v: number): void {
  let i = series.times.length;
  while (i > 0 && (series.times[i - 1] as number) > t) i--;
  if (i === series.times.length) {
    series.times.push(t);
    series.values.push(v);
  } else {
    series.times.splice(i, 0, t);
    series.values.splice(i, 0, v);
  }
}

/** Drops the samples at or before `windowFrom`: windows only move forward. */
function prune(series: Series, windowFrom: number): void {
  let n = 0;
  while (n < series.times.length && (series.times[n] as number) <= windowFrom) n++;
  if (n > 0) {
    series.times.splice(0, n);
    series.values.splice(0, n);
  }
}

/** Summary of the samples with timestamp ≤ windowTo (later ones wait for the next tick). */
function summarizeWindow(series: Series, windowTo: number): SeriesSummary {
  let last = series.times.length - 1;
  while (last >= 0 && (series.times[last] as number) > windowTo) last--;
  return summarize(series.times, series.values, 0, last);
}
