import { FaultlineError } from '@faultline/core';
import { type Envelope, idSchema, type Metric, memberIdentityShape, validateEnvelope } from '@faultline/protocol';
import { z } from 'zod';
import type { DetectorMemberState } from './fault-detector.js';
import type { Output } from './output-ledger.js';
import type { MemberSeriesState } from './window-stats.js';

export const CEP_STATE_VERSION = 1;

/**
 * The engine's whole state as plain JSON: the snapshot the active sends a
 * passive that joins, and the SP status server's `/engine`. Times that a
 * deadline depends on are relative (`remainingMs`, `lastSeenAgoMs`), so they
 * mean the same on a node whose clocks read differently; sample timestamps
 * and ids are the agents' own, the same everywhere.
 */
export interface CepState {
  version: typeof CEP_STATE_VERSION;
  /** Wall time of the export (informational). */
  exportedAt: number;
  /** Every tracked member: life state, last stat, time left before its fault. */
  members: DetectorMemberState[];
  /** Members the topology removed, with their last stat timestamp: older stats of theirs are ignored. */
  forgotten: [string, number][];
  /** Window samples per member and metric. */
  series: MemberSeriesState[];
  /** Outputs produced while passive and not confirmed by the active (empty on an active). */
  pending: Output[];
  /** Per member fault stream, the newest fault published or confirmed: `[stream, lastStatAt]`. */
  published: [string, number][];
  /** The newest summary tick (windowTo) published or confirmed; null before any. */
  summariesPublishedThrough: number | null;
}

/** A state from a peer that is not this engine's: `FL_ERR_STATE_INVALID`, naming the first bad field. */
export class CepStateError extends FaultlineError {
  constructor(path: string, reason: string) {
    super('FL_ERR_STATE_INVALID', `invalid CEP state at ${path}: ${reason}`, { context: { path } });
  }
}

/** zod 4's number is finite: NaN and ±Infinity fail. */
const finite = z.number();
const safeInt = z.number().int();

const detectorMemberSchema = z
  .object({
    ...memberIdentityShape,
    state: z.enum(['alive', 'faulted']),
    lastStatAt: finite.nullable(),
    lastSeenAgoMs: finite,
    remainingMs: finite.nullable(),
    // Optional: an older peer's export has none (the importer then assumes a timeout declared at import).
    fault: z
      .object({ reason: z.enum(['timeout', 'ports_not_open']), silentForMs: finite, declaredAt: finite })
      .optional(),
    // Optional: absent when none was given back, and from an older peer's export.
    givenBackMs: finite.nonnegative().optional(),
  })
  .refine((m) => (m.state === 'alive') === (m.remainingMs !== null), {
    message: 'a number when alive, null when faulted',
    path: ['remainingMs'],
  });

/**
 * A `[timestamp, value]` pair. Samples are the bulk of a snapshot (a few per
 * member and metric): a predicate checks one six times faster than a zod
 * tuple, and the passive must apply a snapshot well within the ack timeout.
 */
const samplePair = z.custom<[number, number]>(
  (v) => Array.isArray(v) && v.length === 2 && Number.isFinite(v[0]) && Number.isFinite(v[1]),
  'not a [timestamp, value] pair',
);

const samples = z.array(samplePair).optional();
const { clusterId, clusterInstanceId, networkPartitionId, memberId } = memberIdentityShape;
const memberSeriesSchema = z.object({
  clusterId,
  clusterInstanceId,
  networkPartitionId,
  memberId,
  // A strict object, not a record keyed by METRICS: as strict about unknown metrics, a third of the cost.
  samples: z.strictObject({
    LoadAverage: samples,
    MemoryConsumption: samples,
    RequestsInFlight: samples,
  } satisfies Record<Metric, typeof samples>),
});

/** The envelope as it was exported (not re-parsed), once the protocol's validator accepts it. */
const envelopeSchema = z.unknown().transform((value, ctx) => {
  const checked = validateEnvelope(value);
  if (!checked.ok) {
    ctx.addIssue({ code: 'custom', message: checked.error.message });
    return z.NEVER;
  }
  return value as Envelope;
});

export const outputSchema = z.object({
  kind: z.enum(['fault', 'summary']),
  stream: z.string().min(1),
  seq: safeInt,
  envelope: envelopeSchema,
});

const cepStateSchema = z.object({
  version: z.literal(CEP_STATE_VERSION, {
    error: (issue) => `expected ${CEP_STATE_VERSION}, got ${String(issue.input)}`,
  }),
  exportedAt: finite,
  members: z.array(detectorMemberSchema),
  forgotten: z.array(z.tuple([idSchema, finite])),
  series: z.array(memberSeriesSchema),
  pending: z.array(outputSchema),
  published: z.array(z.tuple([z.string().min(1), safeInt])),
  summariesPublishedThrough: safeInt.nullable(),
});

/** `members[0].clusterId` */
function pathOf(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) out += typeof key === 'number' ? `[${key}]` : `${out ? '.' : ''}${String(key)}`;
  return out || '(state)';
}

/**
 * Checks a state from a peer before a single field of it is used, and throws
 * a CepStateError naming the first bad path: importing half a snapshot would
 * leave a standby that looks healthy and detects wrong.
 */
export function parseCepState(value: unknown): CepState {
  const parsed = cepStateSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new CepStateError(pathOf(issue?.path ?? []), issue?.message ?? 'invalid');
  }
  return parsed.data;
}
