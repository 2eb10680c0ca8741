import { type BatchAck, HEALTH_DESCRIPTIONS } from './health.js';
import { MAX_CONTAINER_ELEMENTS } from './thrift.js';

/*
 * The binary protocol of HealthStatService's one call, read and written by
 * hand (the layout is Thrift's TBinaryProtocol; infra/thrift/health.thrift is
 * the IDL). Thrift's generated reader made an object per field and an Int64
 * with its own Buffer per i64, and its writer a Buffer per byte of an answer:
 * at 100 000 members those were over a third of what the active SP allocated
 * (~50 of 135 MB/s). This codec reads a call into
 * plain fields, reuses a stat's ids when they repeat the previous stat's bytes
 * (a batch is one member's), and writes an answer into one buffer.
 *
 * It reads what the generated code reads: fields in any order, the last of a
 * repeated field wins, a known field of another type and any unknown field
 * skipped, skipped values nested at most MAX_SKIP_DEPTH deep (the runtime's
 * own bound). It refuses some frames the generated code would read (a message
 * that is not a call, an empty container of an invalid element type, a list
 * of stats whose element type is not a struct, which thrift reads as structs
 * all the same), never the other way round: whatever it accepts, the generated
 * code accepts the same. It is stricter where the generated code was
 * unbounded: every container holds at most MAX_CONTAINER_ELEMENTS and every
 * length is checked against the bytes left before anything is built, so a
 * hostile frame costs time in proportion to its size. A test keeps the two in
 * agreement on valid and random input.
 */

/** TBinaryProtocol's type codes. */
const T = {
  STOP: 0,
  BOOL: 2,
  BYTE: 3,
  DOUBLE: 4,
  I16: 6,
  I32: 8,
  I64: 10,
  STRING: 11,
  STRUCT: 12,
  MAP: 13,
  SET: 14,
  LIST: 15,
  UUID: 16,
} as const;

/** Bytes of a value of each fixed-size type. */
const FIXED_SIZES: Readonly<Record<number, number>> = {
  [T.BOOL]: 1,
  [T.BYTE]: 1,
  [T.I16]: 2,
  [T.I32]: 4,
  [T.DOUBLE]: 8,
  [T.I64]: 8,
  [T.UUID]: 16,
};

const VERSION_MASK = 0xffff0000 | 0;
const VERSION_1 = 0x80010000 | 0;
const MESSAGE_CALL = 1;
const MESSAGE_REPLY = 2;
const MESSAGE_EXCEPTION = 3;
const PUBLISH = 'publish';
const PUBLISH_BYTES = Buffer.from(PUBLISH, 'latin1');

/** Deepest nesting of a skipped value (thrift's DEFAULT_RECURSION_DEPTH). */
export const MAX_SKIP_DEPTH = 64;

/** A call the codec cannot read: the server ends that connection; the passive refuses the batch. */
export class WireDecodeError extends Error {
  override readonly name = 'WireDecodeError';
}

/** A stat as read off the wire: any field may be missing or of another type (`validateBatch` decides). */
export interface WireStat {
  clusterId?: string;
  clusterInstanceId?: string;
  networkPartitionId?: string;
  partitionId?: string;
  memberId?: string;
  healthDescription?: string;
  value?: number;
  /** NaN when the i64 is not a safe integer. */
  timestamp?: number;
}

/** A batch as read off the wire (the shape `validateBatch` takes). */
export interface WireBatch {
  agentId?: string;
  sequence?: number;
  stats?: WireStat[];
  credential?: string | null;
}

export interface PublishCall {
  seqid: number;
  /** Undefined when the call has no batch argument. */
  batch: WireBatch | undefined;
}

/** Where a string was in the frame: a stat whose id has the same bytes gets the same string. */
interface Span {
  start: number;
  end: number;
  text: string | undefined;
}

class Reader {
  pos: number;
  /** The previous stat's ids, by field id 1–6; made on first use (a call read into columns needs none). */
  private spansMade: Span[] | undefined;
  get spans(): Span[] {
    this.spansMade ??= [0, 1, 2, 3, 4, 5, 6].map(() => ({ start: 0, end: 0, text: undefined }));
    return this.spansMade;
  }

  constructor(
    readonly buf: Buffer,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }

  need(bytes: number): number {
    const at = this.pos;
    if (bytes > this.end - at)
      throw new WireDecodeError(`truncated: ${bytes} bytes wanted at ${at}, ${this.end - at} left`);
    this.pos = at + bytes;
    return at;
  }

  byte(): number {
    return this.buf[this.need(1)] as number;
  }

  i16(): number {
    return this.buf.readInt16BE(this.need(2));
  }

  i32(): number {
    return this.buf.readInt32BE(this.need(4));
  }

  /** NaN when not a safe integer. */
  i64(): number {
    const at = this.need(8);
    const high = this.buf.readInt32BE(at);
    const low = this.buf.readUInt32BE(at + 4);
    const value = high * 4_294_967_296 + low;
    return Number.isSafeInteger(value) ? value : Number.NaN;
  }

  double(): number {
    return this.buf.readDoubleBE(this.need(8));
  }

  length(): number {
    const size = this.i32();
    if (size < 0) throw new WireDecodeError(`negative length ${size}`);
    return size;
  }

  string(): string {
    const size = this.length();
    const at = this.need(size);
    return this.buf.toString('utf8', at, at + size);
  }

  /** A string whose bytes repeat the previous stat's field `slot` is that same string. */
  id(slot: number): string {
    const size = this.length();
    const at = this.need(size);
    const span = this.spans[slot] as Span;
    const { buf } = this;
    if (span.text !== undefined && span.end - span.start === size) {
      let i = 0;
      while (i < size && buf[span.start + i] === buf[at + i]) i++;
      if (i === size) return span.text;
    }
    span.start = at;
    span.end = at + size;
    span.text = buf.toString('utf8', at, at + size);
    return span.text;
  }

  containerSize(elementType: number): number {
    const size = this.i32();
    if (size < 0) throw new WireDecodeError(`negative container size ${size}`);
    if (size > MAX_CONTAINER_ELEMENTS) {
      throw new WireDecodeError(`container of ${size} elements (at most ${MAX_CONTAINER_ELEMENTS})`);
    }
    // Every element takes at least one byte (a map entry two).
    if (size > this.end - this.pos)
      throw new WireDecodeError(`container of ${size} elements in ${this.end - this.pos} bytes`);
    checkType(elementType);
    return size;
  }

  skip(type: number, depth: number): void {
    if (depth > MAX_SKIP_DEPTH) throw new WireDecodeError(`values nested deeper than ${MAX_SKIP_DEPTH}`);
    const fixed = FIXED_SIZES[type];
    if (fixed !== undefined) {
      this.need(fixed);
      return;
    }
    switch (type) {
      case T.STRING:
        this.need(this.length());
        return;
      case T.STRUCT:
        for (;;) {
          const fieldType = this.byte();
          if (fieldType === T.STOP) return;
          this.need(2);
          this.skip(fieldType, depth + 1);
        }
      case T.MAP: {
        const keyType = this.byte();
        const valueType = this.byte();
        checkType(keyType);
        const size = this.containerSize(valueType);
        for (let i = 0; i < size; i++) {
          this.skip(keyType, depth + 1);
          this.skip(valueType, depth + 1);
        }
        return;
      }
      case T.SET:
      case T.LIST: {
        const elementType = this.byte();
        const size = this.containerSize(elementType);
        for (let i = 0; i < size; i++) this.skip(elementType, depth + 1);
        return;
      }
      default:
        throw new WireDecodeError(`invalid type ${type}`);
    }
  }

  /**
   * The previous stat's ids, when they were fields 1–5, strings, in order,
   * from its first byte (as thrift writes a stat): their bytes and strings.
   */
  private ids: { start: number; end: number; stat: Required<Pick<WireStat, IdField>> } | undefined;

  stat(): WireStat {
    // Every field present from the start (undefined until read): one shape for every stat.
    const stat: WireStat = {
      clusterId: undefined,
      clusterInstanceId: undefined,
      networkPartitionId: undefined,
      partitionId: undefined,
      memberId: undefined,
      healthDescription: undefined,
      value: undefined,
      timestamp: undefined,
    };
    const start = this.pos;
    // A batch is one member's: a stat's ids are mostly the previous stat's, byte for byte.
    const ids = this.ids;
    if (ids !== undefined && this.sameAsEarlier(ids.start, start, ids.end - ids.start)) {
      stat.clusterId = ids.stat.clusterId;
      stat.clusterInstanceId = ids.stat.clusterInstanceId;
      stat.networkPartitionId = ids.stat.networkPartitionId;
      stat.partitionId = ids.stat.partitionId;
      stat.memberId = ids.stat.memberId;
      this.pos = start + (ids.end - ids.start);
    }
    // The next id field of an id block from the stat's first byte; 0 once there is none.
    let next = this.pos === start ? 1 : 0;
    for (;;) {
      const type = this.byte();
      if (type === T.STOP) return stat;
      const id = this.i16();
      if (id !== next || type !== T.STRING) next = 0;
      if (id >= 1 && id <= 5 && type === T.STRING) {
        const text = this.id(id);
        if (id === 1) stat.clusterId = text;
        else if (id === 2) stat.clusterInstanceId = text;
        else if (id === 3) stat.networkPartitionId = text;
        else if (id === 4) stat.partitionId = text;
        else stat.memberId = text;
        if (next !== 0 && ++next === 6) {
          // Copied: a later field of this stat may repeat an id field (the last one wins there, not here).
          const { clusterId, clusterInstanceId, networkPartitionId, partitionId, memberId } = stat as Required<
            Pick<WireStat, IdField>
          >;
          this.ids = {
            start,
            end: this.pos,
            stat: { clusterId, clusterInstanceId, networkPartitionId, partitionId, memberId },
          };
          next = 0;
        }
      } else if (id === 6 && type === T.STRING) stat.healthDescription = this.known();
      else if (id === 7 && type === T.DOUBLE) stat.value = this.double();
      else if (id === 8 && type === T.I64) stat.timestamp = this.i64();
      else this.skip(type, 1);
    }
  }

  /** The frame's bytes over it, made on first use. */
  private view: DataView | undefined;

  /**
   * Whether the `size` bytes at `at` (which must end by the frame's end)
   * equal those at `from`: four at a time, some 2.5 times faster than byte by
   * byte; a stat's ids (100 bytes or so) are compared at every stat.
   */
  private sameAsEarlier(from: number, at: number, size: number): boolean {
    if (at + size > this.end) return false;
    const { buf } = this;
    this.view ??= new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    const view = this.view;
    let i = 0;
    for (; i + 4 <= size; i += 4) if (view.getUint32(from + i) !== view.getUint32(at + i)) return false;
    for (; i < size; i++) if (buf[from + i] !== buf[at + i]) return false;
    return true;
  }

  /** A health description is that constant string (no copy); any other string is decoded. */
  known(): string {
    const size = this.length();
    const at = this.need(size);
    const { buf } = this;
    // The candidate of this length and last byte (one each), then its bytes.
    const candidate = size > 0 ? knownStrings().get(size * 256 + (buf[at + size - 1] as number)) : undefined;
    if (candidate && sameBytes(candidate[0], 0, at, size, at + size, buf)) return candidate[1];
    return buf.toString('utf8', at, at + size);
  }

  stats(): WireStat[] {
    const elementType = this.byte();
    const size = this.containerSize(elementType);
    // The generated reader reads every element as a stat whatever the list says; skipping them by the
    // type the list says would read the rest of the frame otherwise than it does: refused instead.
    if (elementType !== T.STRUCT) throw new WireDecodeError(`a list of stats of element type ${elementType}`);
    const stats: WireStat[] = new Array(size);
    for (let i = 0; i < size; i++) stats[i] = this.stat();
    return stats;
  }

  batch(): WireBatch {
    const batch: WireBatch = {};
    for (;;) {
      const type = this.byte();
      if (type === T.STOP) return batch;
      const id = this.i16();
      if (id === 1 && type === T.STRING) batch.agentId = this.string();
      else if (id === 2 && type === T.I64) batch.sequence = this.i64();
      else if (id === 3 && type === T.LIST) batch.stats = this.stats();
      else if (id === 4 && type === T.STRING) batch.credential = this.string();
      else this.skip(type, 1);
    }
  }
}

type IdField = 'clusterId' | 'clusterInstanceId' | 'networkPartitionId' | 'partitionId' | 'memberId';

/** Whether `size` bytes of `a` at `from` equal those of `b` at `at`, which must end by `limit`. */
function sameBytes(a: Buffer, from: number, at: number, size: number, limit: number, b: Buffer): boolean {
  if (at + size > limit) return false;
  for (let i = 0; i < size; i++) if (a[from + i] !== b[at + i]) return false;
  return true;
}

/**
 * The health descriptions with their bytes: a stat's field 6 is one of them,
 * and then that very string. Made on first use (health.ts imports this module).
 */
let known: Map<number, [Buffer, string]> | undefined;
/** By length × 256 + last byte, which tells the four apart. */
function knownStrings(): Map<number, [Buffer, string]> {
  if (!known) {
    known = new Map();
    for (const text of HEALTH_DESCRIPTIONS) {
      const bytes = Buffer.from(text, 'utf8');
      const key = bytes.length * 256 + (bytes[bytes.length - 1] as number);
      if (known.has(key))
        throw new Error(`health descriptions ${text} and ${known.get(key)?.[1]} share a length and last byte`);
      known.set(key, [bytes, text]);
    }
  }
  return known;
}

function checkType(type: number): void {
  if (type === T.STOP || type === 1 || type === 5 || type === 7 || type === 9 || type > T.UUID) {
    throw new WireDecodeError(`invalid type ${type}`);
  }
}

/**
 * Reads one `publish` call: a frame's payload (message header and arguments),
 * which must hold that call and nothing else. Throws WireDecodeError.
 */
export function readPublishCall(frame: Buffer): PublishCall {
  const r = new Reader(frame, 0, frame.length);
  const head = r.i32();
  let type: number;
  if (head < 0) {
    if ((head & VERSION_MASK) !== VERSION_1) throw new WireDecodeError(`bad protocol version ${head >>> 0}`);
    type = head & 0xff;
    const size = r.length();
    const at = r.need(size);
    if (size !== PUBLISH_BYTES.length || frame.compare(PUBLISH_BYTES, 0, size, at, at + size) !== 0) {
      throw new WireDecodeError('not a publish call');
    }
  } else {
    // The old unversioned header: the name's bytes, then the type.
    const at = r.need(head);
    if (head !== PUBLISH_BYTES.length || frame.compare(PUBLISH_BYTES, 0, head, at, at + head) !== 0) {
      throw new WireDecodeError('not a publish call');
    }
    type = r.byte();
  }
  if (type !== MESSAGE_CALL) throw new WireDecodeError(`a message of type ${type}, not a call`);
  const seqid = r.i32();
  let batch: WireBatch | undefined;
  for (;;) {
    const fieldType = r.byte();
    if (fieldType === T.STOP) break;
    const id = r.i16();
    if (id === 1 && fieldType === T.STRUCT) batch = r.batch();
    else r.skip(fieldType, 1);
  }
  if (r.pos !== frame.length) throw new WireDecodeError('a frame holds more than one call');
  return { seqid, batch };
}

/**
 * A `publish` call whose batch is in the form every agent writes, read into
 * columns: the batch's fields 1–4 once each, and stats that each carry the
 * five ids as fields 1–5 in order, byte for byte the first stat's, then
 * fields 6–8 in order and nothing else; at least one stat. Nothing is
 * validated here beyond what reading takes, except that each value is finite
 * and each timestamp a safe integer of at least 0 (`decodePublishColumns`
 * checks the rest).
 */
export interface ColumnsCall {
  seqid: number;
  agentId: string | undefined;
  /** NaN when not a safe integer; undefined when absent. */
  sequence: number | undefined;
  credential: string | undefined;
  /** The first stat's ids, in field order. */
  ids: [string, string, string, string, string];
  /** Each stat's description, as its index in HEALTH_DESCRIPTIONS. */
  descriptions: Uint8Array;
  values: Float64Array;
  timestamps: Float64Array;
}

/** Each health description's bytes as big-endian words (the last one padded with zeros), and its length. */
interface DescriptionWords {
  words: Uint32Array;
  size: number;
}
let wordsOfDescriptions: DescriptionWords[] | undefined;
function descriptionWords(): DescriptionWords[] {
  wordsOfDescriptions ??= HEALTH_DESCRIPTIONS.map((text) => {
    const bytes = Buffer.from(text, 'utf8');
    const padded = Buffer.alloc(Math.ceil(bytes.length / 4) * 4);
    bytes.copy(padded);
    const words = new Uint32Array(padded.length / 4);
    for (let k = 0; k < words.length; k++) words[k] = padded.readUInt32BE(k * 4);
    return { words, size: bytes.length };
  });
  return wordsOfDescriptions;
}

/**
 * The index of the health description whose bytes are the `size` at `at`
 * (which must end by the frame's end), or -1: compared four bytes at a time.
 */
function knownDescription(all: DescriptionWords[], view: DataView, buf: Buffer, at: number, size: number): number {
  for (let d = 0; d < all.length; d++) {
    const { words, size: length } = all[d] as DescriptionWords;
    if (length !== size) continue;
    const whole = size >> 2;
    let k = 0;
    for (; k < whole; k++) if (view.getUint32(at + k * 4) !== words[k]) break;
    if (k < whole) continue;
    let tail = 0;
    for (let b = whole * 4; b < size; b++)
      tail = (tail | ((buf[at + b] as number) << (24 - (b - whole * 4) * 8))) >>> 0;
    if (whole * 4 === size || tail === words[whole]) return d;
  }
  return -1;
}

/**
 * The three columns of `count` stats, in one buffer: Buffer's pool for a
 * batch of up to ~240 stats (an ArrayBuffer of its own per batch was an
 * eighth of the whole read). The pool keeps its offsets multiples of 8, as a
 * Float64Array needs; should one not be, the columns get a buffer of their own.
 */
export function columnArrays(count: number): {
  values: Float64Array;
  timestamps: Float64Array;
  descriptions: Uint8Array;
} {
  const bytes = count * 17;
  let store = Buffer.allocUnsafe(bytes);
  if ((store.byteOffset & 7) !== 0) store = Buffer.from(new ArrayBuffer(bytes));
  return {
    values: new Float64Array(store.buffer, store.byteOffset, count),
    timestamps: new Float64Array(store.buffer, store.byteOffset + count * 8, count),
    descriptions: new Uint8Array(store.buffer, store.byteOffset + count * 16, count),
  };
}

/** A call that is not in the form `readPublishColumns` reads: the caller reads it the general way. */
const OTHER_FORM = undefined;

/** Bytes of a stat after its ids, around its description's: three field headers, the length, two numbers, STOP. */
const STAT_TAIL_BYTES = 3 + 4 + 3 + 8 + 3 + 8 + 1;

/**
 * Reads a `publish` call in the form agents write (see ColumnsCall) without
 * making an object per stat; undefined for any other form, or a call that
 * does not read (the general reader, `readPublishCall`, then decides, with
 * the same result for a call this accepts: a test holds the two together).
 */
export function readPublishColumns(frame: Buffer): ColumnsCall | undefined {
  try {
    return readColumns(frame);
  } catch (error) {
    if (error instanceof WireDecodeError) return OTHER_FORM;
    throw error;
  }
}

function readColumns(frame: Buffer): ColumnsCall | undefined {
  const r = new Reader(frame, 0, frame.length);
  const head = r.i32();
  if ((head & VERSION_MASK) !== VERSION_1 || (head & 0xff) !== MESSAGE_CALL) return OTHER_FORM;
  const size = r.length();
  const at = r.need(size);
  if (size !== PUBLISH_BYTES.length || frame.compare(PUBLISH_BYTES, 0, size, at, at + size) !== 0) return OTHER_FORM;
  const seqid = r.i32();
  // The arguments: the batch as field 1, then STOP.
  if (r.byte() !== T.STRUCT || r.i16() !== 1) return OTHER_FORM;
  let agentId: string | undefined;
  let sequence: number | undefined;
  let credential: string | undefined;
  let columns: Omit<ColumnsCall, 'seqid' | 'agentId' | 'sequence' | 'credential'> | undefined;
  let seen = 0;
  for (;;) {
    const type = r.byte();
    if (type === T.STOP) break;
    const id = r.i16();
    const bit = 1 << id;
    if (id < 1 || id > 4 || (seen & bit) !== 0) return OTHER_FORM;
    seen |= bit;
    if (id === 1 && type === T.STRING) agentId = r.string();
    else if (id === 2 && type === T.I64) sequence = r.i64();
    else if (id === 3 && type === T.LIST) columns = readStatColumns(r);
    else if (id === 4 && type === T.STRING) credential = r.string();
    else return OTHER_FORM;
    if (id === 3 && columns === undefined) return OTHER_FORM;
  }
  if (columns === undefined || r.byte() !== T.STOP || r.pos !== frame.length) return OTHER_FORM;
  return { seqid, agentId, sequence, credential, ...columns };
}

function readStatColumns(r: Reader): Omit<ColumnsCall, 'seqid' | 'agentId' | 'sequence' | 'credential'> | undefined {
  const elementType = r.byte();
  const count = r.containerSize(elementType);
  if (elementType !== T.STRUCT || count === 0) return OTHER_FORM;
  const { buf, end } = r;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  // The first stat's ids: fields 1–5, strings, in order.
  const idsFrom = r.pos;
  const ids: string[] = [];
  for (let id = 1; id <= 5; id++) {
    if (r.byte() !== T.STRING || r.i16() !== id) return OTHER_FORM;
    ids.push(r.string());
  }
  const idsBytes = r.pos - idsFrom;
  const { values, timestamps, descriptions } = columnArrays(count);
  const words = descriptionWords();
  let at = r.pos;
  for (let i = 0; i < count; i++) {
    if (i > 0) {
      if (at + idsBytes > end) return OTHER_FORM;
      for (let k = 0; k + 4 <= idsBytes; k += 4)
        if (view.getUint32(idsFrom + k) !== view.getUint32(at + k)) return OTHER_FORM;
      for (let k = idsBytes & ~3; k < idsBytes; k++) if (buf[idsFrom + k] !== buf[at + k]) return OTHER_FORM;
      at += idsBytes;
    }
    // Field 6, the description: one of the known ones.
    if (at + STAT_TAIL_BYTES > end || buf[at] !== T.STRING || buf[at + 1] !== 0 || buf[at + 2] !== 6) return OTHER_FORM;
    const size = view.getInt32(at + 3);
    at += 7;
    if (size <= 0 || size > end - at - (STAT_TAIL_BYTES - 7)) return OTHER_FORM;
    const description = knownDescription(words, view, buf, at, size);
    if (description < 0) return OTHER_FORM;
    descriptions[i] = description;
    at += size;
    // Fields 7 (double) and 8 (i64), then STOP.
    if (buf[at] !== T.DOUBLE || buf[at + 1] !== 0 || buf[at + 2] !== 7) return OTHER_FORM;
    const value = view.getFloat64(at + 3);
    at += 11;
    if (buf[at] !== T.I64 || buf[at + 1] !== 0 || buf[at + 2] !== 8) return OTHER_FORM;
    // A safe integer of at least 0: its high word is under 2^21.
    const high = view.getInt32(at + 3);
    if (high < 0 || high >= 0x200000) return OTHER_FORM;
    const timestamp = high * 4_294_967_296 + view.getUint32(at + 7);
    at += 11;
    if (buf[at] !== T.STOP) return OTHER_FORM;
    at += 1;
    // Finite: NaN and ±Infinity less themselves are NaN.
    if (value - value !== 0) return OTHER_FORM;
    values[i] = value;
    timestamps[i] = timestamp;
  }
  r.pos = at;
  return { ids: ids as ColumnsCall['ids'], descriptions, values, timestamps };
}

/** Reads a HealthStatBatch struct that fills `bytes`. Throws WireDecodeError. */
export function readBatchStruct(bytes: Buffer): WireBatch {
  const r = new Reader(bytes, 0, bytes.length);
  const batch = r.batch();
  if (r.pos !== bytes.length) throw new WireDecodeError(`${bytes.length - r.pos} bytes after the batch`);
  return batch;
}

class Writer {
  at = 4;

  constructor(readonly buf: Buffer) {}

  byte(value: number): void {
    this.at = this.buf.writeUInt8(value, this.at);
  }

  i16(value: number): void {
    this.at = this.buf.writeInt16BE(value, this.at);
  }

  i32(value: number): void {
    this.at = this.buf.writeInt32BE(value, this.at);
  }

  i64(value: number): void {
    if (Number.isSafeInteger(value) && value >= 0) {
      this.at = this.buf.writeUInt32BE(Math.floor(value / 4_294_967_296), this.at);
      this.at = this.buf.writeUInt32BE(value >>> 0, this.at);
    } else {
      this.at = this.buf.writeBigInt64BE(BigInt(Math.trunc(value)), this.at);
    }
  }

  string(text: string): void {
    const size = this.buf.write(text, this.at + 4, 'utf8');
    this.i32(size);
    this.at += size;
  }

  field(type: number, id: number): void {
    this.byte(type);
    this.i16(id);
  }

  /** The frame: its size first. */
  done(): Buffer {
    this.buf.writeInt32BE(this.at - 4, 0);
    return this.buf.subarray(0, this.at);
  }
}

/** Bytes of a reply's frame around its strings: size, header (27), fields and numbers (an ack's: 45). */
const REPLY_OVERHEAD = 96;

function replyWriter(type: number, seqid: number, strings: number): Writer {
  const w = new Writer(Buffer.allocUnsafe(REPLY_OVERHEAD + strings));
  w.i32(VERSION_1 | type);
  w.i32(PUBLISH_BYTES.length);
  w.at += PUBLISH_BYTES.copy(w.buf, w.at);
  w.i32(seqid);
  return w;
}

/** The framed reply of a `publish` call that succeeded. */
export function encodeAckReply(seqid: number, ack: BatchAck): Buffer {
  const w = replyWriter(MESSAGE_REPLY, seqid, Buffer.byteLength(ack.agentId, 'utf8'));
  w.field(T.STRUCT, 0); // the result's `success`
  w.field(T.STRING, 1);
  w.string(ack.agentId);
  w.field(T.I64, 2);
  w.i64(ack.sequence);
  w.field(T.BOOL, 3);
  w.byte(ack.duplicate ? 1 : 0);
  w.field(T.I64, 4);
  w.i64(ack.epoch);
  w.field(T.BOOL, 5);
  w.byte(ack.replicated ? 1 : 0);
  w.byte(T.STOP);
  w.byte(T.STOP);
  return w.done();
}

/**
 * The framed reply of a `publish` call that threw one of its declared
 * exceptions: NotActive (result field 1) or InvalidBatch (field 2).
 */
export function encodeExceptionReply(
  seqid: number,
  exception: { kind: 'NotActive'; message: string; nodeId?: string | null } | { kind: 'InvalidBatch'; message: string },
): Buffer {
  const nodeId = exception.kind === 'NotActive' ? exception.nodeId : undefined;
  const w = replyWriter(
    MESSAGE_REPLY,
    seqid,
    Buffer.byteLength(exception.message, 'utf8') + (nodeId ? Buffer.byteLength(nodeId, 'utf8') : 0),
  );
  w.field(T.STRUCT, exception.kind === 'NotActive' ? 1 : 2);
  w.field(T.STRING, 1);
  w.string(exception.message);
  if (nodeId !== undefined && nodeId !== null) {
    w.field(T.STRING, 2);
    w.string(nodeId);
  }
  w.byte(T.STOP);
  w.byte(T.STOP);
  return w.done();
}

/** The framed answer to a call that failed with an undeclared error (a TApplicationException of type UNKNOWN). */
export function encodeApplicationException(seqid: number, message: string): Buffer {
  const w = replyWriter(MESSAGE_EXCEPTION, seqid, Buffer.byteLength(message, 'utf8'));
  // As thrift writes it: an empty message and the type UNKNOWN (0) left out.
  if (message !== '') {
    w.field(T.STRING, 1);
    w.string(message);
  }
  w.byte(T.STOP);
  return w.done();
}
