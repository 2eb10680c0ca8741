import net from 'node:net';
import { boundLoggedText, type Clock, type Logger, RateLimitedLog, type TimerHandle } from '@faultline/core';
import { type AnyBatch, batchOf, type Endpoint } from '@faultline/protocol';
import { encodeCheckedBatchFrame, encodeFrame, FrameReader } from './framing.js';
import type { SnapshotStream } from './snapshot-stream.js';
import { type HandshakeFacts, newNonce, syncProof, verifySyncProof } from './sync-auth.js';
import { MAX_CHUNK_ITEMS, type SyncMessage, syncMessageSchema } from './sync-messages.js';
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
  /** Started when the link is welcomed: its header at once, its chunks one per turn of the event loop. */
  snapshot: () => SnapshotStream;
}

/** Chunks of the snapshot sent ahead of the passive's acknowledgements: enough to keep both busy, no more. */
const SNAPSHOT_WINDOW = 4;
/** What one chunk may cost the active to encode and write: the adaptive chunk size aims at it. */
const CHUNK_TARGET_MS = 8;
/** And about this many bytes. */
const CHUNK_TARGET_BYTES = 1024 * 1024;
const MIN_CHUNK_ITEMS = 16;
const FIRST_CHUNK_ITEMS = 256;

/** A snapshot being streamed to the passive of the current link. */
interface Streaming {
  socket: net.Socket;
  stream: SnapshotStream;
  /** Chunks written, and acknowledged by the passive. */
  sent: number;
  acked: number;
  /** Each chunk not yet acknowledged, oldest first: when it was written, and the link sequence then. */
  unacked: { at: number; seq: number }[];
  /** Members (or agents) per chunk, adapted to CHUNK_TARGET_MS at both ends. */
  items: number;
  /** What the last chunk carried: a switch (dedupe agents, then members) starts the sizing over. */
  kind: 'dedupe' | 'engine' | undefined;
  /** How long the passive took to acknowledge the last chunk acknowledged (ms), behind at most a window of others. */
  lastAnswerMs: number;
  /** The last chunk went (and the end); waiting for the passive to acknowledge the rest. */
  done: boolean;
  startedAt: number;
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
 * hello (node, epoch) and, once welcomed, streams the snapshot: its header,
 * then chunks one turn of the event loop at a time, a few ahead of the
 * passive's acknowledgements, with the batches accepted meanwhile between
 * them (snapshot-stream.ts). `replicate()`
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
          // The header, then every batch accepted from now on, with the chunks between them, on one socket.
          const stream = this.options.snapshot();
          const { engine, agents } = stream.header;
          socket.write(encodeFrame({ t: 'snapshot-begin', seq: this.seq, engine, agents }, max));
          handshake = { step: 'done' };
          reader.limit(max, 0);
          this.status = 'ready';
          const now = this.options.clock.monotonicNow();
          this.streaming = {
            socket,
            stream,
            sent: 0,
            acked: 0,
            unacked: [],
            items: FIRST_CHUNK_ITEMS,
            kind: undefined,
            lastAnswerMs: 0,
            done: false,
            startedAt: now,
          };
          this.lastProgressAt = now;
          this.scheduleChunk();
          this.options.logger.info('passive linked', { event: 'sp.passive_linked', passive: endpoint, epoch });
          return;
        }
        case 'done':
          if (message.t === 'ack') this.acknowledge(message.seq);
          else if (message.t === 'snapshot-ack') this.chunkAcknowledged(message.n);
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
        if (this.streaming) {
          // A batch may wait behind the chunks before it: what counts is that the passive keeps answering.
          const stalled = this.stalledMs();
          if (stalled > this.options.ackTimeoutMs)
            this.detach(`the snapshot made no progress within ${this.options.ackTimeoutMs} ms`);
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
   * Forwards a batch in its checked form (framing.ts) and resolves whether
   * the passive holds it. That form is shorter than the agent's Thrift call
   * of the same batch, which fit a frame; should one not fit all the same, it
   * goes as JSON in parts rather than as a frame the passive must refuse. A
   * batch that cannot be encoded at all drops the link: the batch is in this
   * node's state already, and the next link's snapshot carries it.
   */
  replicate(batch: AnyBatch): Promise<boolean> {
    const socket = this.socket;
    if (this.status !== 'ready' || !socket) {
      this.degraded += 1;
      return Promise.resolve(false);
    }
    const seq = this.seq + 1;
    let frame: Buffer;
    try {
      frame = encodeCheckedBatchFrame(seq, batch);
      if (frame.length - 4 > this.options.maxFrameBytes)
        // JSON carries a batch as objects: typed arrays would not survive it.
        frame = encodeFrame({ t: 'batch', seq, batch: batchOf(batch) }, this.options.maxFrameBytes);
    } catch (error) {
      this.degraded += 1;
      this.detach(`a batch could not be encoded: ${error instanceof Error ? error.message : String(error)}`);
      return Promise.resolve(false);
    }
    this.seq = seq;
    // Batches accepted in the same pass of the event loop over its sockets leave in one write:
    // uncorked once every connection's frames read in that pass are taken (a write each cost a
    // syscall, which on loopback also carries the passive's side of the delivery).
    if (!socket.writableCorked) {
      socket.cork();
      setImmediate(() => socket.uncork());
    }
    socket.write(frame);
    return new Promise((resolve) => {
      this.pending.push({ seq, sentAt: this.options.clock.monotonicNow(), resolve });
    });
  }

  /**
   * Resolves once every batch forwarded so far is held by the passive (true),
   * or the link failed first (false). With none on its way: at once, true only
   * when the passive holds this node's state (linked, its snapshot through).
   * A batch resent while its first copy is on its way waits on this: the node
   * keeps no record per batch in flight (a map of them, and a key string made
   * per batch, were garbage that outlived scavenges).
   */
  settled(): Promise<boolean> {
    const last = this.pending.at(-1);
    if (!last) return Promise.resolve(this.status === 'ready' && this.streaming === undefined);
    return new Promise((resolve) => {
      const first = last.resolve;
      last.resolve = (replicated) => {
        first(replicated);
        resolve(replicated);
      };
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
    this.streaming = undefined;
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

  /** Whether a snapshot is being streamed to the passive (its chunks not all sent or not all acknowledged). */
  get snapshotInProgress(): boolean {
    return this.streaming !== undefined;
  }

  private streaming: Streaming | undefined;
  private chunkScheduled = false;
  /** Monotonic time the passive last acknowledged anything (a batch or a chunk). */
  private lastProgressAt = 0;

  /** How long the passive has kept the oldest thing it owes an answer for, or answered nothing since. */
  private stalledMs(): number {
    const s = this.streaming;
    const oldestChunk = s?.unacked[0]?.at ?? Number.POSITIVE_INFINITY;
    const oldestBatch = this.pending[0]?.sentAt ?? Number.POSITIVE_INFINITY;
    const waitingSince = Math.min(oldestChunk, oldestBatch);
    if (waitingSince === Number.POSITIVE_INFINITY) return 0;
    return this.options.clock.monotonicNow() - Math.max(waitingSince, this.lastProgressAt);
  }

  /** The next chunk goes in a turn of the event loop of its own: batches and acks run between chunks. */
  private scheduleChunk(): void {
    if (this.chunkScheduled) return;
    this.chunkScheduled = true;
    setImmediate(() => {
      this.chunkScheduled = false;
      this.sendChunk();
    });
  }

  private sendChunk(): void {
    const s = this.streaming;
    if (!s || s.socket !== this.socket || this.status !== 'ready' || s.done) return;
    if (s.sent - s.acked >= SNAPSHOT_WINDOW) return; // the next acknowledgement schedules it
    const clock = this.options.clock;
    const started = clock.monotonicNow();
    // Agents are cheap to make and apply, members are not: what the sizing learnt of one says nothing of the
    // other, so the first chunk of members is sized afresh.
    const kind = s.stream.phase;
    if (s.kind !== undefined && kind !== s.kind) s.items = FIRST_CHUNK_ITEMS;
    s.kind = kind;
    const chunk = s.stream.next(s.items);
    if (chunk === undefined) {
      s.done = true;
      s.socket.write(encodeFrame({ t: 'snapshot-end', chunks: s.sent }, this.options.maxFrameBytes));
      this.finishSnapshot(s);
      return;
    }
    s.sent += 1;
    s.unacked.push({ at: started, seq: this.seq });
    const frame = encodeFrame({ t: 'snapshot-chunk', n: s.sent, ...chunk }, this.options.maxFrameBytes);
    s.socket.write(frame);
    // Sized by what it cost to make, by its bytes (a fake clock, or members with many samples), and by how
    // fast the passive answers.
    const took = clock.monotonicNow() - started;
    const answeredQuickly = s.lastAnswerMs <= SNAPSHOT_WINDOW * CHUNK_TARGET_MS * 2;
    if (took > CHUNK_TARGET_MS * 2 || frame.length > 2 * CHUNK_TARGET_BYTES)
      s.items = Math.max(MIN_CHUNK_ITEMS, Math.floor(s.items / 2));
    else if (took < CHUNK_TARGET_MS / 2 && frame.length < CHUNK_TARGET_BYTES / 2 && answeredQuickly)
      s.items = Math.min(MAX_CHUNK_ITEMS, s.items * 2);
    this.scheduleChunk();
  }

  private chunkAcknowledged(n: number): void {
    const s = this.streaming;
    if (!s) return; // a late acknowledgement of a snapshot this link finished
    if (n > s.sent || n <= s.acked) {
      this.detach(`acknowledgement of chunk ${n}, ${s.acked + 1}–${s.sent} outstanding`);
      return;
    }
    const now = this.options.clock.monotonicNow();
    const sentAt = (s.unacked[n - s.acked - 1] as { at: number }).at;
    s.unacked.splice(0, n - s.acked);
    s.acked = n;
    s.lastAnswerMs = now - sentAt;
    this.lastProgressAt = now;
    // The passive may apply slower than this node encodes (a busier or smaller machine): a chunk that took
    // it long to answer, behind at most a window of others, makes the chunks smaller.
    if (s.lastAnswerMs > SNAPSHOT_WINDOW * CHUNK_TARGET_MS * 4)
      s.items = Math.max(MIN_CHUNK_ITEMS, Math.floor(s.items / 2));

    if (s.done) this.finishSnapshot(s);
    else this.scheduleChunk();
  }

  /** The snapshot is over for the active once its end is written and every chunk acknowledged. */
  private finishSnapshot(s: Streaming): void {
    if (!s.done || s.acked < s.sent || this.streaming !== s) return;
    this.streaming = undefined;
    // Batches that waited behind the chunks are timed from the passive's last answer, not from when they went.
    for (const p of this.pending) if (p.sentAt < this.lastProgressAt) p.sentAt = this.lastProgressAt;
    this.options.logger.info('snapshot streamed to the passive', {
      event: 'sp.snapshot_sent',
      passive: this.endpoint,
      chunks: s.sent,
      ms: Math.round(this.options.clock.monotonicNow() - s.startedAt),
    });
  }

  private acknowledge(seq: number): void {
    // The passive applies in order: a batch sent after a chunk cannot be applied before the chunk.
    const oldestChunk = this.streaming?.unacked[0];
    if (oldestChunk && seq > oldestChunk.seq) {
      this.detach(`the passive acknowledged batch ${seq} before chunk ${(this.streaming as Streaming).acked + 1}`);
      return;
    }
    this.lastProgressAt = this.options.clock.monotonicNow();
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
