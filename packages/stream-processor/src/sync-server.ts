import net from 'node:net';
import { type Logger, once } from '@faultline/core';
import { decodePublishCall, type HealthStatBatch, validateBatch } from '@faultline/protocol';
import { encodeFrame, FrameReader, RawBatch } from './framing.js';
import { type SnapshotMessage, syncMessageSchema } from './sync-messages.js';

export interface SyncServerOptions {
  host: string;
  port: number;
  maxFrameBytes: number;
  logger: Logger;
  /** Only a passive node takes a sync link. */
  accepting: () => boolean;
  onSnapshot: (snapshot: SnapshotMessage, from: string) => void;
  onBatch: (batch: HealthStatBatch) => void;
  onPublished: (ids: readonly string[]) => void;
}

export interface SyncServerCounters {
  links: number;
  violations: number;
  batchesApplied: number;
}

/**
 * The passive side of event sync: listens on the node's sync port, takes a
 * link from the active of the highest epoch it has seen, applies the snapshot
 * and then every batch in order, and acknowledges each. Anything malformed
 * closes that link and is counted; the server keeps listening.
 */
export class SyncServer {
  readonly counters: SyncServerCounters = { links: 0, violations: 0, batchesApplied: 0 };
  private readonly server: net.Server;
  private current: { socket: net.Socket; nodeId: string; epoch: number } | undefined;
  private highestEpoch = 0;
  private lastSeq = 0;

  constructor(private readonly options: SyncServerOptions) {
    this.server = net.createServer((socket) => this.accept(socket));
    this.server.on('error', (error) =>
      options.logger.error('sync server error', { event: 'sp.sync_server_error', error }),
    );
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', reject);
        resolve((this.server.address() as net.AddressInfo).port);
      });
    });
  }

  /** The active this node follows, if any. */
  get following(): { nodeId: string; epoch: number; lastSeq: number } | undefined {
    return this.current && { nodeId: this.current.nodeId, epoch: this.current.epoch, lastSeq: this.lastSeq };
  }

  /** Drops the link (this node became active). */
  drop(): void {
    this.current?.socket.destroy();
    this.current = undefined;
  }

  readonly close = once(async () => {
    this.drop();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  });

  /** Applies one batch and acknowledges it; acks of one turn of the event loop leave as one (they are cumulative). */
  private applied(socket: net.Socket, seq: number, batch: HealthStatBatch): void {
    this.options.onBatch(batch);
    this.counters.batchesApplied += 1;
    this.lastSeq = seq;
    if (this.ackPending) return;
    this.ackPending = true;
    setImmediate(() => {
      this.ackPending = false;
      if (this.current?.socket === socket) socket.write(encodeFrame({ t: 'ack', seq: this.lastSeq }));
    });
  }

  private ackPending = false;

  private accept(socket: net.Socket): void {
    const log = this.options.logger;
    socket.setNoDelay(true);
    socket.on('error', () => {});
    let peer: { nodeId: string; epoch: number } | undefined;
    const violation = (reason: string): void => {
      this.counters.violations += 1;
      log.warn('sync link closed: protocol violation', {
        event: 'sp.sync_violation',
        reason,
        from: peer?.nodeId ?? socket.remoteAddress,
      });
      socket.destroy();
    };
    const reader = new FrameReader(
      this.options.maxFrameBytes,
      (raw) => {
        if (raw instanceof RawBatch) {
          if (!peer || this.current?.socket !== socket) return violation('batch before hello');
          const batch = decodePublishCall(raw.call);
          if (!batch.ok) return violation(batch.error.message);
          this.applied(socket, raw.seq, batch.value);
          return;
        }
        const parsed = syncMessageSchema.safeParse(raw);
        if (!parsed.success) return violation(`invalid message: ${parsed.error.issues[0]?.message ?? 'unknown'}`);
        const message = parsed.data;
        if (message.t === 'hello') {
          if (!this.options.accepting()) return violation('this node is not passive');
          if (message.epoch < this.highestEpoch)
            return violation(`stale epoch ${message.epoch} < ${this.highestEpoch}`);
          this.current?.socket.destroy();
          this.highestEpoch = message.epoch;
          peer = { nodeId: message.nodeId, epoch: message.epoch };
          this.current = { socket, ...peer };
          this.counters.links += 1;
          log.info('following the active', {
            event: 'sp.following_active',
            active: message.nodeId,
            epoch: message.epoch,
          });
          return;
        }
        if (!peer || this.current?.socket !== socket) return violation(`${message.t} before hello`);
        switch (message.t) {
          case 'snapshot':
            this.options.onSnapshot(message, peer.nodeId);
            this.lastSeq = message.seq;
            socket.write(encodeFrame({ t: 'ack', seq: message.seq }));
            log.info('snapshot applied', { event: 'sp.snapshot_applied', from: peer.nodeId, seq: message.seq });
            return;
          case 'batch': {
            const batch = validateBatch(message.batch);
            if (!batch.ok) return violation(batch.error.message);
            this.applied(socket, message.seq, batch.value);
            return;
          }
          case 'published':
            this.options.onPublished(message.ids);
            return;
          case 'ack':
            return violation('unexpected ack');
        }
      },
      violation,
    );
    socket.on('data', (chunk: Buffer) => reader.push(chunk));
    socket.on('close', () => {
      if (this.current?.socket === socket) {
        this.current = undefined;
        log.warn('sync link from the active closed', { event: 'sp.sync_link_closed', active: peer?.nodeId });
      }
    });
  }
}
