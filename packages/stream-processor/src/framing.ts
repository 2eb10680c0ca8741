import { ConfigError } from '@faultline/core';
import { type AnyBatch, encodeCheckedBatch } from '@faultline/protocol';

/**
 * Length-prefixed frames for the event-sync link between the two SP nodes:
 * a 4-byte big-endian length, then either UTF-8 JSON (it starts with `{`),
 * a checked batch: 0x04, the link sequence as float64, and the batch the
 * active accepted in the compact form of `encodeCheckedBatch` (what the
 * active forwards: the passive reads it at a fraction of what decoding the
 * agent's Thrift call again cost, and the link carries a seventh of the
 * bytes), or a raw batch: 0x01, the link sequence, and the agent's Thrift
 * `publish` call as it arrived (what an active of the previous release
 * forwards; still read, never sent). A JSON message longer than one frame (the snapshot of a large state, the
 * confirmations of a large tick) travels as parts: frames of 0x02 and a slice
 * of its bytes, the last one 0x03; the reader joins them, up to
 * `maxMessageBytes`. A frame larger than `maxFrameBytes`, a message larger
 * than `maxMessageBytes`, or a frame that is none of these is a protocol
 * violation: the reader reports it, reads nothing more, and the caller drops
 * the link. The sync server tightens both bounds (`limit()`) until a peer is
 * linked: small frames, nothing in parts.
 */
const RAW_BATCH = 0x01;
const PART = 0x02;
const LAST_PART = 0x03;
const CHECKED_BATCH = 0x04;
/** The default bound of a message in parts: the snapshot of some 400 000 members. */
export const DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024 * 1024;

/** The bytes of a raw or checked batch's body before the batch: the kind and the link sequence. */
const RAW_BATCH_HEADER = 9;

export class RawBatch {
  constructor(
    readonly seq: number,
    readonly call: Buffer,
  ) {}
}

/** A checked batch as it arrived: `bytes` are for `decodeCheckedBatch`. */
export class CheckedBatch {
  constructor(
    readonly seq: number,
    readonly bytes: Buffer,
  ) {}
}

/** The whole frame of a checked batch: one buffer, the batch encoded behind its header. */
export function encodeCheckedBatchFrame(seq: number, batch: AnyBatch): Buffer {
  const frame = encodeCheckedBatch(batch, 4 + RAW_BATCH_HEADER);
  frame.writeUInt32BE(frame.length - 4, 0);
  frame[4] = CHECKED_BATCH;
  frame.writeDoubleBE(seq, 5);
  return frame;
}

/** A raw batch's whole frame (what an active of the previous release forwards; tests send it). */
export function encodeRawBatch(seq: number, call: Buffer): Buffer {
  const header = Buffer.allocUnsafe(4 + RAW_BATCH_HEADER);
  header.writeUInt32BE(RAW_BATCH_HEADER + call.length, 0);
  header[4] = RAW_BATCH;
  header.writeDoubleBE(seq, 5);
  return Buffer.concat([header, call]);
}

/** One frame of JSON, or its parts when it is longer than `maxFrameBytes`. */
export function encodeFrame(message: unknown, maxFrameBytes = Number.POSITIVE_INFINITY): Buffer {
  const text = JSON.stringify(message);
  const length = Buffer.byteLength(text, 'utf8');
  if (length <= maxFrameBytes) {
    const frame = Buffer.allocUnsafe(4 + length);
    frame.writeUInt32BE(length, 0);
    frame.write(text, 4, 'utf8');
    return frame;
  }
  const json = Buffer.from(text, 'utf8');
  const slice = maxFrameBytes - 1;
  if (slice < 1) throw ConfigError.forKey('maxFrameBytes', `must be at least 2, got ${maxFrameBytes}`);
  const parts: Buffer[] = [];
  for (let at = 0; at < json.length; at += slice) {
    const body = json.subarray(at, at + slice);
    const header = Buffer.allocUnsafe(5);
    header.writeUInt32BE(1 + body.length, 0);
    header[4] = at + slice >= json.length ? LAST_PART : PART;
    parts.push(header, body);
  }
  return Buffer.concat(parts);
}

export class FrameReader {
  private buffer: Buffer = Buffer.alloc(0);
  private parts: Buffer[] = [];
  private partBytes = 0;
  private stopped = false;

  constructor(
    private maxFrameBytes: number,
    private readonly onMessage: (message: unknown) => void,
    private readonly onViolation: (reason: string) => void,
    private maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES,
  ) {}

  /**
   * New bounds for the frames still to come, the ones already buffered
   * included. A `maxMessageBytes` of 0 refuses messages in parts outright
   * (the sync server's bound until a link is established: nothing is
   * buffered for a peer that has not authenticated).
   */
  limit(maxFrameBytes: number, maxMessageBytes: number): void {
    this.maxFrameBytes = maxFrameBytes;
    this.maxMessageBytes = maxMessageBytes;
  }

  /** Drops what is buffered and ignores every later byte (the caller closes the connection). */
  stop(): void {
    this.stopped = true;
    this.buffer = Buffer.alloc(0);
    this.parts = [];
    this.partBytes = 0;
  }

  /** Feeds bytes from the socket; calls back once per complete message. */
  push(chunk: Buffer): void {
    if (this.stopped) return;
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    while (this.buffer.length >= 4 && !this.stopped) {
      const length = this.buffer.readUInt32BE(0);
      if (length > this.maxFrameBytes) {
        this.violation(`frame of ${length} bytes exceeds ${this.maxFrameBytes}`);
        return;
      }
      if (this.buffer.length < 4 + length) return;
      let body = this.buffer.subarray(4, 4 + length);
      this.buffer = this.buffer.subarray(4 + length);
      const kind = body[0];
      if (kind === PART || kind === LAST_PART) {
        if (this.maxMessageBytes === 0) {
          this.violation('a message in parts is not accepted here');
          return;
        }
        // The kind byte counts too: empty parts cannot pile up for free.
        this.partBytes += body.length;
        if (this.partBytes > this.maxMessageBytes) {
          this.violation(`message of more than ${this.maxMessageBytes} bytes`);
          return;
        }
        this.parts.push(body.subarray(1));
        if (kind === PART) continue;
        body = Buffer.concat(this.parts);
        this.parts = [];
        this.partBytes = 0;
      } else if (this.parts.length > 0) {
        this.violation('a frame inside a message in parts');
        return;
      } else if (kind === CHECKED_BATCH && body.length >= RAW_BATCH_HEADER) {
        this.onMessage(new CheckedBatch(body.readDoubleBE(1), body.subarray(RAW_BATCH_HEADER)));
        continue;
      } else if (kind === RAW_BATCH && body.length >= RAW_BATCH_HEADER) {
        this.onMessage(new RawBatch(body.readDoubleBE(1), body.subarray(RAW_BATCH_HEADER)));
        continue;
      }
      let message: unknown;
      try {
        message = JSON.parse(body.toString('utf8'));
      } catch {
        this.violation('frame is not JSON');
        return;
      }
      this.onMessage(message);
    }
  }

  private violation(reason: string): void {
    this.stop();
    this.onViolation(reason);
  }
}
