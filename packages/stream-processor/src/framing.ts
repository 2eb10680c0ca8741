/**
 * Length-prefixed frames for the event-sync link between the two SP nodes:
 * a 4-byte big-endian length, then either UTF-8 JSON (it starts with `{`) or
 * a raw batch: 0x01, the link sequence and the receive time as float64, and
 * the agent's Thrift `publish` call exactly as it arrived — forwarding those
 * bytes spares the active a re-encoding of every batch (the largest cost
 * after decoding). A frame larger than `maxFrameBytes`, or one that is
 * neither, is a protocol violation: the reader reports it and the caller
 * drops the link.
 */
const RAW_BATCH = 0x01;

export class RawBatch {
  constructor(
    readonly seq: number,
    readonly receivedAt: number,
    readonly call: Buffer,
  ) {}
}

export function encodeRawBatch(seq: number, receivedAt: number, call: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(4 + 17 + call.length);
  frame.writeUInt32BE(17 + call.length, 0);
  frame[4] = RAW_BATCH;
  frame.writeDoubleBE(seq, 5);
  frame.writeDoubleBE(receivedAt, 13);
  call.copy(frame, 21);
  return frame;
}

export function encodeFrame(message: unknown): Buffer {
  const json = JSON.stringify(message);
  const length = Buffer.byteLength(json, 'utf8');
  const frame = Buffer.allocUnsafe(4 + length);
  frame.writeUInt32BE(length, 0);
  frame.write(json, 4, 'utf8');
  return frame;
}

export class FrameReader {
  private buffer: Buffer = Buffer.alloc(0);

  constructor(
    private readonly maxFrameBytes: number,
    private readonly onMessage: (message: unknown) => void,
    private readonly onViolation: (reason: string) => void,
  ) {}

  /** Feeds bytes from the socket; calls back once per complete frame. */
  push(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    while (this.buffer.length >= 4) {
      const length = this.buffer.readUInt32BE(0);
      if (length > this.maxFrameBytes) {
        this.buffer = Buffer.alloc(0);
        this.onViolation(`frame of ${length} bytes exceeds ${this.maxFrameBytes}`);
        return;
      }
      if (this.buffer.length < 4 + length) return;
      const body = this.buffer.subarray(4, 4 + length);
      this.buffer = this.buffer.subarray(4 + length);
      if (body[0] === RAW_BATCH && body.length >= 17) {
        this.onMessage(new RawBatch(body.readDoubleBE(1), body.readDoubleBE(9), body.subarray(17)));
        continue;
      }
      let message: unknown;
      try {
        message = JSON.parse(body.toString('utf8'));
      } catch {
        this.buffer = Buffer.alloc(0);
        this.onViolation('frame is not JSON');
        return;
      }
      this.onMessage(message);
    }
  }
}
