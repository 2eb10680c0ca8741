import { MEMBER_METRICS, METRICS, type MemberIdentity, type Metric, type StatKind } from '@faultline/protocol';
import { type SeriesSummary, summarizeInto } from './window-math.js';

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

/**
 * A metric's samples, oldest first: slots `head` … `head + size - 1` of
 * `times` and `values`. The arrays never shrink (the other slots are stale):
 * adding and dropping a sample moves numbers within them instead of splicing,
 * which allocated new backing stores that lived as long as the window (most
 * of the active SP's promotions to the old generation at 100 000 members).
 * Dropping the oldest moves `head`; the samples move back to slot 0 only when
 * the stale slots before them outnumber them, so a series at its bound costs
 * O(1) a sample, amortized. The arrays grow only when the samples reach their
 * end, so they hold at most about twice the most samples the series has held
 * (maxSamplesPerSeries + 1): they do not shrink after a burst.
 */
interface Series {
  times: number[];
  values: number[];
  head: number;
  size: number;
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

  /** Whether the member has samples here. */
  has(memberId: string): boolean {
    return this.members.has(memberId);
  }

  add(source: SampleSource, metric: Metric, timestamp: number, value: number): void {
    const member = this.memberFor(source);
    let series = member.series.get(metric);
    if (!series) {
      series = { times: [], values: [], head: 0, size: 0 };
      member.series.set(metric, series);
    }
    insertSorted(series, timestamp, value);
    if (series.size > this.options.maxSamplesPerSeries) dropOldest(series, 1);
  }

  /**
   * The summaries of the window ending at `windowTo`, in a fixed order (cluster by
   * cluster in first-seen order; its metrics, then its members'), so two nodes fed
   * the same stats emit the same outputs. Drops the samples no later window can hold.
   */
  summarize(windowTo: number): WindowSummary[] {
    const out: WindowSummary[] = [];
    const job = this.summaryJob(windowTo);
    for (const group of job.run(() => true)) {
      out.push(...group.cluster);
      // Member by member, in the cluster's order, each with its types in order.
      const rows = new Map<string, WindowSummary[]>(group.memberIds.map((id) => [id, []]));
      for (const t of group.members)
        t.ids.forEach((memberId, i) => {
          rows.get(memberId)?.push({
            ...t.first,
            clusterInstanceId: t.instances[i] as string,
            memberId,
            value: t.values[i] as number,
          });
        });
      for (const row of rows.values()) out.push(...row);
    }
    return out;
  }

  /**
   * The tick at `windowTo` as a job that can stop and go on (`run`): cluster
   * by cluster, member by member, so a tick of 100 000 members need not hold
   * the event loop for seconds. The clusters and their members are taken as
   * they are when a cluster's turn comes; only samples at or before
   * `windowTo` count, so what arrives while the job runs changes nothing of
   * this tick.
   */
  summaryJob(windowTo: number): SummaryJob {
    return new SummaryJob(this, [...this.groups.values()], windowTo, this.options.windowMs);
  }

  /** @internal The job's access to dropping a member whose samples all aged out. */
  dropMember(member: MemberSeries): void {
    this.drop(member);
  }

  forgetMember(memberId: string): boolean {
    const member = this.members.get(memberId);
    if (!member) return false;
    this.drop(member);
    return true;
  }

  /**
   * Every member with samples, cluster by cluster in the order `summarize`
   * takes them: a streamed export walks these, and the importer puts them
   * back in this order (`reorder`), so both nodes split a summary into the
   * same parts.
   */
  memberIds(): string[] {
    const ids: string[] = [];
    for (const group of this.groups.values()) for (const id of group.members.keys()) ids.push(id);
    return ids;
  }

  /**
   * Puts clusters and their members in the order of `rank` (a streamed
   * import's arrival order, which is the exporter's order); members with no
   * rank (first seen since) follow, in the order they have.
   */
  reorder(rank: ReadonlyMap<string, number>): void {
    const of = (id: string) => rank.get(id) ?? Number.POSITIVE_INFINITY;
    const groups = [...this.groups.values()];
    const first = new Map<ClusterGroup, number>();
    for (const group of groups) {
      const members = [...group.members.values()].sort((a, b) => of(a.source.memberId) - of(b.source.memberId));
      group.members = new Map(members.map((m) => [m.source.memberId, m]));
      first.set(
        group,
        members.length > 0 ? of((members[0] as MemberSeries).source.memberId) : Number.POSITIVE_INFINITY,
      );
    }
    groups.sort((a, b) => (first.get(a) as number) - (first.get(b) as number));
    this.groups.clear();
    for (const group of groups) this.groups.set(group.key, group);
  }

  export(): MemberSeriesState[] {
    return [...this.members.values()].map(exported);
  }

  /** One member's samples as `export()` gives them, or undefined when it has none. */
  exportOne(memberId: string): MemberSeriesState | undefined {
    const member = this.members.get(memberId);
    return member && exported(member);
  }

  import(state: readonly MemberSeriesState[]): void {
    this.members.clear();
    this.groups.clear();
    for (const m of state) this.importOne(m);
  }

  /**
   * Replaces one member's samples with a peer's export of them (a streamed
   * import). A member already here in the same cluster keeps its place in
   * the cluster's order.
   */
  importOne(state: MemberSeriesState): void {
    const known = this.members.get(state.memberId);
    if (known) known.series.clear();
    const member = this.memberFor(state);
    for (const metric of METRICS) {
      for (const [t, v] of state.samples[metric] ?? []) this.add(member.source, metric, t, v);
    }
    if (member.series.size === 0) this.drop(member);
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

function exported(member: MemberSeries): MemberSeriesState {
  const samples: MemberSeriesState['samples'] = {};
  for (const [metric, s] of member.series) {
    const pairs: [number, number][] = new Array(s.size);
    for (let i = 0; i < s.size; i++) pairs[i] = [s.times[s.head + i] as number, s.values[s.head + i] as number];
    samples[metric] = pairs;
  }
  return { ...member.source, samples };
}

/**
 * One member summary type's figures in a tick, a column per field rather
 * than an object per member: a cluster's figures live until its outputs are
 * made, across several turns of the event loop, and 600 000 small objects a
 * tick at 100 000 members were the largest part of what the active SP
 * promoted to its old generation (a full mark-compact every tick).
 */
export interface MemberColumns {
  first: WindowSummary;
  /** Member ids, in the cluster's member order. */
  ids: string[];
  /** `values[i]` is the figure of `ids[i]`. */
  values: number[];
  /** `instances[i]` is the cluster instance of `ids[i]`. */
  instances: string[];
}

/** One cluster's part of a tick (`SummaryJob`). */
export interface GroupSummary {
  /** The cluster's own figures, metric by metric, Average, GradientOf, SecondDerivativeOf. */
  cluster: WindowSummary[];
  /**
   * Per member summary type (MEMBER_METRICS × kinds) that any member has:
   * the figure of its first member (the type's ids), and every member's
   * figure in the cluster's member order, with each member's cluster instance.
   */
  members: MemberColumns[];
  /** The members with any figure in the tick, in the cluster's order. */
  memberIds: string[];
}

const KINDS = ['Average', 'GradientOf', 'SecondDerivativeOf'] as const satisfies readonly StatKind[];

/** See `WindowStats.summaryJob`. */
export class SummaryJob {
  private at = 0;
  private current: { group: ClusterGroup; members: MemberSeries[]; next: number; acc: GroupAccumulator } | undefined;
  private summarizing = true;
  readonly windowFrom: number;

  constructor(
    private readonly windows: WindowStats,
    private readonly groups: ClusterGroup[],
    readonly windowTo: number,
    windowMs: number,
  ) {
    this.windowFrom = windowTo - windowMs;
  }

  get done(): boolean {
    return this.current === undefined && this.at >= this.groups.length;
  }

  /**
   * From now on only the windows' upkeep (samples older than the window
   * dropped, members with none forgotten), no summary: for a tick another
   * node has already published. `run` returns no cluster after this.
   */
  pruneOnly(): void {
    this.summarizing = false;
  }

  /** Works while `more()` says so (asked every few members); returns the clusters finished meanwhile. */
  run(more: () => boolean): GroupSummary[] {
    const finished: GroupSummary[] = [];
    let sinceAsked = 0;
    while (!this.done) {
      if (!this.current) {
        const group = this.groups[this.at++] as ClusterGroup;
        const members = [...group.members.values()];
        this.current = { group, members, next: 0, acc: new GroupAccumulator(members.length) };
      }
      const c = this.current;
      while (c.next < c.members.length) {
        this.member(c.members[c.next++] as MemberSeries, c.acc);
        if (++sinceAsked >= 32) {
          sinceAsked = 0;
          if (!more()) return finished;
        }
      }
      this.current = undefined;
      if (this.summarizing) finished.push(c.acc.result(c.group, this.windowFrom, this.windowTo));
      if (!more()) return finished;
    }
    return finished;
  }

  private member(member: MemberSeries, acc: GroupAccumulator): void {
    if (member.group.members.get(member.source.memberId) !== member) return; // forgotten or moved since
    let any = false;
    // forEach, not for…of: no [metric, series] pair made per series (300 000 a tick at 100 000 members).
    member.series.forEach((series, metric) => {
      prune(series, this.windowFrom);
      if (series.size === 0) {
        member.series.delete(metric);
        return;
      }
      if (!this.summarizing) return;
      const s = summarizeWindow(this.scratch, series, this.windowTo);
      if (s.count === 0) return; // only samples after the tick: the next one
      any = true;
      acc.add(member, metric, s);
    });
    if (any) acc.memberIds.push(member.source.memberId);
    if (member.series.size === 0) this.windows.dropMember(member);
  }

  /** Each series' summary in turn, read at once by the accumulator (`summarizeInto`). */
  private readonly scratch: SeriesSummary = {
    count: 0,
    sum: 0,
    average: undefined,
    gradient: undefined,
    secondDerivative: undefined,
  };
}

/** A cluster's sums of one metric: samples, and the members' own gradients and second derivatives (their means). */
interface MetricSums {
  count: number;
  sum: number;
  gradientSum: number;
  gradients: number;
  secondSum: number;
  seconds: number;
}

/** One member summary type's columns, filled up to `size` (sized for every member of the cluster at once). */
interface TypeColumns {
  first: MemberSeries;
  size: number;
  ids: string[];
  values: number[];
  instances: string[];
}

/**
 * What one cluster's members add up to in a tick. The columns are made at the
 * cluster's size and trimmed once: grown a push at a time they were copied
 * over and over (the largest part of what the tick allocated after its envelopes).
 */
class GroupAccumulator {
  readonly memberIds: string[] = [];
  private readonly metrics = new Map<Metric, MetricSums>();
  /** Per member summary type, at MEMBER_METRICS index × 3 + KINDS index (no key built per member). */
  private readonly types: (TypeColumns | undefined)[] = [];

  constructor(private readonly capacity: number) {}

  add(member: MemberSeries, metric: Metric, s: SeriesSummary): void {
    let m = this.metrics.get(metric);
    if (!m) {
      m = { count: 0, sum: 0, gradientSum: 0, gradients: 0, secondSum: 0, seconds: 0 };
      this.metrics.set(metric, m);
    }
    m.count += s.count;
    m.sum += s.sum;
    if (s.gradient !== undefined) {
      m.gradientSum += s.gradient;
      m.gradients += 1;
    }
    if (s.secondDerivative !== undefined) {
      m.secondSum += s.secondDerivative;
      m.seconds += 1;
    }
    const at = (MEMBER_METRICS as readonly Metric[]).indexOf(metric);
    if (at < 0) return;
    this.entry(member, at * KINDS.length, s.average);
    this.entry(member, at * KINDS.length + 1, s.gradient);
    this.entry(member, at * KINDS.length + 2, s.secondDerivative);
  }

  private entry(member: MemberSeries, slot: number, value: number | undefined): void {
    // A non-finite figure (values near the float limit) cannot go on the wire.
    if (value === undefined || !Number.isFinite(value)) return;
    let type = this.types[slot];
    if (!type) {
      const n = this.capacity;
      type = { first: member, size: 0, ids: new Array(n), values: new Array(n).fill(0), instances: new Array(n) };
      this.types[slot] = type;
    }
    const at = type.size++;
    type.ids[at] = member.source.memberId;
    type.values[at] = value;
    type.instances[at] = member.source.clusterInstanceId;
  }

  result(group: ClusterGroup, windowFrom: number, windowTo: number): GroupSummary {
    const base = {
      clusterId: group.clusterId,
      clusterInstanceId: group.clusterInstanceId,
      networkPartitionId: group.networkPartitionId,
      windowFrom,
      windowTo,
    };
    const cluster: WindowSummary[] = [];
    for (const metric of METRICS) {
      const m = this.metrics.get(metric);
      if (!m) continue;
      push(
        cluster,
        { ...base, metric },
        m.count > 0 ? m.sum / m.count : undefined,
        m.gradients > 0 ? m.gradientSum / m.gradients : undefined,
        m.seconds > 0 ? m.secondSum / m.seconds : undefined,
      );
    }
    // In the order the types come in for one member: metric by metric, kind by kind.
    const members: GroupSummary['members'] = [];
    for (const [m, metric] of MEMBER_METRICS.entries()) {
      for (const [k, kind] of KINDS.entries()) {
        const type = this.types[m * KINDS.length + k];
        if (!type) continue;
        type.ids.length = type.size;
        type.values.length = type.size;
        type.instances.length = type.size;
        const first: WindowSummary = {
          ...base,
          clusterInstanceId: type.first.source.clusterInstanceId,
          memberId: type.first.source.memberId,
          metric,
          kind,
          value: type.values[0] as number,
        };
        members.push({ first, ids: type.ids, values: type.values, instances: type.instances });
      }
    }
    return { cluster, members, memberIds: this.memberIds };
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

/** Samples arrive in time order per member, so this is a push; a late one walks back a step or two. */
function insertSorted(series: Series, t: number, v: number): void {
  const { times, values, head } = series;
  const end = head + series.size;
  let i = end;
  while (i > head && (times[i - 1] as number) > t) i--;
  if (end === times.length) {
    // At the end: one more slot (amortized by the array; `dropOldest` keeps the stale slots fewer than the samples).
    times.push(t);
    values.push(v);
  }
  for (let j = end; j > i; j--) {
    times[j] = times[j - 1] as number;
    values[j] = values[j - 1] as number;
  }
  times[i] = t;
  values[i] = v;
  series.size += 1;
}

/** Moves the samples to the front of the arrays. */
function compact(series: Series): void {
  const { times, values, head, size } = series;
  for (let j = 0; j < size; j++) {
    times[j] = times[head + j] as number;
    values[j] = values[head + j] as number;
  }
  series.head = 0;
}

/** Drops the `n` oldest samples. */
function dropOldest(series: Series, n: number): void {
  series.head += n;
  series.size -= n;
  if (series.size === 0) series.head = 0;
  else if (series.head > series.size) compact(series);
}

/** Drops the samples at or before `windowFrom`: windows only move forward. */
function prune(series: Series, windowFrom: number): void {
  const end = series.head + series.size;
  let i = series.head;
  while (i < end && (series.times[i] as number) <= windowFrom) i++;
  if (i > series.head) dropOldest(series, i - series.head);
}

/** Summary of the samples with timestamp ≤ windowTo (later ones wait for the next tick). */
function summarizeWindow(out: SeriesSummary, series: Series, windowTo: number): SeriesSummary {
  let last = series.head + series.size - 1;
  while (last >= series.head && (series.times[last] as number) > windowTo) last--;
  return summarizeInto(out, series.times, series.values, series.head, last);
}
