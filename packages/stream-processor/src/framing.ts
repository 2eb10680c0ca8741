/**
 * Length-prefixed JSON frames for the event-sync link between the two SP
 * nodes: a 4-byte big-endian length, then that many bytes of UTF-8 JSON.
 * A frame larger than `maxFrameBytes`, or one that is not JSON, is a
 * protocol violation: the reader reports it and the caller drops the link.
 */
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
