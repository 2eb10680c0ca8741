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

/** Metrics a member's samples array has a region for: METRICS, in order. */
const METRIC_COUNT = METRICS.length;
/** A member's samples array begins with each metric's head and size (slots 2k and 2k + 1 for metric k). */
const HEADER = 2 * METRIC_COUNT;
/** Samples a metric's region has room for in a new member: a 60 s window at a stat per 15 s holds 4 or 5. */
const FIRST_CAPACITY = 8;

const metricIndex = (metric: Metric): number => (METRICS as readonly Metric[]).indexOf(metric);

/**
 * A member's samples, every metric's in one array of numbers: one object and
 * its backing store per member. A Map of metrics, and per metric an object
 * and two arrays with their backing stores, were 15 objects a member, half of
 * the 3 million that every full collection of the active SP marked at
 * 100 000 members (its event loop's longest delays).
 *
 * Slots 2k and 2k + 1 are metric k's `head` and `size`. Metric k's region
 * begins at HEADER + 2k × capacity: its times in `capacity` slots, then its
 * values in as many; its samples, oldest first, are slots head … head +
 * size − 1 of both. Dropping the oldest moves `head`; adding one at the end
 * of a region moves the samples to its front when they fill at most three
 * quarters of it, and otherwise doubles every region, all metrics' at once
 * (so a sample costs O(1), amortized). Every region holds at most about 2.7
 * times the most samples any metric of the member has held
 * (maxSamplesPerSeries + 1): one flooding metric grows the other two with
 * it, and the array does not shrink after a burst.
 */
interface MemberSeries {
  source: SampleSource;
  group: ClusterGroup;
  samples: number[];
  /** Slots of a metric's times (and of its values) in `samples`. */
  capacity: number;
}

interface ClusterGroup {
  key: string;
  clusterId: string;
  networkPartitionId: string;
  /** The cluster instance last reported in this (cluster, network partition). */
  clusterInstanceId: string;
  members: Map<string, MemberSeries>;
  /**
   * The columns of its last tick, per member summary type, reused by the next
   * (`GroupAccumulator`): made anew every tick they lived across the turns its
   * outputs took, were copied by two scavenges and promoted, some 14 MB of the
   * old generation a tick at 100 000 members.
   */
  columns: (TypeColumns | undefined)[];
  /** The member ids of its last tick (`GroupSummary.memberIds`), reused likewise. */
  memberIds: string[];
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
    const k = metricIndex(metric);
    if (k < 0) return;
    const member = this.memberFor(source);
    insertSorted(member, k, timestamp, value);
    if (sizeOf(member, k) > this.options.maxSamplesPerSeries) dropOldest(member, k, 1);
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
      const rows = new Map<string, WindowSummary[]>();
      for (let i = 0; i < group.memberCount; i++) rows.set(group.memberIds[i] as string, []);
      for (const t of group.members) {
        for (let i = 0; i < t.size; i++) {
          const memberId = t.ids[i] as string;
          rows.get(memberId)?.push({
            ...t.first,
            clusterInstanceId: t.instances[i] as string,
            memberId,
            value: t.values[i] as number,
          });
        }
      }
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
   * this tick. A cluster's `GroupSummary` reads columns the cluster reuses:
   * it holds this tick's figures until a later job reaches the cluster, so a
   * job's summaries are used up (or dropped) before the next job starts (the
   * engine runs one tick at a time).
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
    if (known) clearSamples(known);
    const member = this.memberFor(state);
    for (const metric of METRICS) {
      for (const [t, v] of state.samples[metric] ?? []) this.add(member.source, metric, t, v);
    }
    if (!hasSamples(member)) this.drop(member);
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
        columns: [],
        memberIds: [],
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
        samples: newSamples(FIRST_CAPACITY),
        capacity: FIRST_CAPACITY,
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
  const { samples: a, capacity } = member;
  for (let k = 0; k < METRIC_COUNT; k++) {
    const size = sizeOf(member, k);
    if (size === 0) continue;
    const start = regionOf(member, k) + headOf(member, k);
    const pairs: [number, number][] = new Array(size);
    for (let i = 0; i < size; i++) pairs[i] = [a[start + i] as number, a[start + capacity + i] as number];
    samples[METRICS[k] as Metric] = pairs;
  }
  // Written out, not spread: a snapshot of 100 000 members makes this once per member, and the spread cost
  // several times what the literal does.
  const { source } = member;
  return {
    clusterId: source.clusterId,
    clusterInstanceId: source.clusterInstanceId,
    networkPartitionId: source.networkPartitionId,
    memberId: source.memberId,
    samples,
  };
}

/**
 * One member summary type's figures in a tick, a column per field rather
 * than an object per member: a cluster's figures live until its outputs are
 * made, across several turns of the event loop, and 600 000 small objects a
 * tick at 100 000 members were the largest part of what the active SP
 * promoted to its old generation (a full mark-compact every tick).
 * The columns are the cluster's own, reused by its next tick: they hold this
 * tick's figures until the windows' next summary job reaches the cluster.
 */
export interface MemberColumns {
  first: WindowSummary;
  /** How many members have a figure: entries 0 … size - 1 of the columns (the columns may be longer). */
  size: number;
  /** Member ids, in the cluster's member order. */
  ids: readonly string[];
  /** `values[i]` is the figure of `ids[i]`. */
  values: readonly number[];
  /** `instances[i]` is the cluster instance of `ids[i]`. */
  instances: readonly string[];
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
  /** The members with any figure in the tick, in the cluster's order: entries 0 … memberCount - 1. */
  memberIds: readonly string[];
  memberCount: number;
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
        this.current = { group, members, next: 0, acc: new GroupAccumulator(group, members.length) };
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
    let left = 0;
    for (let k = 0; k < METRIC_COUNT; k++) {
      if (sizeOf(member, k) === 0) continue;
      prune(member, k, this.windowFrom);
      if (sizeOf(member, k) === 0) continue;
      left += 1;
      if (!this.summarizing) continue;
      const s = summarizeWindow(this.scratch, member, k, this.windowTo);
      if (s.count === 0) continue; // only samples after the tick: the next one
      any = true;
      acc.add(member, METRICS[k] as Metric, s);
    }
    if (any) acc.member(member.source.memberId);
    if (left === 0) this.windows.dropMember(member);
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
  /** The tick's first member with this type; undefined between ticks that have none. */
  first: MemberSeries | undefined;
  size: number;
  /**
   * Entries 0 … filled - 1 may hold strings: past `size`, of an earlier tick,
   * or of one left unfinished (a passive's overtaken tick), cleared when a tick ends.
   */
  filled: number;
  ids: string[];
  values: number[];
  instances: string[];
}

/**
 * What one cluster's members add up to in a tick. The columns are the
 * cluster's, made at its size and reused tick after tick (grown only when the
 * cluster outgrows them): grown a push at a time they were copied over and
 * over, and made anew each tick they were promoted to the old generation.
 */
class GroupAccumulator {
  private memberCount = 0;
  private readonly metrics = new Map<Metric, MetricSums>();
  /** Per member summary type, at MEMBER_METRICS index × 3 + KINDS index (no key built per member): this tick's. */
  private readonly types: (TypeColumns | undefined)[] = [];

  constructor(
    private readonly group: ClusterGroup,
    private readonly capacity: number,
  ) {}

  member(memberId: string): void {
    this.group.memberIds[this.memberCount++] = memberId;
  }

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
      type = this.columns(slot);
      type.first = member;
      type.size = 0;
      this.types[slot] = type;
    }
    const at = type.size++;
    if (at >= type.filled) type.filled = at + 1; // cleared past the tick's size by the tick that ends, or by a later one
    type.ids[at] = member.source.memberId;
    type.values[at] = value;
    type.instances[at] = member.source.clusterInstanceId;
  }

  /** The cluster's columns of `slot`, made (or made larger) when they cannot hold every member of this tick. */
  private columns(slot: number): TypeColumns {
    const kept = this.group.columns[slot];
    if (kept && kept.ids.length >= this.capacity) return kept;
    // Room for a quarter more: a cluster that grows a little each tick is not copied each tick.
    const n = this.capacity + (this.capacity >> 2);
    const made: TypeColumns = {
      first: undefined,
      size: 0,
      filled: 0,
      ids: new Array(n).fill(''),
      values: new Array(n).fill(0.5),
      instances: new Array(n).fill(''),
    };
    this.group.columns[slot] = made;
    return made;
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
    // Strings of members no longer in the cluster's figures are let go (the slots past this tick's, up to the last's).
    for (const [slot, kept] of group.columns.entries()) {
      if (!kept) continue;
      const size = this.types[slot] === kept ? kept.size : 0;
      for (let i = size; i < kept.filled; i++) {
        kept.ids[i] = '';
        kept.instances[i] = '';
      }
      kept.filled = size;
      if (size === 0) kept.first = undefined; // no member of an earlier tick kept alive by it
    }
    for (let i = this.memberCount; i < group.memberIds.length; i++) group.memberIds[i] = '';
    // In the order the types come in for one member: metric by metric, kind by kind.
    const members: GroupSummary['members'] = [];
    for (const [m, metric] of MEMBER_METRICS.entries()) {
      for (const [k, kind] of KINDS.entries()) {
        const type = this.types[m * KINDS.length + k];
        if (!type) continue;
        const firstMember = type.first as MemberSeries; // set by the tick's first entry of the type
        const first: WindowSummary = {
          ...base,
          clusterInstanceId: firstMember.source.clusterInstanceId,
          memberId: firstMember.source.memberId,
          metric,
          kind,
          value: type.values[0] as number,
        };
        members.push({ first, size: type.size, ids: type.ids, values: type.values, instances: type.instances });
      }
    }
    return { cluster, members, memberIds: group.memberIds, memberCount: this.memberCount };
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

/** An array for every metric's samples at `capacity` a metric, none held. */
function newSamples(capacity: number): number[] {
  // Filled with a fraction first: an array of doubles from the start (timestamps are no small
  // integers), so the first sample does not convert it.
  const a = new Array<number>(HEADER + 2 * METRIC_COUNT * capacity).fill(0.5);
  for (let i = 0; i < HEADER; i++) a[i] = 0;
  return a;
}

const headOf = (member: MemberSeries, k: number): number => member.samples[2 * k] as number;
const sizeOf = (member: MemberSeries, k: number): number => member.samples[2 * k + 1] as number;
/** Where metric k's times begin (its values begin `capacity` slots further). */
const regionOf = (member: MemberSeries, k: number): number => HEADER + 2 * k * member.capacity;

function hasSamples(member: MemberSeries): boolean {
  for (let k = 0; k < METRIC_COUNT; k++) if (sizeOf(member, k) > 0) return true;
  return false;
}

function clearSamples(member: MemberSeries): void {
  for (let i = 0; i < HEADER; i++) member.samples[i] = 0;
}

/** Samples arrive in time order per member, so this is a push; a late one walks back a step or two. */
function insertSorted(member: MemberSeries, k: number, t: number, v: number): void {
  if (headOf(member, k) + sizeOf(member, k) === member.capacity) makeRoom(member, k);
  const { samples: a, capacity } = member;
  const size = sizeOf(member, k);
  const start = regionOf(member, k) + headOf(member, k);
  const end = start + size;
  let i = end;
  while (i > start && (a[i - 1] as number) > t) i--;
  for (let j = end; j > i; j--) {
    a[j] = a[j - 1] as number;
    a[j + capacity] = a[j - 1 + capacity] as number;
  }
  a[i] = t;
  a[i + capacity] = v;
  a[2 * k + 1] = size + 1;
}

/**
 * A free slot at the end of metric k's region: its samples moved to the front
 * when they fill at most three quarters of it (a quarter of it free after: a
 * move per that many samples at most), else every region doubled.
 */
function makeRoom(member: MemberSeries, k: number): void {
  if (headOf(member, k) > 0 && sizeOf(member, k) <= (member.capacity * 3) / 4) moveToFront(member, k);
  else grow(member);
}

function moveToFront(member: MemberSeries, k: number): void {
  const { samples: a, capacity } = member;
  const region = regionOf(member, k);
  const head = headOf(member, k);
  const size = sizeOf(member, k);
  for (let j = 0; j < size; j++) {
    a[region + j] = a[region + head + j] as number;
    a[region + capacity + j] = a[region + capacity + head + j] as number;
  }
  a[2 * k] = 0;
}

/** Every region twice as large, each metric's samples at its front. */
function grow(member: MemberSeries): void {
  const old = member.samples;
  const from = member.capacity;
  const to = 2 * from;
  const a = newSamples(to);
  for (let k = 0; k < METRIC_COUNT; k++) {
    const size = old[2 * k + 1] as number;
    const source = HEADER + 2 * k * from + (old[2 * k] as number);
    const target = HEADER + 2 * k * to;
    for (let j = 0; j < size; j++) {
      a[target + j] = old[source + j] as number;
      a[target + to + j] = old[source + from + j] as number;
    }
    a[2 * k + 1] = size;
  }
  member.samples = a;
  member.capacity = to;
}

/** Drops metric k's `n` oldest samples. */
function dropOldest(member: MemberSeries, k: number, n: number): void {
  const a = member.samples;
  const size = (a[2 * k + 1] as number) - n;
  a[2 * k + 1] = size;
  a[2 * k] = size === 0 ? 0 : (a[2 * k] as number) + n;
}

/** Drops metric k's samples at or before `windowFrom`: windows only move forward. */
function prune(member: MemberSeries, k: number, windowFrom: number): void {
  const a = member.samples;
  const start = regionOf(member, k) + headOf(member, k);
  const size = sizeOf(member, k);
  let i = 0;
  while (i < size && (a[start + i] as number) <= windowFrom) i++;
  if (i > 0) dropOldest(member, k, i);
}

/** Summary of metric k's samples with timestamp ≤ windowTo (later ones wait for the next tick). */
function summarizeWindow(out: SeriesSummary, member: MemberSeries, k: number, windowTo: number): SeriesSummary {
  const a = member.samples;
  const start = regionOf(member, k) + headOf(member, k);
  let last = start + sizeOf(member, k) - 1;
  while (last >= start && (a[last] as number) > windowTo) last--;
  return summarizeInto(out, a, a, start, last, member.capacity);
}
