import net from 'node:net';
import { boundLoggedText, type Clock, type Logger, once, RateLimitedLog, type TimerHandle } from '@faultline/core';
import { type AnyBatch, decodeCheckedBatch, decodePublishCall, validateBatch } from '@faultline/protocol';
import { CheckedBatch, DEFAULT_MAX_MESSAGE_BYTES, encodeFrame, FrameReader, RawBatch } from './framing.js';
import { type HandshakeFacts, newNonce, syncProof, verifySyncProof } from './sync-auth.js';
import {
  type SnapshotBeginMessage,
  type SnapshotChunkMessage,
  type SnapshotMessage,
  type SyncMessage,
  syncMessageSchema,
} from './sync-messages.js';

/** Largest message in parts once a link streams its snapshot (a chunk is about a megabyte). */
export const STREAMED_MAX_MESSAGE_BYTES = 32 * 1024 * 1024;

/** Largest frame a peer may send before its link is established (the handshake and the hello are far smaller). */
export const PRE_LINK_FRAME_BYTES = 1_024;

/** The lease as the database says it: who holds it, under which epoch. */
export interface LeaseHolder {
  nodeId: string;
  epoch: number;
}

export interface SyncServerOptions {
  /** This node: named in the challenge, covered by both proofs. */
  nodeId: string;
  host: string;
  port: number;
  maxFrameBytes: number;
  /** The shared secret of the pair (`security.syncKeyFile`). */
  key: Buffer;
  /** A peer must be linked (authenticated, hello accepted) within this of connecting. */
  handshakeTimeoutMs: number;
  /** Connections not yet linked; one more closes the oldest of them (the unauthenticated first). */
  maxPendingConnections: number;
  clock: Clock;
  logger: Logger;
  /** Only a passive node takes a sync link. */
  accepting: () => boolean;
  /** The lease holder and epoch in the database, read when a hello arrives; a hello must name exactly these. */
  leaseHolder: () => Promise<LeaseHolder | undefined>;
  /** Applies a snapshot sent in one piece (an older active); throws (nothing applied) when it is malformed. */
  onSnapshot: (snapshot: SnapshotMessage, from: string) => void;
  /** A streamed snapshot starts: the state becomes its header's; throws when the header is malformed. */
  onSnapshotBegin: (begin: SnapshotBeginMessage, from: string) => void;
  /** One chunk of it; throws (none of the chunk applied) when malformed. */
  onSnapshotChunk: (chunk: SnapshotChunkMessage) => void;
  /** The streamed snapshot is whole. */
  onSnapshotEnd: (chunks: number) => void;
  onBatch: (batch: AnyBatch) => void;
  onPublished: (ids: readonly string[]) => void;
}

export interface SyncServerCounters {
  /** Links taken (a hello accepted). */
  links: number;
  /** Connections closed for breaking the protocol: junk, oversized or out-of-order frames, a bad snapshot or batch. */
  violations: number;
  batchesApplied: number;
  /** Connections that did not authenticate: no proof, a wrong one, none within the deadline. */
  authFailures: number;
  /** Hellos of authenticated peers refused: not passive, an epoch other than the lease's, a stale epoch. */
  hellosRefused: number;
  /** Connections closed because too many were waiting for their handshake. */
  connectionsRefused: number;
}

type Stage = 'auth' | 'hello' | 'checking' | 'linked';

/** The last link this node took as passive (see SyncServer.followed). */
export interface Followed {
  nodeId: string;
  epoch: number;
  /** The link's snapshot was applied: this node's engine had that active's state. */
  synced: boolean;
  /** Monotonic time the link ended (its socket closed, or this node ended it); undefined while it lasts. */
  endedAt: number | undefined;
  /**
   * Monotonic time the last message arrived on the link (the link itself
   * before any). A link that dies silently (a partition) never closes, so
   * `endedAt` cannot tell how long this node heard nothing; this can.
   */
  lastMessageAt: number;
}

/** Which counter a refusal goes to, and the log record it makes. */
type RefusalKind = 'violation' | 'auth' | 'hello' | 'cap';

const REFUSAL_EVENTS: Record<RefusalKind, { event: string; message: string }> = {
  violation: { event: 'sp.sync_violation', message: 'sync link closed: protocol violation' },
  auth: { event: 'sp.sync_auth_failed', message: 'sync connection closed: authentication failed' },
  hello: { event: 'sp.sync_hello_refused', message: 'sync hello refused' },
  cap: { event: 'sp.sync_connection_refused', message: 'sync connection closed: too many waiting' },
};

interface Connection {
  socket: net.Socket;
  /** The remote address (a peer's key in the rate-limited log before it names itself). */
  address: string;
  stage: Stage;
  nonce: string;
  /** The node id the peer authenticated as. */
  peerId?: string;
  epoch?: number;
  reader: FrameReader;
  deadline: TimerHandle | undefined;
  closed: boolean;
  /** The link's snapshot: not begun, streaming (the next chunk expected), or applied. */
  snapshot: { stage: 'none' } | { stage: 'streaming'; next: number; startedAt: number } | { stage: 'applied' };
}

/**
 * The passive side of event sync: listens on the node's sync port and takes
 * a link only from a peer that proves it holds the pair's secret
 * (sync-auth.ts) and then names, in its hello, the lease holder and epoch
 * the database has right now. Until then a connection may send one frame of
 * at most PRE_LINK_FRAME_BYTES per step and nothing in parts; it must be
 * linked within `handshakeTimeoutMs`, and at most `maxPendingConnections`
 * wait at once. Once linked it applies the snapshot and then every batch in
 * order, and acknowledges each. Anything malformed or out of turn closes
 * that connection and is counted and logged (rate-limited); the server keeps
 * listening and the current link keeps running.
 */
export class SyncServer {
  readonly counters: SyncServerCounters = {
    links: 0,
    violations: 0,
    batchesApplied: 0,
    authFailures: 0,
    hellosRefused: 0,
    connectionsRefused: 0,
  };
  private readonly server: net.Server;
  private readonly refusals: RateLimitedLog;
  /** Connections not yet linked, oldest first. */
  private readonly pending = new Set<Connection>();
  private current: Connection | undefined;
  /** The last link taken, until another is. */
  private followedLink: (Followed & { connection: Connection }) | undefined;
  private highestEpoch = 0;
  private lastSeq = 0;
  private closing = false;

  constructor(private readonly options: SyncServerOptions) {
    this.refusals = new RateLimitedLog(options.logger, options.clock);
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

  /** The active this node follows, if any; `synced` once its snapshot is applied (the live stream follows). */
  get following(): { nodeId: string; epoch: number; lastSeq: number; synced: boolean } | undefined {
    const current = this.current;
    const synced = this.followedLink?.connection === current && this.followedLink?.synced === true;
    return (
      current && { nodeId: current.peerId as string, epoch: current.epoch as number, lastSeq: this.lastSeq, synced }
    );
  }

  /**
   * The last link this node took (the active, its epoch, whether its
   * snapshot was applied, when the link ended): the node's engine state is
   * that active's up to then.
   */
  get followed(): Followed | undefined {
    const link = this.followedLink;
    return (
      link && {
        nodeId: link.nodeId,
        epoch: link.epoch,
        synced: link.synced,
        endedAt: link.endedAt,
        lastMessageAt: link.lastMessageAt,
      }
    );
  }

  /** Connections waiting for their handshake. */
  get waiting(): number {
    return this.pending.size;
  }

  /** Drops the link (this node became active). */
  drop(): void {
    const current = this.current;
    this.current = undefined;
    if (current) this.end(current);
  }

  readonly close = once(async () => {
    this.closing = true;
    this.drop();
    for (const connection of [...this.pending]) this.end(connection);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  });

  private accept(socket: net.Socket): void {
    socket.setNoDelay(true);
    socket.on('error', () => {});
    if (this.closing) {
      socket.destroy();
      return;
    }
    const connection: Connection = {
      socket,
      address: socket.remoteAddress ?? 'unknown',
      stage: 'auth',
      nonce: newNonce(),
      reader: undefined as unknown as FrameReader,
      deadline: undefined,
      closed: false,
      snapshot: { stage: 'none' },
    };
    connection.reader = new FrameReader(
      PRE_LINK_FRAME_BYTES,
      (raw) => this.receive(connection, raw),
      (reason) => this.refuse(connection, 'violation', 'bad_frame', reason),
      0,
    );
    if (this.pending.size >= this.options.maxPendingConnections) this.evictOne();
    this.pending.add(connection);
    connection.deadline = this.options.clock.setTimeout(() => {
      if (connection.stage === 'auth')
        this.refuse(
          connection,
          'auth',
          'handshake_timeout',
          `not authenticated within ${this.options.handshakeTimeoutMs} ms`,
        );
      else if (connection.stage !== 'linked')
        this.refuse(
          connection,
          'violation',
          'handshake_timeout',
          `no hello within ${this.options.handshakeTimeoutMs} ms`,
        );
    }, this.options.handshakeTimeoutMs);
    socket.on('data', (chunk: Buffer) => connection.reader.push(chunk));
    socket.on('close', () => this.closed(connection));
    this.send(connection, { t: 'challenge', nodeId: this.options.nodeId, nonce: connection.nonce });
  }

  /** Makes room for one more waiting connection: closes the oldest not yet authenticated (else the oldest). */
  private evictOne(): void {
    let victim: Connection | undefined;
    for (const connection of this.pending) {
      if (connection.stage === 'auth') {
        victim = connection;
        break;
      }
      victim ??= connection;
    }
    if (victim)
      this.refuse(
        victim,
        'cap',
        'connection_cap',
        `more than ${this.options.maxPendingConnections} connections waiting`,
      );
  }

  private receive(connection: Connection, raw: unknown): void {
    if (connection.closed) return;
    if (connection.stage === 'linked') {
      this.linkedMessage(connection, raw);
      return;
    }
    if (raw instanceof RawBatch || raw instanceof CheckedBatch) {
      this.refuse(connection, 'violation', 'unexpected_frame', 'a batch before the link');
      return;
    }
    const message = this.parse(connection, raw);
    if (!message) return;
    if (connection.stage === 'auth') this.authenticate(connection, message);
    else if (connection.stage === 'hello' && message.t === 'hello') this.hello(connection, message);
    else {
      const expected = connection.stage === 'hello' ? 'instead of hello' : 'before the welcome';
      this.refuse(connection, 'violation', 'unexpected_message', `${message.t} ${expected}`);
    }
  }

  private authenticate(connection: Connection, message: SyncMessage): void {
    if (message.t !== 'auth') {
      this.refuse(connection, 'auth', 'not_authenticated', `${message.t} before authenticating`);
      return;
    }
    const facts: HandshakeFacts = {
      serverNonce: connection.nonce,
      clientNonce: message.nonce,
      clientNodeId: message.nodeId,
      serverNodeId: this.options.nodeId,
    };
    if (!verifySyncProof(this.options.key, 'client', facts, message.proof)) {
      this.refuse(connection, 'auth', 'bad_proof', `${message.nodeId} proved no key of this pair`);
      return;
    }
    connection.peerId = message.nodeId;
    connection.stage = 'hello';
    this.send(connection, { t: 'authenticated', proof: syncProof(this.options.key, 'server', facts) });
  }

  private hello(connection: Connection, message: Extract<SyncMessage, { t: 'hello' }>): void {
    const { nodeId, epoch } = message;
    if (nodeId !== connection.peerId) {
      this.refuse(
        connection,
        'violation',
        'wrong_node',
        `hello as ${nodeId} after authenticating as ${connection.peerId}`,
      );
      return;
    }
    if (!this.options.accepting()) {
      this.refuse(connection, 'hello', 'not_passive', 'this node is not passive');
      return;
    }
    if (epoch < this.highestEpoch) {
      this.refuse(connection, 'hello', 'stale_epoch', `stale epoch ${epoch} < ${this.highestEpoch}`);
      return;
    }
    connection.stage = 'checking';
    this.options.leaseHolder().then(
      (holder) => {
        if (connection.closed) return;
        if (!holder) {
          this.refuse(connection, 'hello', 'no_lease', 'the database has no lease');
          return;
        }
        if (epoch > holder.epoch) {
          this.refuse(connection, 'hello', 'epoch_above_lease', `epoch ${epoch} is above the lease's ${holder.epoch}`);
          return;
        }
        if (epoch < holder.epoch || epoch < this.highestEpoch) {
          this.refuse(connection, 'hello', 'stale_epoch', `stale epoch ${epoch} < ${holder.epoch}`);
          return;
        }
        if (holder.nodeId !== nodeId) {
          this.refuse(connection, 'hello', 'not_lease_holder', `epoch ${epoch} is held by ${holder.nodeId}`);
          return;
        }
        if (!this.options.accepting()) {
          this.refuse(connection, 'hello', 'not_passive', 'this node is not passive');
          return;
        }
        this.link(connection, nodeId, epoch);
      },
      (error: unknown) => {
        if (connection.closed) return;
        this.refuse(connection, 'hello', 'lease_unreadable', `the lease cannot be read: ${String(error)}`);
      },
    );
  }

  private link(connection: Connection, nodeId: string, epoch: number): void {
    this.options.clock.clearTimeout(connection.deadline);
    this.pending.delete(connection);
    const previous = this.current;
    if (previous) this.end(previous);
    this.highestEpoch = epoch;
    connection.stage = 'linked';
    connection.epoch = epoch;
    connection.reader.limit(this.options.maxFrameBytes, DEFAULT_MAX_MESSAGE_BYTES);
    this.current = connection;
    this.followedLink = {
      connection,
      nodeId,
      epoch,
      synced: false,
      endedAt: undefined,
      lastMessageAt: this.options.clock.monotonicNow(),
    };
    this.counters.links += 1;
    this.send(connection, { t: 'welcome', epoch });
    this.options.logger.info('following the active', { event: 'sp.following_active', active: nodeId, epoch });
  }

  private linkedMessage(connection: Connection, raw: unknown): void {
    if (this.current !== connection) {
      this.refuse(connection, 'violation', 'superseded', 'a newer link was taken');
      return;
    }
    // Any frame: the link lived until now (activation.ts reads it as a bound of what this node may have missed).
    if (this.followedLink?.connection === connection)
      this.followedLink.lastMessageAt = this.options.clock.monotonicNow();
    const from = connection.peerId as string;
    if (raw instanceof CheckedBatch || raw instanceof RawBatch) {
      if (connection.snapshot.stage === 'none') {
        this.refuse(connection, 'violation', 'unexpected_message', 'a batch before the snapshot');
        return;
      }
      if (!this.sequenceRises(connection, raw.seq)) return;
      const batch = raw instanceof CheckedBatch ? decodeCheckedBatch(raw.bytes) : decodePublishCall(raw.call);
      if (!batch.ok) {
        this.refuse(connection, 'violation', 'bad_batch', batch.error.message);
        return;
      }
      this.applied(connection, raw.seq, batch.value);
      return;
    }
    const message = this.parse(connection, raw);
    if (!message) return;
    switch (message.t) {
      case 'snapshot':
        if (connection.snapshot.stage !== 'none') {
          this.refuse(connection, 'violation', 'unexpected_message', 'a second snapshot on one link');
          return;
        }
        try {
          this.options.onSnapshot(message, from);
        } catch (error) {
          this.refuse(
            connection,
            'violation',
            'bad_snapshot',
            `bad snapshot: ${error instanceof Error ? error.message : String(error)}`,
          );
          return;
        }
        this.lastSeq = message.seq;
        connection.snapshot = { stage: 'applied' };
        if (this.followedLink?.connection === connection) this.followedLink.synced = true;
        this.send(connection, { t: 'ack', seq: message.seq });
        this.options.logger.info('snapshot applied', { event: 'sp.snapshot_applied', from, seq: message.seq });
        return;
      case 'snapshot-begin':
        if (connection.snapshot.stage !== 'none') {
          this.refuse(connection, 'violation', 'unexpected_message', 'a second snapshot on one link');
          return;
        }
        if (!this.applySnapshotPart(connection, () => this.options.onSnapshotBegin(message, from))) return;
        this.lastSeq = message.seq;
        connection.snapshot = { stage: 'streaming', next: 1, startedAt: this.options.clock.monotonicNow() };
        // No message of a streamed link needs the room of a one-piece snapshot.
        connection.reader.limit(this.options.maxFrameBytes, STREAMED_MAX_MESSAGE_BYTES);
        return;
      case 'snapshot-chunk': {
        const snapshot = connection.snapshot;
        if (snapshot.stage !== 'streaming' || message.n !== snapshot.next) {
          const expected = snapshot.stage === 'streaming' ? `chunk ${snapshot.next}` : 'no chunk';
          this.refuse(connection, 'violation', 'unexpected_message', `chunk ${message.n} where ${expected} was due`);
          return;
        }
        if (!this.applySnapshotPart(connection, () => this.options.onSnapshotChunk(message))) return;
        snapshot.next += 1;
        this.send(connection, { t: 'snapshot-ack', n: message.n });
        return;
      }
      case 'snapshot-end': {
        const snapshot = connection.snapshot;
        if (snapshot.stage !== 'streaming' || message.chunks !== snapshot.next - 1) {
          this.refuse(
            connection,
            'violation',
            'unexpected_message',
            `snapshot end after ${message.chunks} chunks, out of turn`,
          );
          return;
        }
        if (!this.applySnapshotPart(connection, () => this.options.onSnapshotEnd(message.chunks))) return;
        connection.snapshot = { stage: 'applied' };
        if (this.followedLink?.connection === connection) this.followedLink.synced = true;
        this.send(connection, { t: 'ack', seq: this.lastSeq });
        this.options.logger.info('snapshot applied', {
          event: 'sp.snapshot_applied',
          from,
          seq: this.lastSeq,
          chunks: message.chunks,
          ms: Math.round(this.options.clock.monotonicNow() - snapshot.startedAt),
        });
        return;
      }
      case 'batch': {
        if (connection.snapshot.stage === 'none') {
          this.refuse(connection, 'violation', 'unexpected_message', 'a batch before the snapshot');
          return;
        }
        if (!this.sequenceRises(connection, message.seq)) return;
        const batch = validateBatch(message.batch);
        if (!batch.ok) {
          this.refuse(connection, 'violation', 'bad_batch', batch.error.message);
          return;
        }
        this.applied(connection, message.seq, batch.value);
        return;
      }
      case 'published':
        this.options.onPublished(message.ids);
        return;
      default: {
        this.refuse(connection, 'violation', 'unexpected_message', `unexpected ${message.t}`);
        return;
      }
    }
  }

  /** Whether a batch's link sequence is above the last one's, as an active numbers them; else the link is refused. */
  private sequenceRises(connection: Connection, seq: number): boolean {
    if (Number.isSafeInteger(seq) && seq > this.lastSeq) return true;
    this.refuse(connection, 'violation', 'bad_batch', `link sequence ${seq} after ${this.lastSeq}`);
    return false;
  }

  /** Runs one step of a snapshot; a throw closes the link as a bad snapshot. Returns whether it applied. */
  private applySnapshotPart(connection: Connection, apply: () => void): boolean {
    try {
      apply();
      return true;
    } catch (error) {
      this.refuse(
        connection,
        'violation',
        'bad_snapshot',
        `bad snapshot: ${error instanceof Error ? error.message : String(error)}`,
      );
      return false;
    }
  }

  /** Applies one batch and acknowledges it; acks of one turn of the event loop leave as one (they are cumulative). */
  private applied(connection: Connection, seq: number, batch: AnyBatch): void {
    this.options.onBatch(batch);
    this.counters.batchesApplied += 1;
    this.lastSeq = seq;
    if (this.ackPending) return;
    this.ackPending = true;
    setImmediate(() => {
      this.ackPending = false;
      if (this.current === connection) this.send(connection, { t: 'ack', seq: this.lastSeq });
    });
  }

  private ackPending = false;

  private send(connection: Connection, message: unknown): void {
    if (!connection.closed) connection.socket.write(encodeFrame(message));
  }

  /** Closes a connection for `reason`: counted by kind, logged at most once per 10 s per peer and code. */
  /** A JSON message of the sync protocol, or undefined once the connection is refused for it. */
  private parse(connection: Connection, raw: unknown): SyncMessage | undefined {
    const parsed = syncMessageSchema.safeParse(raw);
    if (parsed.success) return parsed.data;
    this.refuse(
      connection,
      'violation',
      'invalid_message',
      `invalid message: ${parsed.error.issues[0]?.message ?? 'unknown'}`,
    );
    return undefined;
  }

  private refuse(connection: Connection, kind: RefusalKind, code: string, reason: string): void {
    if (connection.closed) return;
    const counter = {
      violation: 'violations',
      auth: 'authFailures',
      hello: 'hellosRefused',
      cap: 'connectionsRefused',
    } as const;
    this.counters[counter[kind]] += 1;
    const { event, message } = REFUSAL_EVENTS[kind];
    this.refusals.warn(connection.address, code, message, {
      event,
      code,
      reason: boundLoggedText(reason),
      ...(connection.peerId === undefined ? {} : { nodeId: boundLoggedText(connection.peerId) }),
    });
    if (this.current === connection) this.current = undefined;
    this.end(connection);
  }

  /** Ends a connection without counting anything (a superseded link, a close). */
  private end(connection: Connection): void {
    this.unfollow(connection);
    connection.closed = true;
    connection.reader.stop();
    this.options.clock.clearTimeout(connection.deadline);
    this.pending.delete(connection);
    connection.socket.destroy();
  }

  /** The followed link ended now (if `connection` is it). */
  private unfollow(connection: Connection): void {
    const link = this.followedLink;
    if (link?.connection === connection && link.endedAt === undefined) link.endedAt = this.options.clock.monotonicNow();
  }

  private closed(connection: Connection): void {
    this.unfollow(connection);
    const wasCurrent = this.current === connection;
    connection.closed = true;
    connection.reader.stop();
    this.options.clock.clearTimeout(connection.deadline);
    this.pending.delete(connection);
    if (wasCurrent) {
      this.current = undefined;
      this.options.logger.warn('sync link from the active closed', {
        event: 'sp.sync_link_closed',
        active: connection.peerId,
      });
    }
  }
}
