import { err, FaultlineError, ok, type Result } from '@faultline/core';
import { z } from 'zod';
import { agentIdSchema, idSchema, isAgentId, isId, type MemberIdentity } from './identity.js';
import {
  type BatchAckWire,
  generated,
  type HealthStatBatchWire,
  type Int64Like,
  MAX_CONTAINER_ELEMENTS,
  thrift,
} from './thrift.js';
import { readBatchStruct, readPublishCall, readPublishColumns, type WireBatch } from './wire-codec.js';

/**
 * The four health descriptions of the Stratos cartridge agent. Append only: the
 * SP pair's sync link sends a description as its place in this list
 * (checked-batch.ts).
 */
export const HEALTH_DESCRIPTIONS = [
  'load_average',
  'memory_consumption',
  'requests_in_flight',
  'ports_not_open',
] as const;
export type HealthDescription = (typeof HEALTH_DESCRIPTIONS)[number];

/** Limits a batch must respect; an SP refuses anything larger as InvalidBatch. Ids follow ID_PATTERN. */
export const BATCH_LIMITS = { maxStats: MAX_CONTAINER_ELEMENTS } as const;

/**
 * The values an SP accepts per health description (README "Agents → SP
 * (Thrift)"): memory is a percentage, ports_not_open a flag, load (1-minute
 * load ÷ cores × 100) and requests in flight finite, not negative and below a
 * ceiling no real member reaches. Anything else is refused as
 * `value_out_of_range`: these figures drive scaling.
 */
export const HEALTH_VALUE_BOUNDS: Readonly<Record<HealthDescription, { min: number; max: number }>> = {
  load_average: { min: 0, max: 100_000 },
  memory_consumption: { min: 0, max: 100 },
  requests_in_flight: { min: 0, max: 1_000_000 },
  ports_not_open: { min: 0, max: 1 },
};

const { load_average: LOAD, memory_consumption: MEMORY, requests_in_flight: REQUESTS } = HEALTH_VALUE_BOUNDS;

/**
 * Whether `value` is within HEALTH_VALUE_BOUNDS for `description` (ports_not_open: exactly 0 or 1); false
 * for anything else. Plain comparisons, no lookup by the description: the SP checks every stat of every
 * batch, and a validated stat's description is one of these very strings (scanBatch), so each case
 * compares references.
 */
export function valueInRange(description: HealthDescription, value: number): boolean {
  switch (description) {
    case 'load_average':
      return value >= LOAD.min && value <= LOAD.max;
    case 'memory_consumption':
      return value >= MEMORY.min && value <= MEMORY.max;
    case 'requests_in_flight':
      return value >= REQUESTS.min && value <= REQUESTS.max;
    case 'ports_not_open':
      return value === 0 || value === 1;
    default:
      return false;
  }
}

/**
 * Why an SP refused a batch: the first word of its InvalidBatch message
 * (`<reason>: <detail>`) and the key of its per-reason counter. The agent
 * acts on `sequence_out_of_window` (it starts a new agent id); every other
 * reason drops that batch.
 */
export const BATCH_REFUSALS = [
  'invalid',
  'credential_missing',
  'credential_invalid',
  'member_mismatch',
  'agent_mismatch',
  'timestamp_out_of_window',
  'value_out_of_range',
  'sequence_out_of_window',
] as const;
export type BatchRefusal = (typeof BATCH_REFUSALS)[number];

/** Longest InvalidBatch message (and logged reason) an SP sends. */
export const MAX_REFUSAL_MESSAGE_LENGTH = 1_024;

/** The InvalidBatch message of a refusal: `<reason>: <detail>`, at most MAX_REFUSAL_MESSAGE_LENGTH characters. */
export function refusalMessage(reason: BatchRefusal, detail: string): string {
  const message = `${reason}: ${detail}`;
  return message.length > MAX_REFUSAL_MESSAGE_LENGTH ? `${message.slice(0, MAX_REFUSAL_MESSAGE_LENGTH - 1)}…` : message;
}

const REFUSALS: ReadonlySet<string> = new Set(BATCH_REFUSALS);

/** The reason of an InvalidBatch message; `invalid` for one that names none (an older SP). */
export function refusalOf(message: string): BatchRefusal {
  const colon = message.indexOf(':');
  const word = colon > 0 ? message.slice(0, colon) : '';
  return REFUSALS.has(word) ? (word as BatchRefusal) : 'invalid';
}

function isInt64(value: unknown): value is Int64Like {
  return typeof value === 'object' && value !== null && typeof (value as Int64Like).toNumber === 'function';
}

/** i64 from the wire → a safe integer, or NaN so validation rejects it. */
const int64 = z.preprocess(
  (value) => (isInt64(value) ? value.toNumber(false) : value),
  z.number().int().refine(Number.isSafeInteger, 'outside the safe integer range'),
);
const idString = idSchema;

const healthStatSchema = z.object({
  clusterId: idString,
  clusterInstanceId: idString,
  networkPartitionId: idString,
  partitionId: idString,
  memberId: idString,
  healthDescription: z.enum(HEALTH_DESCRIPTIONS),
  value: z.number().refine(Number.isFinite, 'must be a finite number'),
  timestamp: int64.pipe(z.number().min(0)),
});

/** Absent on the wire is null in the generated struct: both read as "no credential". */
const credentialField = z.string().nullish();

const batchShape = {
  agentId: agentIdSchema,
  sequence: int64.pipe(z.number().min(1)),
  /** The member's credential (member-credential.ts); the SP verifies it, validation only reads it. */
  credential: credentialField,
};

/** The rules of a batch; `validateBatch` is the way to apply them. */
export const healthStatBatchSchema = z.object({
  ...batchShape,
  stats: z.array(healthStatSchema).max(BATCH_LIMITS.maxStats),
});

/** A batch's own fields, its stats left unread: the first step of explaining a refusal. */
const batchHeaderSchema = z.object({ ...batchShape, stats: z.array(z.unknown()).max(BATCH_LIMITS.maxStats) });

export type HealthStat = z.infer<typeof healthStatSchema>;
/** A batch as validated: the credential is left out when the agent sent none. */
export interface HealthStatBatch {
  agentId: string;
  sequence: number;
  stats: HealthStat[];
  /** The member's credential (member-credential.ts), sent with every batch. */
  credential?: string;
}

/**
 * A validated batch whose stats all carry the same ids, as columns: what
 * every agent sends (a batch is one member's), read without an object per
 * stat. It holds to every rule a `HealthStatBatch` does; `statsOf` makes the
 * stats of either form. Stat `i` is `ids`, `HEALTH_DESCRIPTIONS[descriptions[i]]`,
 * `values[i]` and `timestamps[i]`; there is at least one.
 */
export interface StatColumns {
  agentId: string;
  sequence: number;
  credential?: string;
  /** The ids every stat carries: which member of which cluster. */
  ids: Readonly<MemberIdentity>;
  descriptions: Uint8Array;
  values: Float64Array;
  timestamps: Float64Array;
}

/** A batch in either validated form. */
export type AnyBatch = HealthStatBatch | StatColumns;

export function isStatColumns(batch: AnyBatch): batch is StatColumns {
  return (batch as Partial<HealthStatBatch>).stats === undefined;
}

/** How many stats a batch holds. */
export function statCount(batch: AnyBatch): number {
  return isStatColumns(batch) ? batch.values.length : batch.stats.length;
}

/** A batch's stats as objects (a batch in columns makes them; tests and rare paths, not the hot one). */
export function statsOf(batch: AnyBatch): HealthStat[] {
  if (!isStatColumns(batch)) return batch.stats;
  const { ids, descriptions, values, timestamps } = batch;
  return Array.from(values, (value, i) => ({
    clusterId: ids.clusterId,
    clusterInstanceId: ids.clusterInstanceId,
    networkPartitionId: ids.networkPartitionId,
    partitionId: ids.partitionId,
    memberId: ids.memberId,
    healthDescription: HEALTH_DESCRIPTIONS[descriptions[i] as number] as HealthDescription,
    value,
    timestamp: timestamps[i] as number,
  }));
}

/** The same batch as objects: `statsOf` with the batch's own fields. */
export function batchOf(batch: AnyBatch): HealthStatBatch {
  if (!isStatColumns(batch)) return batch;
  const out: HealthStatBatch = { agentId: batch.agentId, sequence: batch.sequence, stats: statsOf(batch) };
  if (batch.credential !== undefined) out.credential = batch.credential;
  return out;
}

export interface BatchAck {
  agentId: string;
  sequence: number;
  duplicate: boolean;
  epoch: number;
  replicated: boolean;
}

export class BatchDecodeError extends FaultlineError {
  constructor(message: string, context: Record<string, unknown> = {}, cause?: unknown) {
    super('FL_ERR_BATCH_INVALID', message, { context, cause });
  }
}

/** Issues named in a refusal: a hostile frame must not cost a report of every field of every stat. */
const MAX_ISSUES = 3;

function describe(issues: z.ZodError['issues'], prefix: (string | number)[] = []): string {
  const named = issues
    .slice(0, MAX_ISSUES)
    .map((issue) => `${[...prefix, ...issue.path].join('.') || '(batch)'}: ${issue.message.slice(0, 200)}`);
  if (issues.length > MAX_ISSUES) named.push(`${issues.length - MAX_ISSUES} more`);
  return named.join('; ');
}

/** Each description to its one constant string: a validated stat holds that, not the copy off the wire. */
const DESCRIPTIONS: ReadonlyMap<string, HealthDescription> = new Map(HEALTH_DESCRIPTIONS.map((d) => [d, d]));

/**
 * `value` when it is an id, else undefined. `previous` is the same field of
 * the stat before (an id already): a batch is one member's, so its ids repeat,
 * and one that equals the previous costs a string comparison instead of
 * ID_PATTERN (5 ids a stat were ~7 % of an SP node's CPU at full ingest) and becomes that
 * same string, which later comparisons (the SP's admission) make by reference.
 */
function idOf(value: unknown, previous: string | undefined): string | undefined {
  if (previous !== undefined && value === previous) return previous;
  return isId(value) ? value : undefined;
}

function safeInt(v: unknown): number | undefined {
  const n = isInt64(v) ? v.toNumber(false) : v;
  return typeof n === 'number' && Number.isSafeInteger(n) ? n : undefined;
}

/** Where the hand-written checks stopped: the batch's own fields, or the stat at this index. */
type ScanFailure = { at: 'batch' } | { at: 'stat'; index: number };

/**
 * The hot path of validation: the same rules as the zod schema, checked by
 * hand, because zod costs ~2.7 µs a stat (a third of the SP's per-stat
 * budget at 100k stats/s) and every batch is validated on both SP nodes.
 * It stops at the first bad stat; zod then explains only that one, so a
 * hostile batch costs one pass and a few issues, never a report per field.
 * A test keeps the two in agreement.
 */
function scanBatch(wire: unknown): HealthStatBatch | ScanFailure {
  const header: ScanFailure = { at: 'batch' };
  if (typeof wire !== 'object' || wire === null) return header;
  const w = wire as { agentId?: unknown; sequence?: unknown; stats?: unknown; credential?: unknown };
  const sequence = safeInt(w.sequence);
  if (!isAgentId(w.agentId) || sequence === undefined || sequence < 1) return header;
  const credential = w.credential;
  if (credential !== undefined && credential !== null && typeof credential !== 'string') return header;
  if (!Array.isArray(w.stats) || w.stats.length > BATCH_LIMITS.maxStats) return header;
  const stats: HealthStat[] = new Array(w.stats.length);
  let last: HealthStat | undefined;
  for (let i = 0; i < w.stats.length; i++) {
    const s = w.stats[i] as Record<string, unknown> | null;
    if (typeof s !== 'object' || s === null) return { at: 'stat', index: i };
    const timestamp = safeInt(s.timestamp);
    const clusterId = idOf(s.clusterId, last?.clusterId);
    const clusterInstanceId = idOf(s.clusterInstanceId, last?.clusterInstanceId);
    const networkPartitionId = idOf(s.networkPartitionId, last?.networkPartitionId);
    const partitionId = idOf(s.partitionId, last?.partitionId);
    const memberId = idOf(s.memberId, last?.memberId);
    const { healthDescription, value } = s;
    const description = typeof healthDescription === 'string' ? DESCRIPTIONS.get(healthDescription) : undefined;
    if (
      clusterId === undefined ||
      clusterInstanceId === undefined ||
      networkPartitionId === undefined ||
      partitionId === undefined ||
      memberId === undefined ||
      description === undefined ||
      typeof value !== 'number' ||
      !Number.isFinite(value) ||
      timestamp === undefined ||
      timestamp < 0
    ) {
      return { at: 'stat', index: i };
    }
    last = {
      clusterId,
      clusterInstanceId,
      networkPartitionId,
      partitionId,
      memberId,
      healthDescription: description,
      value,
      timestamp,
    };
    stats[i] = last;
  }
  const batch: HealthStatBatch = { agentId: w.agentId, sequence, stats };
  if (typeof credential === 'string') batch.credential = credential;
  return batch;
}

/** The batch if the hand-written checks accept it (the same rules as `healthStatBatchSchema`). */
export function fastBatch(wire: unknown): HealthStatBatch | undefined {
  const scanned = scanBatch(wire);
  return 'at' in scanned ? undefined : scanned;
}

/**
 * Validates a batch as thrift's runtime decoded it (required fields may be
 * null: the generated reader does not enforce `required`). Never throws. A
 * refusal names at most a few issues, of the batch's own fields or of the
 * first bad stat.
 */
export function validateBatch(wire: unknown): Result<HealthStatBatch, BatchDecodeError> {
  const scanned = scanBatch(wire);
  if (!('at' in scanned)) return ok(scanned);
  const agentId =
    typeof (wire as { agentId?: unknown })?.agentId === 'string' ? (wire as { agentId: string }).agentId : undefined;
  const context = { agentId: agentId?.slice(0, 200) };
  if (scanned.at === 'stat') {
    const stat = (wire as { stats: unknown[] }).stats[scanned.index];
    const parsed = healthStatSchema.safeParse(stat);
    const why = parsed.success ? 'refused' : describe(parsed.error.issues, ['stats', scanned.index]);
    return err(new BatchDecodeError(`invalid health-stat batch: ${why}`, context));
  }
  const parsed = batchHeaderSchema.safeParse(wire);
  const why = parsed.success ? 'refused' : describe(parsed.error.issues);
  return err(new BatchDecodeError(`invalid health-stat batch: ${why}`, context));
}

export function toBatchWire(batch: HealthStatBatch): HealthStatBatchWire {
  return new generated.HealthStatBatch({
    agentId: batch.agentId,
    sequence: batch.sequence,
    stats: batch.stats.map((stat) => new generated.HealthStat(stat)),
    credential: batch.credential,
  });
}

export function fromAckWire(wire: BatchAckWire): BatchAck {
  const num = (v: number | Int64Like) => (isInt64(v) ? v.toNumber(true) : v);
  return {
    agentId: wire.agentId,
    sequence: num(wire.sequence),
    duplicate: wire.duplicate,
    epoch: num(wire.epoch),
    replicated: wire.replicated,
  };
}

/** Binary-protocol bytes of a batch (no framing): for tests, benchmarks and the sync log. */
export function encodeBatch(batch: HealthStatBatch): Buffer {
  const chunks: Buffer[] = [];
  const transport = new thrift.TBufferedTransport(undefined, (buf?: Buffer) => {
    if (buf) chunks.push(buf);
  });
  const protocol = new thrift.TBinaryProtocol(transport);
  (toBatchWire(batch) as unknown as { write(p: unknown): void }).write(protocol);
  transport.flush();
  return Buffer.concat(chunks);
}

/** Decodes and validates binary-protocol bytes of a batch. Never throws. */
export function decodeBatch(bytes: Buffer): Result<HealthStatBatch, BatchDecodeError> {
  let wire: WireBatch;
  try {
    wire = readBatchStruct(bytes);
  } catch (cause) {
    return err(new BatchDecodeError(`undecodable health-stat batch: ${String(cause)}`, { bytes: bytes.length }, cause));
  }
  return validateBatch(wire);
}

/**
 * A raw `publish` call (a frame's payload) in the form every agent writes,
 * read and validated into columns: its seqid and batch. Undefined when the
 * call is in another form or breaks a rule: `readPublishCall` and
 * `validateBatch` then read it and say what is wrong. What this accepts, they
 * accept as the same batch (a test holds the two together).
 */
export function decodePublishColumns(call: Buffer): { seqid: number; batch: StatColumns } | undefined {
  const read = readPublishColumns(call);
  if (read === undefined) return undefined;
  const { agentId, sequence, ids } = read;
  if (!isAgentId(agentId) || sequence === undefined || !Number.isSafeInteger(sequence) || sequence < 1)
    return undefined;
  if (!isId(ids[0]) || !isId(ids[1]) || !isId(ids[2]) || !isId(ids[3]) || !isId(ids[4])) return undefined;
  const batch: StatColumns = {
    agentId,
    sequence,
    ids: {
      clusterId: ids[0],
      clusterInstanceId: ids[1],
      networkPartitionId: ids[2],
      partitionId: ids[3],
      memberId: ids[4],
    },
    descriptions: read.descriptions,
    values: read.values,
    timestamps: read.timestamps,
  };
  if (read.credential !== undefined) batch.credential = read.credential;
  return { seqid: read.seqid, batch };
}

/**
 * Decodes a raw `publish` call as a server receives it (the frame's payload:
 * message header and arguments) and validates its batch. The SP's passive
 * uses it on the bytes the active forwards. Never throws.
 */
export function decodePublishCall(call: Buffer): Result<HealthStatBatch, BatchDecodeError> {
  let wire: WireBatch | undefined;
  try {
    wire = readPublishCall(call).batch;
  } catch (cause) {
    return err(new BatchDecodeError(`undecodable publish call: ${String(cause)}`, { bytes: call.length }, cause));
  }
  return validateBatch(wire);
}
