import { z } from 'zod';
import { idSchema, memberIdentityShape } from './identity.js';

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
  members: z
    .array(z.object({ memberId: id, value: clusterStatSchema.shape.value }))
    .min(1)
    .max(MEMBERS_PER_STAT_EVENT),
});

const memberFaultSchema = z.object({
  ...memberRef,
  reason: z.enum(['timeout', 'ports_not_open']),
  /** Agent timestamp of the last stat seen from this member, null if none. */
  lastStatAt: z.number().int().nullable(),
  /** How long the member had been silent when the fault was declared. */
  silentForMs: z.number().int().min(0),
});

const instanceStatusSchema = z.object(memberRef);

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
  MemberCreatedEvent: topologyMemberSchema,
  MemberTerminatedEvent: topologyMemberSchema,
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
export type TopologyMember = z.infer<typeof topologyMemberSchema>;
export type AutoscalerAction = z.infer<typeof actionSchema>;
export type FaultStorm = z.infer<typeof faultStormSchema>;

export function isEventType(value: unknown): value is EventType {
  return typeof value === 'string' && Object.hasOwn(EVENT_SCHEMAS, value);
}
