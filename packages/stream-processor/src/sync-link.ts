import net from 'node:net';
import { boundLoggedText, type Clock, type Logger, RateLimitedLog, type TimerHandle } from '@faultline/core';
import type { Endpoint, HealthStatBatch } from '@faultline/protocol';
import type { DedupeState } from './batch-dedupe.js';
import { encodeFrame, encodeRawBatch, FrameReader } from './framing.js';
import { type HandshakeFacts, newNonce, syncProof, verifySyncProof } from './sync-auth.js';
import { type SyncMessage, syncMessageSchema } from './sync-messages.js';
import { PRE_LINK_FRAME_BYTES } from './sync-server.js';

export interface SyncLinkOptions {
  nodeId: string;
  maxFrameBytes: number;
  /** The shared secret of the pair (`security.syncKeyFile`). */
  key: Buffer;
  /** The passive must acknowledge within this, or the link is dropped (degraded). */
  ackTimeoutMs: number;
  /** The passive must authenticate and welcome the link within this of connecting, or it is dropped. */
  handshakeTimeoutMs: number;
  clock: Clock;
  logger: Logger;
  /** Taken synchronously when the link is welcomed; later batches apply on top of it. */
  snapshot: () => { engine: unknown; dedupe: DedupeState };
}

/** Detach reasons of this node's own making: not worth a log line while the link was still being set up. */
const QUIET_DETACH = new Set(['new passive', 'closing', 'stepping down']);

/** Output ids per `published` message (a summary tick of 10 000 members confirms some 60 000). */
const CONFIRMATIONS_PER_MESSAGE = 10_000;

export type LinkStatus = 'none' | 'connecting' | 'ready';

interface Pending {
  seq: number;
  sentAt: number;
  resolve: (replicated: boolean) => void;
}

/** Where the handshake of the link in progress stands (sync-auth.ts). */
type Handshake =
  | { step: 'challenge' }
  | { step: 'authenticated'; facts: HandshakeFacts }
  | { step: 'welcome' }
  | { step: 'done' };

/**
 * The active side of event sync: one TCP link to the passive. It answers the
 * passive's challenge, checks the passive's proof of the same secret, says
 * hello (node, epoch) and, once welcomed, sends the snapshot. `replicate()`
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
  private attachedAt = 0;
  private readonly refusals: RateLimitedLog;
  replicated = 0;
  degraded = 0;
  /** Passives that failed to prove the pair's secret (or proved it for another node than expected). */
  authFailures = 0;

  constructor(private readonly options: SyncLinkOptions) {
    this.refusals = new RateLimitedLog(options.logger, options.clock);
  }

  get peer(): string | undefined {
    return this.endpoint;
  }

  /** Batches sent but not yet acknowledged, and the age of the oldest. */
  lag(): { batches: number; oldestMs: number } {
    const oldest = this.pending[0];
    return { batches: this.pending.length, oldestMs: oldest ? this.options.clock.monotonicNow() - oldest.sentAt : 0 };
  }

  /**
   * Links to the passive at `endpoint` (`host:port`) unless already linked
   * there; `peerNodeId`, when given, is the node the passive must prove to be.
   */
  attach(endpoint: string, epoch: number, peerNodeId?: string): void {
    if (this.endpoint === endpoint && this.epoch === epoch && this.status !== 'none') return;
    this.detach('new passive');
    const { host, port } = parseEndpoint(endpoint);
    this.endpoint = endpoint;
    this.epoch = epoch;
    this.status = 'connecting';
    this.attachedAt = this.options.clock.monotonicNow();
    const socket = net.connect({ host, port });
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('error', () => {});
    socket.on('close', () => {
      if (this.socket === socket) this.detach('link closed');
    });
    let handshake: Handshake = { step: 'challenge' };
    const max = this.options.maxFrameBytes;
    const refuse = (code: string, reason: string): void => {
      this.authFailures += 1;
      this.refusals.warn(endpoint, code, 'passive failed to authenticate; link dropped', {
        event: 'sp.sync_peer_auth_failed',
        code,
        reason: boundLoggedText(reason),
      });
      this.detach(reason, true);
    };
    const onMessage = (message: SyncMessage): void => {
      switch (handshake.step) {
        case 'challenge': {
          if (message.t !== 'challenge') {
            this.detach(`${message.t} instead of a challenge`);
            return;
          }
          if (peerNodeId !== undefined && message.nodeId !== peerNodeId) {
            refuse('wrong_node', `the passive at ${endpoint} is ${message.nodeId}, not ${peerNodeId}`);
            return;
          }
          const facts: HandshakeFacts = {
            serverNonce: message.nonce,
            clientNonce: newNonce(),
            clientNodeId: this.options.nodeId,
            serverNodeId: message.nodeId,
          };
          const proof = syncProof(this.options.key, 'client', facts);
          // Handshake frames go whole, whatever maxFrameBytes: the passive takes nothing in parts before the welcome.
          socket.write(encodeFrame({ t: 'auth', nodeId: this.options.nodeId, nonce: facts.clientNonce, proof }));
          handshake = { step: 'authenticated', facts };
          return;
        }
        case 'authenticated':
          if (message.t !== 'authenticated') {
            this.detach(`${message.t} instead of the passive's proof`);
            return;
          }
          if (!verifySyncProof(this.options.key, 'server', handshake.facts, message.proof)) {
            refuse('bad_proof', `${handshake.facts.serverNodeId} proved no key of this pair`);
            return;
          }
          socket.write(encodeFrame({ t: 'hello', nodeId: this.options.nodeId, epoch }));
          handshake = { step: 'welcome' };
          return;
        case 'welcome': {
          if (message.t !== 'welcome' || message.epoch !== epoch) {
            this.detach(`${message.t} instead of the welcome under epoch ${epoch}`);
            return;
          }
          // The snapshot and the first batch after it leave in this order on one socket.
          const { engine, dedupe } = this.options.snapshot();
          socket.write(encodeFrame({ t: 'snapshot', seq: this.seq, engine, dedupe }, max));
          handshake = { step: 'done' };
          reader.limit(max, 0);
          this.status = 'ready';
          this.options.logger.info('passive linked', { event: 'sp.passive_linked', passive: endpoint, epoch });
          return;
        }
        case 'done':
          if (message.t === 'ack') this.acknowledge(message.seq);
          else this.detach(`unexpected ${message.t} from the passive`);
      }
    };
    const reader = new FrameReader(
      PRE_LINK_FRAME_BYTES,
      (raw) => {
        if (this.socket !== socket) return;
        const message = syncMessageSchema.safeParse(raw);
        if (message.success) onMessage(message.data);
        else this.detach('unexpected message from the passive');
      },
      (reason) => this.detach(`protocol violation: ${reason}`),
      0,
    );
    socket.on('data', (chunk: Buffer) => reader.push(chunk));
    this.watchdog = this.options.clock.setInterval(
      () => {
        if (this.status === 'connecting') {
          const waited = this.options.clock.monotonicNow() - this.attachedAt;
          if (waited > this.options.handshakeTimeoutMs)
            this.detach(`not linked within ${this.options.handshakeTimeoutMs} ms`);
          return;
        }
        const { oldestMs } = this.lag();
        if (oldestMs > this.options.ackTimeoutMs)
          this.detach(`no acknowledgement within ${this.options.ackTimeoutMs} ms`);
      },
      Math.max(10, Math.floor(Math.min(this.options.ackTimeoutMs, this.options.handshakeTimeoutMs) / 4)),
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

  /** Drops the link; `logged`: the caller has logged why already. */
  detach(reason: string, logged = false): void {
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
    else if (was === 'connecting' && !logged && !QUIET_DETACH.has(reason))
      this.refusals.warn(this.endpoint, 'link_failed', 'passive not linked; retrying at the next heartbeat', {
        event: 'sp.passive_link_failed',
        reason: boundLoggedText(reason),
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
