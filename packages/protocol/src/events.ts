import { z } from 'zod';
import { ID_PATTERN_DESCRIPTION, idSchema, isId as isIdValue, memberIdentityShape } from './identity.js';

/*
 * Every event of the README ("MQTT topics and the event envelope") and its data schema.
 * Names follow Stratos 4.1 (AverageLoadAverageEvent, GradientOfLoadAverageEvent,
 * SecondDerivativeOfLoadAverageEvent, MemberAverage…), so a Stratos operator
 * recognises them on the wire.
 */
const id = idSchema;

export const METRICS = ['LoadAverage', 'MemoryConsumption', 'RequestsInFlight'] as const;
/** Per-member summaries exist for memory and load only (as in Stratos). */
export const MEMBER_METRICS = ['LoadAverage', 'MemoryConsumption'] as const;
export const STAT_KINDS = ['Average', 'GradientOf', 'SecondDerivativeOf'] as const;
export type Metric = (typeof METRICS)[number];
export type MemberMetric = (typeof MEMBER_METRICS)[number];
export type StatKind = (typeof STAT_KINDS)[number];
export type ClusterStatEventType = `${StatKind}${Metric}Event`;
export type MemberStatEventType = `Member${StatKind}${MemberMetric}Event`;
export type StatEventType = ClusterStatEventType | MemberStatEventType;

/** What a summarized-stat event type names: whose figure (cluster or member), which kind, which metric. */
export interface StatEventName {
  scope: 'cluster' | 'member';
  kind: StatKind;
  metric: Metric;
}

/** `{ scope: 'member', kind: 'GradientOf', metric: 'LoadAverage' }` → `MemberGradientOfLoadAverageEvent`. */
export function statEventType(name: StatEventName): StatEventType {
  const type = `${name.kind}${name.metric}Event` as ClusterStatEventType;
  return name.scope === 'member' ? (`Member${type}` as MemberStatEventType) : type;
}

const STAT_EVENT_NAMES: ReadonlyMap<string, StatEventName> = new Map(
  STAT_KINDS.flatMap((kind) => [
    ...METRICS.map((metric): StatEventName => ({ scope: 'cluster', kind, metric })),
    ...MEMBER_METRICS.map((metric): StatEventName => ({ scope: 'member', kind, metric })),
  ]).map((name) => [statEventType(name), name]),
);

/** The inverse of statEventType; undefined for any other type. */
export function parseStatEventType(type: string): StatEventName | undefined {
  return STAT_EVENT_NAMES.get(type);
}

const memberRef = memberIdentityShape;

const clusterStatSchema = z.object({
  clusterId: id,
  clusterInstanceId: id,
  networkPartitionId: id,
  value: z.number().refine(Number.isFinite, 'must be finite'),
  /** Window the value summarizes, epoch ms [from, to]. */
  windowFrom: z.number().int(),
  windowTo: z.number().int(),
});

/**
 * Members listed in one member-summary event at most; a larger cluster's tick
 * takes several parts. The SP also cuts a part short of the envelope size
 * limit, which long ids reach first (1 000 ids of 40 characters are ~80 KB).
 */
export const MEMBERS_PER_STAT_EVENT = 1_000;

/**
 * A per-member summary (MemberAverageLoadAverageEvent, …) carries one figure
 * for every member of a (cluster, network partition) in one tick, rather than
 * one event per member: 10 000 members make 60 events a tick, not 60 000.
 * Members are listed in a fixed order, in parts of at most
 * `MEMBERS_PER_STAT_EVENT` members, each part's envelope within the size limit.
 */
const memberStatsSchema = clusterStatSchema.omit({ value: true }).extend({
  /** 0, 1, …: which slice of the cluster's members this event lists. */
  part: z.number().int().min(0),
  members: z.unknown().transform((value, ctx) => {
    const entries = memberEntriesOf(value);
    if (typeof entries === 'string') {
      ctx.addIssue({ code: 'custom', message: entries });
      return z.NEVER;
    }
    return entries;
  }),
});

/**
 * The members of a member summary, checked by a loop rather than a zod
 * object per entry: every subscriber and the SP's own publisher check each
 * part, and at 100 000 members a tick has some 600 parts of 1 000 entries
 * (zod took ~2 ms a part). Extra keys are dropped, as z.object drops them
 * (the entries are copied only then).
 * Returns the entries, or what is wrong with them.
 */
function memberEntriesOf(value: unknown): { memberId: string; value: number }[] | string {
  if (!Array.isArray(value)) return 'members: expected a list';
  if (value.length < 1 || value.length > MEMBERS_PER_STAT_EVENT)
    return `members: expected 1 to ${MEMBERS_PER_STAT_EVENT} entries, got ${value.length}`;
  let extraKeys = false;
  for (let i = 0; i < value.length; i++) {
    const entry = value[i] as { memberId?: unknown; value?: unknown } | null;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) return `members.${i}: expected an object`;
    if (!isIdValue(entry.memberId)) return `members.${i}.memberId: ${ID_PATTERN_DESCRIPTION}`;
    if (typeof entry.value !== 'number' || !Number.isFinite(entry.value)) return `members.${i}.value: must be finite`;
    if (!extraKeys && !onlyOwn(entry)) extraKeys = true;
  }
  // The list as it is when it holds nothing else: the SP's publisher checks every part it sends (a
  // tick's 600 parts at 100 000 members), and a copy of each was old-generation garbage once a tick.
  if (!extraKeys && Object.getPrototypeOf(value) === Array.prototype)
    return value as { memberId: string; value: number }[];
  const out: { memberId: string; value: number }[] = new Array(value.length);
  for (let i = 0; i < value.length; i++) {
    const entry = value[i] as { memberId: string; value: number };
    out[i] = { memberId: entry.memberId, value: entry.value };
  }
  return out;
}

/** Whether `memberId` and `value` are the entry's own keys and it has no other (counted without a list made). */
function onlyOwn(entry: object): boolean {
  if (!Object.hasOwn(entry, 'memberId') || !Object.hasOwn(entry, 'value')) return false;
  let n = 0;
  for (const key in entry) if (Object.hasOwn(entry, key)) n += 1;
  return n === 2;
}

const memberFaultSchema = z.object({
  ...memberRef,
  reason: z.enum(['timeout', 'ports_not_open']),
  /** Agent timestamp of the last stat seen from this member, null if none. */
  lastStatAt: z.number().int().nullable(),
  /** How long the member had been silent when the fault was declared. */
  silentForMs: z.number().int().min(0),
});

const instanceStatusSchema = z.object(memberRef);

/**
 * A member taken out of service by its agent's readiness probe
 * (InstanceOutOfServiceEvent: it failed failureThreshold times in a row), or
 * back in service (InstanceInServiceEvent: it passed successThreshold times
 * after that); README "Probes". The member is not faulted for it. Events may
 * come late, twice or out of order (two brokers, a republished outbox): each
 * carries `life`, its agent's start (epoch ms, one per agent life), and
 * `seq`, 1, 2, … within that life, and a subscriber keeps, per member, the
 * one with the greatest (life, seq) and drops any older.
 */
const instanceServiceSchema = z.object({
  ...memberRef,
  life: z.number().int().min(0),
  seq: z.number().int().min(1),
  /** Why the readiness probe failed (out of service only). */
  reason: z.string().max(1_024).optional(),
});

const topologyMemberSchema = z.object({
  clusterId: id,
  networkPartitionId: id,
  partitionId: id,
  memberId: id,
  reason: z.string().max(1024).optional(),
});

const actionSchema = z.object({
  clusterId: id,
  memberId: id.optional(),
  reason: z.string().min(1).max(1024),
  /** The SP leader epoch of the event that caused the action, when one did. */
  causeEpoch: z.number().int().optional(),
});

const faultStormSchema = z.object({
  clusterId: id,
  faultedMemberIds: z.array(id),
  clusterSize: z.number().int().min(0),
  windowMs: z.number().int().positive(),
});

function statSchemas<T extends string, S>(names: readonly T[], schema: S): Record<T, S> {
  return Object.fromEntries(names.map((name) => [name, schema])) as Record<T, S>;
}

const clusterStatTypes = [...STAT_EVENT_NAMES]
  .filter(([, name]) => name.scope === 'cluster')
  .map(([type]) => type as ClusterStatEventType);
const memberStatTypes = [...STAT_EVENT_NAMES]
  .filter(([, name]) => name.scope === 'member')
  .map(([type]) => type as MemberStatEventType);

export const EVENT_SCHEMAS = {
  MemberFaultEvent: memberFaultSchema,
  ...statSchemas(clusterStatTypes, clusterStatSchema),
  ...statSchemas(memberStatTypes, memberStatsSchema),
  InstanceStartedEvent: instanceStatusSchema,
  InstanceActivatedEvent: instanceStatusSchema,
  InstanceOutOfServiceEvent: instanceServiceSchema,
  InstanceInServiceEvent: instanceServiceSchema,
  MemberCreatedEvent: topologyMemberSchema,
  MemberTerminatedEvent: topologyMemberSchema,
  /** Stratos' MemberReadyToShutdownEvent: the member is draining (readiness false), terminated once idle. */
  MemberReadyToShutdownEvent: topologyMemberSchema,
  MemberTerminateAction: actionSchema,
  MemberSpawnAction: actionSchema,
  ScaleUpAction: actionSchema,
  ScaleDownAction: actionSchema,
  FaultStormHeld: faultStormSchema,
};

export type EventType = keyof typeof EVENT_SCHEMAS;
export type EventDataMap = { [K in EventType]: z.infer<(typeof EVENT_SCHEMAS)[K]> };
export const EVENT_TYPES = Object.keys(EVENT_SCHEMAS) as EventType[];

export type MemberFault = EventDataMap['MemberFaultEvent'];
export type ClusterStat = z.infer<typeof clusterStatSchema>;
export type MemberStats = z.infer<typeof memberStatsSchema>;
export type InstanceStatus = z.infer<typeof instanceStatusSchema>;
export type InstanceService = z.infer<typeof instanceServiceSchema>;

/**
 * Whether readiness event `next` says something newer than `last` (the one a
 * subscriber kept for the member, if any): a later agent life, or a later
 * `seq` in the same one. A repeat or an older event is not.
 */
export function isNewerServiceEvent(
  next: Pick<InstanceService, 'life' | 'seq'>,
  last?: Pick<InstanceService, 'life' | 'seq'>,
): boolean {
  if (last === undefined) return true;
  return next.life > last.life || (next.life === last.life && next.seq > last.seq);
}
export type TopologyMember = z.infer<typeof topologyMemberSchema>;
export type AutoscalerAction = z.infer<typeof actionSchema>;
export type FaultStorm = z.infer<typeof faultStormSchema>;

export function isEventType(value: unknown): value is EventType {
  return typeof value === 'string' && Object.hasOwn(EVENT_SCHEMAS, value);
}
