import { err, ok, type Result } from '@faultline/core';
import {
  type AnyBatch,
  BATCH_LIMITS,
  BatchDecodeError,
  HEALTH_DESCRIPTIONS,
  type HealthDescription,
  type HealthStat,
  type HealthStatBatch,
  isStatColumns,
  type StatColumns,
} from './health.js';
import { isAgentId, isId } from './identity.js';
import { columnArrays } from './wire-codec.js';

/*
 * The form in which the active SP forwards a batch it accepted to the
 * passive: the batch as validated, in a compact binary layout. Forwarding the
 * agent's Thrift call as it arrived made the passive read the whole call
 * again (two thirds of its time) and the link carry some 130 bytes a stat;
 * here a stat whose ids are the previous stat's (a batch is one member's)
 * costs 17 bytes and no string is decoded twice.
 *
 * Layout, big-endian:
 *   f64  sequence
 *   u16  agent id bytes, then the bytes (UTF-8)
 *   u32  credential bytes + 1 (0: none), then the bytes
 *   u16  number of id strings, then each: u16 bytes, then the bytes
 *   u32  number of stats, then each:
 *          u8   the description's index in HEALTH_DESCRIPTIONS, + 0x80 when ids follow
 *          5 × u16 (when they follow) indices into the id strings: cluster,
 *               cluster instance, network partition, partition, member
 *               (else the previous stat's)
 *          f64  value
 *          f64  timestamp
 *
 * The passive holds what it reads to every rule of `validateBatch` (ids by
 * ID_PATTERN, agent id, sequence, counts, finite values, safe timestamps),
 * so a frame the active should not have sent is refused, never applied, and
 * never costs more than a pass over its bytes: the link is authenticated,
 * but each side checks what it is handed.
 */

const IDS_FOLLOW = 0x80;
/** Up to this many distinct ids in a batch, an id is found by a scan; beyond, by a map. */
const SCANNED_IDS = 16;
const MAX_U16 = 0xffff;
const ID_FIELDS = 5;
const STAT_BYTES = 1 + 8 + 8;
const DESCRIPTION_INDEX: ReadonlyMap<string, number> = new Map(HEALTH_DESCRIPTIONS.map((d, i) => [d, i]));

/** Bytes of the fixed part: sequence, the three lengths and the stat count. */
const FIXED_BYTES = 8 + 2 + 4 + 2 + 4;

/**
 * A validated batch in the checked form, `headroom` bytes left free at the
 * start of the buffer for the caller's frame header. Throws RangeError when
 * the batch cannot be written (an agent id or id of over 65 535 bytes, more
 * than 65 535 distinct ids): validation never lets such a batch through.
 */
export function encodeCheckedBatch(batch: AnyBatch, headroom = 0): Buffer {
  if (isStatColumns(batch)) return encodeCheckedColumns(batch, headroom);
  const { stats } = batch;
  // Pass 1: the distinct ids, and the indices of the stats that carry theirs (five each, in order).
  const strings: string[] = [];
  /** Made once there are more ids than a scan of `strings` finds quickly (a batch of one member has five). */
  let index: Map<string, number> | undefined;
  const indexOf = (text: string): number => {
    if (index === undefined) {
      for (let i = 0; i < strings.length; i++) if (strings[i] === text) return i;
      strings.push(text);
      if (strings.length > SCANNED_IDS) index = new Map(strings.map((t, i) => [t, i]));
      return strings.length - 1;
    }
    let at = index.get(text);
    if (at === undefined) {
      at = strings.length;
      strings.push(text);
      index.set(text, at);
    }
    return at;
  };
  const carried: number[] = [];
  let last: HealthStat | undefined;
  for (let i = 0; i < stats.length; i++) {
    const s = stats[i] as HealthStat;
    if (last === undefined || !sameIds(s, last)) {
      carried.push(
        indexOf(s.clusterId),
        indexOf(s.clusterInstanceId),
        indexOf(s.networkPartitionId),
        indexOf(s.partitionId),
        indexOf(s.memberId),
      );
    }
    last = s;
  }
  // Pass 2: the bytes.
  const head = writeHead(batch, strings, stats.length, carried.length, headroom);
  const { buf, view } = head;
  let at = head.at;
  last = undefined;
  let next = 0;
  for (let i = 0; i < stats.length; i++) {
    const s = stats[i] as HealthStat;
    const description = DESCRIPTION_INDEX.get(s.healthDescription);
    if (description === undefined) throw new RangeError(`stats.${i}: not a health description`);
    if (last === undefined || !sameIds(s, last)) {
      buf[at++] = description | IDS_FOLLOW;
      for (let k = 0; k < ID_FIELDS; k++, at += 2) view.setUint16(at, carried[next++] as number);
    } else buf[at++] = description;
    view.setFloat64(at, s.value);
    view.setFloat64(at + 8, s.timestamp);
    at += 16;
    last = s;
  }
  return buf;
}

/**
 * A batch in columns in the checked form: byte for byte what
 * `encodeCheckedBatch` writes for the same batch as objects (its ids found
 * once, the first stat carrying them).
 */
function encodeCheckedColumns(batch: StatColumns, headroom: number): Buffer {
  const { ids, descriptions, values, timestamps } = batch;
  const count = values.length;
  const fields = [ids.clusterId, ids.clusterInstanceId, ids.networkPartitionId, ids.partitionId, ids.memberId];
  const strings: string[] = [];
  const carried = fields.map((text) => {
    const at = strings.indexOf(text);
    if (at >= 0) return at;
    strings.push(text);
    return strings.length - 1;
  });
  const head = writeHead(batch, strings, count, ID_FIELDS, headroom);
  const { buf, view } = head;
  let at = head.at;
  for (let i = 0; i < count; i++) {
    const description = descriptions[i] as number;
    if (description >= HEALTH_DESCRIPTIONS.length) throw new RangeError(`stats.${i}: not a health description`);
    if (i === 0) {
      buf[at++] = description | IDS_FOLLOW;
      for (let k = 0; k < ID_FIELDS; k++, at += 2) view.setUint16(at, carried[k] as number);
    } else buf[at++] = description;
    view.setFloat64(at, values[i] as number);
    view.setFloat64(at + 8, timestamps[i] as number);
    at += 16;
  }
  return buf;
}

/**
 * A buffer for a batch in the checked form, its fixed part, ids and stat
 * count written: `at` is where the stats go. `carried` is how many id
 * indices the stats carry in all. Throws RangeError for what the form
 * cannot hold.
 */
function writeHead(
  batch: AnyBatch,
  strings: readonly string[],
  count: number,
  carried: number,
  headroom: number,
): { buf: Buffer; view: DataView; at: number } {
  if (strings.length > MAX_U16) throw new RangeError(`${strings.length} distinct ids in one batch`);
  const stringBytes = strings.map((text) => Buffer.byteLength(text, 'utf8'));
  const agentBytes = Buffer.byteLength(batch.agentId, 'utf8');
  const credential = batch.credential;
  const credentialBytes = credential === undefined ? 0 : Buffer.byteLength(credential, 'utf8');
  if (agentBytes > MAX_U16) throw new RangeError(`an agent id of ${agentBytes} bytes`);
  let size = headroom + FIXED_BYTES + agentBytes + credentialBytes + count * STAT_BYTES + carried * 2;
  for (const bytes of stringBytes) {
    if (bytes > MAX_U16) throw new RangeError(`an id of ${bytes} bytes`);
    size += 2 + bytes;
  }
  const buf = Buffer.allocUnsafe(size);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let at = headroom;
  view.setFloat64(at, batch.sequence);
  at += 8;
  view.setUint16(at, agentBytes);
  at += 2 + buf.write(batch.agentId, at + 2, 'utf8');
  view.setUint32(at, credential === undefined ? 0 : credentialBytes + 1);
  at += 4;
  if (credential !== undefined) at += buf.write(credential, at, 'utf8');
  view.setUint16(at, strings.length);
  at += 2;
  for (let i = 0; i < strings.length; i++) {
    view.setUint16(at, stringBytes[i] as number);
    at += 2 + buf.write(strings[i] as string, at + 2, 'utf8');
  }
  view.setUint32(at, count);
  return { buf, view, at: at + 4 };
}

function sameIds(a: HealthStat, b: HealthStat): boolean {
  return (
    a.clusterId === b.clusterId &&
    a.clusterInstanceId === b.clusterInstanceId &&
    a.networkPartitionId === b.networkPartitionId &&
    a.partitionId === b.partitionId &&
    a.memberId === b.memberId
  );
}

class CheckedBatchError extends Error {}

/**
 * Reads a batch in the checked form that fills `bytes`, holding it to the
 * rules of `validateBatch`; the error names the first thing wrong. A stat's
 * ids are the very strings of the previous stat's when they repeat.
 */
export function decodeCheckedBatch(bytes: Buffer): Result<AnyBatch, BatchDecodeError> {
  try {
    return ok(readChecked(bytes));
  } catch (error) {
    if (!(error instanceof CheckedBatchError)) throw error;
    return err(new BatchDecodeError(`bad checked batch: ${error.message}`, { bytes: bytes.length }));
  }
}

function readChecked(buf: Buffer): AnyBatch {
  const end = buf.length;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let at = 0;
  const need = (n: number): number => {
    const from = at;
    if (n > end - from) throw new CheckedBatchError(`truncated: ${n} bytes wanted at ${from}, ${end - from} left`);
    at = from + n;
    return from;
  };
  const sequence = view.getFloat64(need(8));
  if (!Number.isSafeInteger(sequence) || sequence < 1) throw new CheckedBatchError(`sequence ${sequence}`);
  const agentBytes = view.getUint16(need(2));
  const agentAt = need(agentBytes);
  const agentId = buf.toString('utf8', agentAt, agentAt + agentBytes);
  if (!isAgentId(agentId)) throw new CheckedBatchError('the agent id does not follow its pattern');
  const credentialField = view.getUint32(need(4));
  let credential: string | undefined;
  if (credentialField > 0) {
    const credentialAt = need(credentialField - 1);
    credential = buf.toString('utf8', credentialAt, credentialAt + credentialField - 1);
  }
  const stringCount = view.getUint16(need(2));
  // Each takes at least its two bytes of length: a count the bytes cannot hold is refused before anything is made.
  if (stringCount * 2 > end - at) throw new CheckedBatchError(`${stringCount} ids in ${end - at} bytes`);
  const strings: string[] = new Array(stringCount);
  for (let i = 0; i < stringCount; i++) {
    const length = view.getUint16(need(2));
    const from = need(length);
    const text = buf.toString('utf8', from, from + length);
    if (!isId(text)) throw new CheckedBatchError(`id ${i} does not follow the id pattern`);
    strings[i] = text;
  }
  const count = view.getUint32(need(4));
  if (count > BATCH_LIMITS.maxStats) throw new CheckedBatchError(`${count} stats (at most ${BATCH_LIMITS.maxStats})`);
  if (count * STAT_BYTES > end - at) throw new CheckedBatchError(`${count} stats in ${end - at} bytes`);
  const id = (from: number): string => {
    const i = view.getUint16(from);
    if (i >= stringCount) throw new CheckedBatchError(`id index ${i} of ${stringCount}`);
    return strings[i] as string;
  };
  // A batch whose first stat alone carries ids (every agent's: one member's) is read into columns.
  const columns = readCheckedColumns(buf, view, at, count, id);
  if (columns !== undefined) {
    const batch: StatColumns = { agentId, sequence, ids: columns.ids, ...columns.columns };
    if (credential !== undefined) batch.credential = credential;
    return batch;
  }
  const stats: HealthStat[] = new Array(count);
  let clusterId = '';
  let clusterInstanceId = '';
  let networkPartitionId = '';
  let partitionId = '';
  let memberId = '';
  for (let i = 0; i < count; i++) {
    const head = buf[need(1)] as number;
    const description = HEALTH_DESCRIPTIONS[head & ~IDS_FOLLOW] as HealthDescription | undefined;
    if (description === undefined) throw new CheckedBatchError(`stats.${i}: description ${head & ~IDS_FOLLOW}`);
    if ((head & IDS_FOLLOW) !== 0) {
      const from = need(ID_FIELDS * 2);
      clusterId = id(from);
      clusterInstanceId = id(from + 2);
      networkPartitionId = id(from + 4);
      partitionId = id(from + 6);
      memberId = id(from + 8);
    } else if (i === 0) throw new CheckedBatchError('the first stat carries no ids');
    const from = need(16);
    const value = view.getFloat64(from);
    const timestamp = view.getFloat64(from + 8);
    if (!Number.isFinite(value)) throw new CheckedBatchError(`stats.${i}: value ${value}`);
    if (!Number.isSafeInteger(timestamp) || timestamp < 0) throw new CheckedBatchError(`stats.${i}: timestamp`);
    // The shape and field order of a stat `validateBatch` makes: the engine sees one kind of object.
    stats[i] = {
      clusterId,
      clusterInstanceId,
      networkPartitionId,
      partitionId,
      memberId,
      healthDescription: description,
      value,
      timestamp,
    };
  }
  if (at !== end) throw new CheckedBatchError(`${end - at} bytes after the stats`);
  const batch: HealthStatBatch = { agentId, sequence, stats };
  if (credential !== undefined) batch.credential = credential;
  return batch;
}

/**
 * The stats at `from` as columns when the first carries ids and no other
 * does; undefined when a later one carries ids (the caller reads objects).
 * Holds each stat to the same rules as the object reading, with the same
 * errors, and the bytes to ending with the last stat.
 */
function readCheckedColumns(
  buf: Buffer,
  view: DataView,
  from: number,
  count: number,
  id: (at: number) => string,
): { ids: StatColumns['ids']; columns: Pick<StatColumns, 'descriptions' | 'values' | 'timestamps'> } | undefined {
  if (count === 0) return undefined;
  const end = buf.length;
  // Its exact size, when only the first carries ids: anything else is read as objects (which says what is wrong).
  if (end - from !== count * STAT_BYTES + ID_FIELDS * 2) return undefined;
  const first = buf[from] as number;
  if ((first & IDS_FOLLOW) === 0) return undefined;
  for (let i = 1, at = from + 1 + ID_FIELDS * 2 + 16; i < count; i++, at += STAT_BYTES)
    if (((buf[at] as number) & IDS_FOLLOW) !== 0) return undefined;
  // The first stat's description is judged before its ids, as the object reading does.
  if ((first & ~IDS_FOLLOW) >= HEALTH_DESCRIPTIONS.length)
    throw new CheckedBatchError(`stats.0: description ${first & ~IDS_FOLLOW}`);
  const ids = {
    clusterId: id(from + 1),
    clusterInstanceId: id(from + 3),
    networkPartitionId: id(from + 5),
    partitionId: id(from + 7),
    memberId: id(from + 9),
  };
  const { values, timestamps, descriptions } = columnArrays(count);
  let at = from;
  for (let i = 0; i < count; i++) {
    const description = (buf[at] as number) & ~IDS_FOLLOW;
    if (description >= HEALTH_DESCRIPTIONS.length)
      throw new CheckedBatchError(`stats.${i}: description ${description}`);
    at += i === 0 ? 1 + ID_FIELDS * 2 : 1;
    const value = view.getFloat64(at);
    const timestamp = view.getFloat64(at + 8);
    at += 16;
    if (!Number.isFinite(value)) throw new CheckedBatchError(`stats.${i}: value ${value}`);
    if (!Number.isSafeInteger(timestamp) || timestamp < 0) throw new CheckedBatchError(`stats.${i}: timestamp`);
    descriptions[i] = description;
    values[i] = value;
    timestamps[i] = timestamp;
  }
  return { ids, columns: { descriptions, values, timestamps } };
}
