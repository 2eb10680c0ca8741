import { z } from 'zod';

/*
 * Every event of DESIGN.md ("MQTT: topics and events") and its data schema.
 * Names follow Stratos 4.1 (AverageLoadAverageEvent, GradientOfLoadAverageEvent,
 * SecondDerivativeOfLoadAverageEvent, MemberAverage…), so a Stratos operator
 * recognises them on the wire.
 */
const id = z.string().min(1).max(256);

export const METRICS = ['LoadAverage', 'MemoryConsumption', 'RequestsInFlight'] as const;
/** Per-member summaries exist for memory and load only (as in Stratos). */
export const MEMBER_METRICS = ['LoadAverage', 'MemoryConsumption'] as const;
export const STAT_KINDS = ['Average', 'GradientOf', 'SecondDerivativeOf'] as const;
export type Metric = (typeof METRICS)[number];
export type MemberMetric = (typeof MEMBER_METRICS)[number];
export type StatKind = (typeof STAT_KINDS)[number];
export type ClusterStatEventType = `${StatKind}${Metric}Event`;
export type MemberStatEventType = `Member${StatKind}${MemberMetric}Event`;

const memberRef = {
  clusterId: id,
  clusterInstanceId: id,
  networkPartitionId: id,
  partitionId: id,
  memberId: id,
};

const clusterStatSchema = z.object({
  clusterId: id,
  clusterInstanceId: id,
  networkPartitionId: id,
  value: z.number().refine(Number.isFinite, 'must be finite'),
  /** Window the value summarizes, epoch ms [from, to]. */
  windowFrom: z.number().int(),
  windowTo: z.number().int(),
});

/** Members listed in one member-summary event; a larger cluster's tick takes several parts. */
export const MEMBERS_PER_STAT_EVENT = 1_000;

/**
 * A per-member summary (MemberAverageLoadAverageEvent, …) carries one figure
 * for every member of a (cluster, network partition) in one tick, rather than
 * one event per member: 10 000 members make 60 events a tick, not 60 000.
 * Members are listed in a fixed order, `MEMBERS_PER_STAT_EVENT` per part.
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

const clusterStatTypes = STAT_KINDS.flatMap((k) => METRICS.map((m) => `${k}${m}Event` as ClusterStatEventType));
const memberStatTypes = STAT_KINDS.flatMap((k) =>
  MEMBER_METRICS.map((m) => `Member${k}${m}Event` as MemberStatEventType),
);

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
