import net from 'node:net';
import type { Clock, Logger, TimerHandle } from '@faultline/core';
import type { Endpoint, HealthStatBatch } from '@faultline/protocol';
import type { DedupeState } from './batch-dedupe.js';
import { encodeFrame, encodeRawBatch, FrameReader } from './framing.js';
import { syncMessageSchema } from './sync-messages.js';

export interface SyncLinkOptions {
  nodeId: string;
  maxFrameBytes: number;
  /** The passive must acknowledge within this, or the link is dropped (degraded). */
  ackTimeoutMs: number;
  clock: Clock;
  logger: Logger;
  /** Taken synchronously when the link opens; later batches apply on top of it. */
  snapshot: () => { engine: unknown; dedupe: DedupeState };
}

/** Output ids per `published` message (a summary tick of 10 000 members confirms some 60 000). */
const CONFIRMATIONS_PER_MESSAGE = 10_000;

export type LinkStatus = 'none' | 'connecting' | 'ready';

interface Pending {
  seq: number;
  sentAt: number;
  resolve: (replicated: boolean) => void;
}

/**
 * The active side of event sync: one TCP link to the passive. `replicate()`
 * resolves true once the passive acknowledged the batch (it holds it), false
 * when there is no passive or it failed to acknowledge in time; the link is
 * then dropped and rebuilt from a fresh snapshot, so the passive never holds
 * a state with a hole in it.
 */
export class SyncLink {
  status: LinkStatus = 'none';
  private socket: net.Socket | undefined;
  private endpoint: string | undefined;
  private epoch = 0;
  private seq = 0;
  private pending: Pending[] = [];
  private watchdog: TimerHandle | undefined;
  replicated = 0;
  degraded = 0;

  constructor(private readonly options: SyncLinkOptions) {}

  get peer(): string | undefined {
    return this.endpoint;
  }

  /** Batches sent but not yet acknowledged, and the age of the oldest. */
  lag(): { batches: number; oldestMs: number } {
    const oldest = this.pending[0];
    return { batches: this.pending.length, oldestMs: oldest ? this.options.clock.monotonicNow() - oldest.sentAt : 0 };
  }

  /** Links to the passive at `endpoint` (`host:port`) unless already linked there. */
  attach(endpoint: string, epoch: number): void {
    if (this.endpoint === endpoint && this.epoch === epoch && this.status !== 'none') return;
    this.detach('new passive');
    const { host, port } = parseEndpoint(endpoint);
    this.endpoint = endpoint;
    this.epoch = epoch;
    this.status = 'connecting';
    const socket = net.connect({ host, port });
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('error', () => {});
    socket.on('close', () => {
      if (this.socket === socket) this.detach('link closed');
    });
    socket.on('connect', () => {
      if (this.socket !== socket) return;
      // Snapshot and the first batch after it leave in this order on one socket.
      const { engine, dedupe } = this.options.snapshot();
      const max = this.options.maxFrameBytes;
      socket.write(encodeFrame({ t: 'hello', nodeId: this.options.nodeId, epoch }, max));
      socket.write(encodeFrame({ t: 'snapshot', seq: this.seq, engine, dedupe }, max));
      this.status = 'ready';
      this.options.logger.info('passive linked', { event: 'sp.passive_linked', passive: endpoint, epoch });
    });
    const reader = new FrameReader(
      this.options.maxFrameBytes,
      (raw) => {
        const message = syncMessageSchema.safeParse(raw);
        if (message.success && message.data.t === 'ack') this.acknowledge(message.data.seq);
        else this.detach('unexpected message from the passive');
      },
      (reason) => this.detach(`protocol violation: ${reason}`),
    );
    socket.on('data', (chunk: Buffer) => reader.push(chunk));
    this.watchdog = this.options.clock.setInterval(
      () => {
        const { oldestMs } = this.lag();
        if (oldestMs > this.options.ackTimeoutMs)
          this.detach(`no acknowledgement within ${this.options.ackTimeoutMs} ms`);
      },
      Math.max(10, Math.floor(this.options.ackTimeoutMs / 4)),
    );
  }

  /**
   * Forwards a batch — as the raw Thrift call when there is one, else as
   * JSON — and resolves whether the passive holds it.
   */
  replicate(batch: HealthStatBatch, call?: Buffer): Promise<boolean> {
    const socket = this.socket;
    if (this.status !== 'ready' || !socket) {
      this.degraded += 1;
      return Promise.resolve(false);
    }
    this.seq += 1;
    const seq = this.seq;
    // Batches accepted in the same turn of the event loop leave in one write.
    if (!socket.writableCorked) {
      socket.cork();
      process.nextTick(() => socket.uncork());
    }
    socket.write(
      call ? encodeRawBatch(seq, call) : encodeFrame({ t: 'batch', seq, batch }, this.options.maxFrameBytes),
    );
    return new Promise((resolve) => {
      this.pending.push({ seq, sentAt: this.options.clock.monotonicNow(), resolve });
    });
  }

  private confirmed: string[] = [];

  /** Tells the passive these outputs are published; sent once per turn of the event loop. */
  confirm(ids: readonly string[]): void {
    if (this.status !== 'ready' || ids.length === 0) return;
    if (this.confirmed.length === 0) {
      process.nextTick(() => {
        const ids = this.confirmed;
        this.confirmed = [];
        if (this.status !== 'ready' || !this.socket) return;
        for (let at = 0; at < ids.length; at += CONFIRMATIONS_PER_MESSAGE) {
          const message = { t: 'published', ids: ids.slice(at, at + CONFIRMATIONS_PER_MESSAGE) };
          this.socket.write(encodeFrame(message, this.options.maxFrameBytes));
        }
      });
    }
    for (const id of ids) this.confirmed.push(id);
  }

  detach(reason: string): void {
    const socket = this.socket;
    const was = this.status;
    this.socket = undefined;
    this.status = 'none';
    this.options.clock.clearInterval(this.watchdog);
    this.watchdog = undefined;
    socket?.destroy();
    const failed = this.pending;
    this.pending = [];
    this.degraded += failed.length;
    for (const p of failed) p.resolve(false);
    if (was === 'ready')
      this.options.logger.warn('passive unlinked; acknowledging without replication', {
        event: 'sp.passive_unlinked',
        passive: this.endpoint,
        reason,
      });
    this.endpoint = undefined;
  }

  private acknowledge(seq: number): void {
    let n = 0;
    while (n < this.pending.length && (this.pending[n] as Pending).seq <= seq) n += 1;
    const done = this.pending.splice(0, n);
    this.replicated += done.length;
    for (const p of done) p.resolve(true);
  }
}

/** `host:port` as the node rows carry it (the host may hold colons: an IPv6 address). */
function parseEndpoint(endpoint: string): Endpoint {
  const at = endpoint.lastIndexOf(':');
  return { host: endpoint.slice(0, at), port: Number(endpoint.slice(at + 1)) };
}
