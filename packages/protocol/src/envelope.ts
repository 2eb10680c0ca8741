import { randomUUID } from 'node:crypto';
import { DEFAULTS, err, FaultlineError, ok, type Result } from '@faultline/core';
import { z } from 'zod';
import { EVENT_SCHEMAS, type EventDataMap, type EventType, isEventType } from './events.js';
import { eventTypeOfTopic, memberOfTopic, rootOf, TOPIC_ROOTS } from './topics.js';

/**
 * The JSON envelope of every MQTT message (README "MQTT topics and the event envelope"):
 * `{ id, type, time, source, epoch?, data }`, a tagged union on `type`.
 */
export type EnvelopeOf<K extends EventType> = {
  /** Deterministic where the same fact can be produced twice, so consumers dedupe. */
  id: string;
  type: K;
  /** Epoch ms when the source produced it. */
  time: number;
  /** The producing service instance, e.g. `sp-1`. */
  source: string;
  /** The SP leader's fencing epoch: only on `summarized-health-stats/` events, refused on any other. */
  epoch?: number;
  data: EventDataMap[K];
};
export type Envelope = { [K in EventType]: EnvelopeOf<K> }[EventType];

/** Default size limit of one encoded envelope. */
export const MAX_ENVELOPE_BYTES = DEFAULTS.maxMessageBytes;

/** The envelope codec's error, decoding or encoding (FL_ERR_ENVELOPE_TOO_LARGE is both a payload refused and one never sent). */
export class EnvelopeDecodeError extends FaultlineError {
  constructor(
    code: 'FL_ERR_ENVELOPE_INVALID' | 'FL_ERR_ENVELOPE_TOO_LARGE',
    message: string,
    context: Record<string, unknown> = {},
    cause?: unknown,
  ) {
    super(code, message, { context, cause });
  }
}

const headerSchema = z.object({
  id: z.string().min(1).max(256),
  type: z.string().max(256),
  time: z.number().int().min(0),
  source: z.string().min(1).max(256),
  epoch: z.number().int().min(0).optional(),
  data: z.unknown(),
});

export interface CreateEnvelopeOptions {
  source: string;
  epoch?: number;
  /** @default a random UUID: pass a deterministic id for facts that can repeat. */
  id?: string;
  /** @default Date.now() — pass clock.now() */
  time?: number;
}

export function createEnvelope<K extends EventType>(
  type: K,
  data: EventDataMap[K],
  options: CreateEnvelopeOptions,
): EnvelopeOf<K> {
  const envelope: EnvelopeOf<K> = {
    id: options.id ?? randomUUID(),
    type,
    time: options.time ?? Date.now(),
    source: options.source,
    data,
  };
  if (options.epoch !== undefined) envelope.epoch = options.epoch;
  return envelope;
}

/** Issues named in an error message: a hostile payload can make zod report thousands. */
const MAX_ISSUES = 3;
/** A reason ends up in log lines: at most 1 KB of it. */
const MAX_REASON_CHARS = 1_024;

function issuesOf(error: z.ZodError, prefix: string): string {
  const { issues } = error;
  const listed = issues
    .slice(0, MAX_ISSUES)
    .map((i) => `${[prefix, ...i.path.map(String)].filter(Boolean).join('.')}: ${i.message}`)
    .join('; ');
  const more = issues.length > MAX_ISSUES ? ` (and ${issues.length - MAX_ISSUES} more issues)` : '';
  return `${listed.slice(0, MAX_REASON_CHARS - 200)}${more}`;
}

/** The one root whose events carry the SP leader's epoch. */
const EPOCH_ROOT = TOPIC_ROOTS.summarizedHealthStats;

/** Validates a value as an envelope. Never throws. */
export function validateEnvelope(value: unknown): Result<Envelope, EnvelopeDecodeError> {
  const header = headerSchema.safeParse(value);
  if (!header.success) {
    return err(new EnvelopeDecodeError('FL_ERR_ENVELOPE_INVALID', `invalid envelope: ${issuesOf(header.error, '')}`));
  }
  const { type } = header.data;
  if (!isEventType(type)) {
    return err(
      new EnvelopeDecodeError('FL_ERR_ENVELOPE_INVALID', `unknown event type ${JSON.stringify(type)}`, {
        id: header.data.id,
        type,
      }),
    );
  }
  // Only the SP's events are fenced by epoch: an epoch anywhere else (an
  // agent's instance status) would move the autoscaler's fence.
  if (header.data.epoch !== undefined && rootOf(type) !== EPOCH_ROOT) {
    return err(
      new EnvelopeDecodeError(
        'FL_ERR_ENVELOPE_INVALID',
        `epoch is valid only on ${EPOCH_ROOT}/ events, not on a ${type}`,
        {
          id: header.data.id,
          type,
        },
      ),
    );
  }
  const data = EVENT_SCHEMAS[type].safeParse(header.data.data);
  if (!data.success) {
    return err(
      new EnvelopeDecodeError('FL_ERR_ENVELOPE_INVALID', `invalid ${type}: ${issuesOf(data.error, 'data')}`, {
        id: header.data.id,
        type,
      }),
    );
  }
  return ok({ ...header.data, type, data: data.data } as Envelope);
}

export interface DecodeEnvelopeOptions {
  /**
   * When given, the envelope's type must be the one this topic carries, and an
   * instance status event must be about the member its topic names (the
   * brokers let a member's account publish only under its own member id).
   */
  topic?: string;
  /** @default MAX_ENVELOPE_BYTES */
  maxBytes?: number;
}

/** Parses and validates an MQTT payload. Never throws: a typed error instead. */
export function decodeEnvelope(
  payload: Buffer | string,
  options: DecodeEnvelopeOptions = {},
): Result<Envelope, EnvelopeDecodeError> {
  const maxBytes = options.maxBytes ?? MAX_ENVELOPE_BYTES;
  const size = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length;
  if (size > maxBytes) {
    return err(
      new EnvelopeDecodeError('FL_ERR_ENVELOPE_TOO_LARGE', `payload of ${size} bytes exceeds ${maxBytes}`, {
        size,
        maxBytes,
        topic: options.topic,
      }),
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(typeof payload === 'string' ? payload : payload.toString('utf8'));
  } catch (cause) {
    return err(
      new EnvelopeDecodeError('FL_ERR_ENVELOPE_INVALID', 'payload is not JSON', { topic: options.topic }, cause),
    );
  }
  const result = validateEnvelope(value);
  if (!result.ok || options.topic === undefined) return result;
  const expected = eventTypeOfTopic(options.topic);
  if (expected !== result.value.type) {
    return err(
      new EnvelopeDecodeError(
        'FL_ERR_ENVELOPE_INVALID',
        `a ${result.value.type} does not belong on topic ${options.topic}`,
        { id: result.value.id, topic: options.topic },
      ),
    );
  }
  const topicMember = memberOfTopic(options.topic);
  const named = (result.value.data as { memberId?: unknown }).memberId;
  if (topicMember !== undefined && named !== topicMember) {
    return err(
      new EnvelopeDecodeError(
        'FL_ERR_ENVELOPE_INVALID',
        `a ${result.value.type} about member ${String(named)} does not belong on ${options.topic}`,
        { id: result.value.id, topic: options.topic },
      ),
    );
  }
  return result;
}

export interface EncodeEnvelopeOptions {
  /** The subscribers' limit (`messaging.maxMessageBytes`). @default MAX_ENVELOPE_BYTES */
  maxBytes?: number;
}

/**
 * Serializes an envelope after validating it; our own invalid event is a bug,
 * so this throws (FL_ERR_ENVELOPE_INVALID). So does an envelope over
 * `maxBytes` (FL_ERR_ENVELOPE_TOO_LARGE): every subscriber would drop it
 * unread, so it must not be published as if it had gone out.
 */
export function encodeEnvelope(envelope: Envelope, options: EncodeEnvelopeOptions = {}): Buffer {
  const checked = validateEnvelope(envelope);
  if (!checked.ok) throw checked.error;
  const payload = Buffer.from(JSON.stringify(envelope));
  const maxBytes = options.maxBytes ?? MAX_ENVELOPE_BYTES;
  if (payload.length > maxBytes) {
    throw new EnvelopeDecodeError(
      'FL_ERR_ENVELOPE_TOO_LARGE',
      `envelope ${envelope.id} (${envelope.type}) of ${payload.length} bytes exceeds ${maxBytes}: no subscriber would read it`,
      { id: envelope.id, type: envelope.type, size: payload.length, maxBytes },
    );
  }
  return payload;
}
