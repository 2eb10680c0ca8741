import net from 'node:net';
import tls from 'node:tls';
import { DEFAULTS, ok, type Result } from '@faultline/core';
import { type AnyBatch, type BatchAck, type BatchDecodeError, decodePublishColumns, validateBatch } from './health.js';
import {
  type BatchAckWire,
  generated,
  type HealthStatBatchWire,
  HealthStatService,
  type HealthStatServiceClient,
  thrift,
} from './thrift.js';
import {
  encodeAckReply,
  encodeApplicationException,
  encodeExceptionReply,
  type PublishCall,
  readPublishCall,
} from './wire-codec.js';

/** README "Thrift": framed transport, binary protocol, 1 MiB frames. */
export const DEFAULT_MAX_FRAME_BYTES = DEFAULTS.maxFrameBytes;
/** The least budget of incomplete frames of one server, all connections together (HealthStatServerOptions). */
export const DEFAULT_MAX_HELD_FRAME_BYTES = DEFAULTS.maxHeldFrameBytes;

export interface HealthStatServerOptions {
  /** Largest frame accepted; a larger or negative size closes that connection. @default 1 MiB */
  maxFrameBytes?: number;
  /**
   * Called for every connection-level failure (bad frame, oversized frame,
   * socket error). The server has already closed that connection and keeps
   * serving every other one; the SP counts and logs these. `peer` is that
   * connection's remote address (undefined when thrift reports an error of no
   * connection).
   */
  onConnectionError: (error: Error, peer: string | undefined) => void;
  /**
   * The server's certificate and key (PEM): the port speaks TLS only.
   * @default undefined (plain TCP)
   */
  tls?: { cert: Buffer | string; key: Buffer | string };
  /**
   * A TLS handshake failed (a client that does not trust the certificate, or
   * speaks plain TCP); that socket is already closed. @default onConnectionError
   */
  onTlsError?: (error: Error, peer: string | undefined) => void;
  /**
   * Memory all connections together may keep for frames not complete yet
   * (HeldFrames). A frame is read whole before anything of it is checked, so
   * without a bound a peer trickling a byte at a time into 1 000 connections
   * held 1–2 GB before any credential was asked for. Past it, the peer
   * address keeping the most loses its largest connection
   * (`onConnectionError`); an agent's partial batch is small, so it is the
   * hoarder that goes. At least `maxFrameBytes`.
   * @default max(64 MiB, 4 × maxFrameBytes)
   */
  maxHeldFrameBytes?: number;
  /** The budget itself, to share or read (tests); made from `maxHeldFrameBytes` when absent. */
  heldFrames?: HeldFrames;
}

/** TLS of a client: the CA (PEM) the server's certificate must chain to, for the host it dialled. */
export interface HealthStatClientTls {
  ca: Buffer | string;
}

/** Frames a connection may have handled in one turn of the event loop before the rest wait for the next turn. */
const FRAME_TURN_BUDGET_MS = 5;

/** When the frames of this turn of the event loop began to be handled (every connection's together). */
let turnStartedAt: number | undefined;

/** The pumps of connections whose whole frames wait for a later turn, in the order they stopped. */
let waitingPumps: (() => void)[] = [];

/**
 * Time spent on frames in this turn, by all connections: the budget is the
 * server's, not each connection's. With a budget per connection, a hundred
 * agents catching up after a stall (each with a backlog) made one turn of
 * a hundred budgets, and the event loop stalled for hundreds of ms.
 */
function turnElapsedMs(): number {
  if (turnStartedAt === undefined) {
    turnStartedAt = performance.now();
    setImmediate(endTurn);
  }
  return performance.now() - turnStartedAt;
}

/**
 * The turn's last phase: the budget is free again, and the frames left
 * waiting are handled in the last phase of the next turn (an immediate set
 * from this phase runs in the next one), after that turn's timers. Resumed
 * in this phase, they had a budget of their own after the one the turn's
 * reads spent: a burst arriving at an idle server took the event loop for
 * two budgets before any timer ran.
 */
function endTurn(): void {
  turnStartedAt = undefined;
  if (waitingPumps.length > 0) setImmediate(resumeWaiting);
}

/**
 * Resumes the waiting connections in the order they stopped, while the
 * budget lasts. Those it did not reach keep the front of the line; those it
 * reached and that still have frames go behind them (each puts itself at the
 * back). A connection read while others wait lines up behind them (`socket`'s
 * 'data' in `paceFrames`): the reads of every turn could otherwise spend its
 * budget first, and a connection once stopped would wait as long as others
 * keep sending.
 */
function resumeWaiting(): void {
  const pumps = waitingPumps;
  waitingPumps = [];
  let next = 0;
  try {
    while (next < pumps.length && (turnStartedAt === undefined || turnElapsedMs() < FRAME_TURN_BUDGET_MS)) {
      const pump = pumps[next] as () => void;
      next += 1;
      pump();
    }
  } finally {
    if (next < pumps.length) {
      waitingPumps = pumps.slice(next).concat(waitingPumps);
      // A turn begun here ends (and resumes them) in the next check phase; none begun: nothing else would.
      if (turnStartedAt === undefined) setImmediate(resumeWaiting);
    }
  }
}

/** What one connection holds of frames not complete yet, whose it is, and how to close it. */
interface FrameHolder {
  readonly peer: string;
  bytes: number;
  drop(heldBytes: number): void;
}

/**
 * The memory one server's connections keep for frames not complete yet,
 * against its budget. Over it, a connection of the peer address keeping the
 * most in all is dropped, the one of its connections keeping the most: one
 * address cannot spread its share over a thousand connections and leave an
 * agent's one frame as the largest. Scans run only while over the budget,
 * one per connection dropped. A connection keeping nothing is not listed.
 */
export class HeldFrames {
  private total = 0;
  private readonly peers = new Map<string, { bytes: number; holders: Set<FrameHolder> }>();

  constructor(readonly limit: number) {}

  get bytes(): number {
    return this.total;
  }

  /** `holder`'s connection is gone: it keeps nothing, and its address's entry goes once none of its own keeps anything. */
  release(holder: FrameHolder): void {
    this.hold(holder, 0);
    if (this.peers.get(holder.peer)?.holders.size === 0) this.peers.delete(holder.peer);
  }

  /** `holder` keeps `bytes` now (0 once it keeps nothing). An address's entry stays while it is busy (no churn). */
  hold(holder: FrameHolder, bytes: number): void {
    if (bytes === holder.bytes) return;
    this.total += bytes - holder.bytes;
    let peer = this.peers.get(holder.peer);
    if (!peer) {
      peer = { bytes: 0, holders: new Set() };
      this.peers.set(holder.peer, peer);
    }
    peer.bytes += bytes - holder.bytes;
    holder.bytes = bytes;
    if (bytes > 0) peer.holders.add(holder);
    else peer.holders.delete(holder);
    while (this.total > this.limit) {
      let most: { bytes: number; holders: Set<FrameHolder> } | undefined;
      for (const p of this.peers.values()) if (!most || p.bytes > most.bytes) most = p;
      let largest: FrameHolder | undefined;
      for (const h of most?.holders ?? []) if (!largest || h.bytes > largest.bytes) largest = h;
      if (!largest) return;
      const kept = largest.bytes;
      this.hold(largest, 0);
      largest.drop(kept);
    }
  }
}

/**
 * Cuts a connection's bytes into frames and hands `onFrame` one payload at a
 * time, for at most FRAME_TURN_BUDGET_MS per turn of the event loop, all
 * connections together (`turnElapsedMs`, asked before each frame): a burst of
 * pipelined frames, hostile or not, then delays every other connection and
 * timer (the lease's renewal) by about one budget or one frame, not by the
 * whole burst. The socket is paused while frames wait. A negative or
 * oversized frame size goes to `onBadSize`, and nothing more of that
 * connection is read.
 *
 * The bytes not handed over yet are one buffer (`held`, from `start` to
 * `end`): a chunk arriving when nothing waits is used as it is, any other is
 * copied after what waits, into a buffer that at least doubles when it grows.
 * A frame sent a byte per segment then costs its own size and a linear copy,
 * not a Buffer per byte (~200 bytes each: 200 MB for a 1 MiB frame). A payload
 * handed over is never written again (the SP forwards it to its passive).
 */
function paceFrames(
  socket: net.Socket,
  maxFrameBytes: number,
  onFrame: (payload: Buffer) => void,
  onBadSize: (size: number) => void,
  budget: HeldFrames,
  onOverBudget: (heldBytes: number) => void,
): void {
  const holder: FrameHolder = {
    peer: socket.remoteAddress ?? '-',
    bytes: 0,
    drop: (heldBytes) => {
      discard();
      onOverBudget(heldBytes);
    },
  };
  /** Nothing more of this connection is read, kept or counted. */
  const discard = (): void => {
    refused = true;
    held = EMPTY;
    start = end = 0;
    budget.release(holder);
  };
  /** Where the first frame not complete yet begins (`end` when every frame waiting is whole). */
  const incompleteFrom = (): number => {
    let at = start;
    while (end - at >= 4) {
      const size = held.readInt32BE(at);
      if (size < 0 || size > maxFrameBytes || end - at - 4 < size) break;
      at += 4 + size;
    }
    return at;
  };
  /** Tells the budget the memory kept for what waits: the whole buffer holding it (a chunk, or one of ours). */
  const account = (): void => {
    if (refused) return;
    budget.hold(holder, end === start ? 0 : held.length);
  };
  // Whatever a pending pump finds after this.
  socket.once('close', discard);
  let held: Buffer = EMPTY;
  let start = 0;
  let end = 0;
  /** Whether `held` is a buffer of this function's own (bytes after `end` may be written). */
  let owned = false;
  let waiting = false;
  let refused = false;
  const append = (chunk: Buffer): void => {
    const waits = end - start;
    if (waits === 0) {
      held = chunk;
      start = 0;
      end = chunk.length;
      owned = false;
    } else if (owned && held.length - end >= chunk.length) {
      end += chunk.copy(held, end);
    } else {
      const grown = Buffer.allocUnsafe(Math.max(waits + chunk.length, 2 * waits));
      held.copy(grown, 0, start, end);
      chunk.copy(grown, waits);
      held = grown;
      start = 0;
      end = waits + chunk.length;
      owned = true;
    }
  };
  const pump = (): void => {
    waiting = false;
    while (end - start >= 4 && !refused && !socket.destroyed) {
      const size = held.readInt32BE(start);
      if (size < 0 || size > maxFrameBytes) {
        discard();
        onBadSize(size);
        return;
      }
      if (end - start < 4 + size) break;
      if (turnElapsedMs() >= FRAME_TURN_BUDGET_MS) {
        waitTurn();
        return;
      }
      const payload = held.subarray(start + 4, start + 4 + size);
      start += 4 + size;
      onFrame(payload);
    }
    if (start === end) {
      // Nothing waits: let go of the buffer (its frames live on where they were handed).
      held = EMPTY;
      start = end = 0;
      owned = false;
    } else if (owned && held.length > COMPACT_ABOVE_BYTES && end - start <= held.length / 4) {
      // A little of the next frame behind large frames handed over: kept in a buffer of its own size, so
      // a large buffer is not held (and counted) for a few bytes; the handed payloads are left alone. A
      // socket's chunk (64 KiB at most) is kept as it is: copying its tail would cost every busy agent.
      held = Buffer.from(held.subarray(start, end));
      end -= start;
      start = 0;
      owned = true;
    }
    if (socket.isPaused() && !socket.destroyed) socket.resume();
    account();
  };
  /** Stops reading and lines up for a later turn (`resumeWaiting`). */
  const waitTurn = (): void => {
    waiting = true;
    socket.pause();
    waitingPumps.push(pump);
    // Paused with whole frames waiting for a turn: those are no hoard (a paused socket reads no more, and
    // a hundred agents catching up after a stall hold many), only a frame still incomplete behind them is.
    if (!refused) budget.hold(holder, end - incompleteFrom());
  };
  socket.on('data', (chunk: Buffer) => {
    if (refused) return;
    append(chunk);
    if (waiting) account();
    else if (waitingPumps.length > 0) waitTurn();
    else pump();
  });
}

const EMPTY = Buffer.alloc(0);
/** A buffer of ours this large, holding a quarter of it or less, gives up the rest (see paceFrames). */
const COMPACT_ABOVE_BYTES = 64 * 1024;

const uncork = (socket: net.Socket): void => socket.uncork();

/**
 * The answers written in one turn of the event loop leave in one write: one
 * acknowledgement of the passive resolves the agent's answers of many batches
 * at once, and each written on its own costs a syscall (a tenth of the
 * active's time at full flight).
 */
function writeCoalesced(socket: net.Socket, frame: Buffer): void {
  if (socket.destroyed || !socket.writable) return;
  if (!socket.writableCorked) {
    socket.cork();
    process.nextTick(uncork, socket);
  }
  socket.write(frame);
}

/** Text of a field a handler's error may have left unset or of another type. */
const textOf = (value: unknown): string => (typeof value === 'string' ? value : '');

/** The reply frame of an error a handler threw or rejected with. */
function errorReply(seqid: number, error: unknown): Buffer {
  if (error instanceof generated.NotActive) {
    const nodeId = (error as { nodeId?: unknown }).nodeId;
    return encodeExceptionReply(seqid, {
      kind: 'NotActive',
      message: textOf(error.message),
      nodeId: typeof nodeId === 'string' ? nodeId : undefined,
    });
  }
  if (error instanceof generated.InvalidBatch) {
    return encodeExceptionReply(seqid, { kind: 'InvalidBatch', message: textOf(error.message) });
  }
  return encodeApplicationException(seqid, error instanceof Error ? textOf(error.message) : 'internal error');
}

/**
 * The reply frame of a handler's outcome; one it cannot write (an ack with a
 * number that is no i64, a field of another type) is a TApplicationException,
 * never an error thrown out of a promise callback (which would stop the process).
 */
function replyOf(seqid: number, outcome: { ack: BatchAck } | { error: unknown }): Buffer {
  try {
    return 'ack' in outcome ? encodeAckReply(seqid, outcome.ack) : errorReply(seqid, outcome.error);
  } catch {
    return encodeApplicationException(seqid, 'internal error: the reply could not be written');
  }
}

/**
 * What a server of HealthStatService implements: its one call.
 */
export interface HealthStatHandler {
  /**
   * One `publish` call. `batch` is its batch as `validateBatch` judged it,
   * in columns (StatColumns) when its stats all carry the same ids in the
   * form agents write them, else as objects; `peer` the remote address of the
   * connection (the SP rate-limits its log of refusals per peer). Resolves to
   * the acknowledgement. A rejection with thrift's generated NotActive or
   * InvalidBatch reaches the agent as that exception; any other error as a
   * TApplicationException, as thrift's own processor answers it.
   */
  publish(batch: Result<AnyBatch, BatchDecodeError>, peer: string | undefined): Promise<BatchAck>;
}

/**
 * A HealthStatService server over TCP with the project's fixed settings. It is
 * not listening yet: the caller decides when (the SP only while ACTIVE).
 *
 * The server is Thrift's framed binary protocol, read and written by
 * wire-codec.ts rather than by thrift's runtime: its generated code made
 * most of the active SP's garbage. A frame holds one `publish` call and
 * nothing else (the SP forwards a frame as one call's bytes, and its passive
 * applies that call: a frame holding more would set the two nodes apart). A
 * frame that is not one readable publish call, or a frame size out of
 * bounds, ends that connection (`onConnectionError`) before any call of it
 * is applied or answered.
 */
export function createHealthStatServer(handler: HealthStatHandler, options: HealthStatServerOptions): net.Server {
  const maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  const maxHeld = options.maxHeldFrameBytes ?? Math.max(DEFAULT_MAX_HELD_FRAME_BYTES, 4 * maxFrameBytes);
  if (!Number.isSafeInteger(maxHeld) || maxHeld < maxFrameBytes)
    throw new RangeError(`maxHeldFrameBytes ${maxHeld} is not an integer of at least maxFrameBytes (${maxFrameBytes})`);
  const heldFrames = options.heldFrames ?? new HeldFrames(maxHeld);
  const serve = (socket: net.Socket): void => {
    const peer = socket.remoteAddress;
    // Replies are small and already coalesced per turn of the event loop: Nagle's algorithm would hold
    // one back until the agent's TCP acknowledges the last (up to its delayed-ACK timer).
    socket.setNoDelay(true);
    let failed = false;
    const fail = (error: Error): void => {
      if (failed) return;
      failed = true;
      options.onConnectionError(error, peer);
      socket.destroy();
    };
    socket.on('error', fail);
    socket.on('end', () => socket.end());
    paceFrames(
      socket,
      maxFrameBytes,
      (payload) => {
        // An agent's call, read into columns; anything else the general way, which says what is wrong
        // (and so decides a call the columns' reading could not finish for any reason).
        let columns: ReturnType<typeof decodePublishColumns>;
        try {
          columns = decodePublishColumns(payload);
        } catch {
          columns = undefined;
        }
        let seqid: number;
        let batch: Result<AnyBatch, BatchDecodeError>;
        if (columns !== undefined) {
          seqid = columns.seqid;
          batch = ok(columns.batch);
        } else {
          let call: PublishCall;
          try {
            call = readPublishCall(payload);
          } catch (error) {
            fail(error instanceof Error ? error : new Error(String(error)));
            return;
          }
          seqid = call.seqid;
          batch = validateBatch(call.batch);
        }
        let reply: Promise<BatchAck>;
        try {
          reply = handler.publish(batch, peer);
        } catch (error) {
          reply = Promise.reject(error);
        }
        reply.then(
          (ack) => writeCoalesced(socket, replyOf(seqid, { ack })),
          (error: unknown) => writeCoalesced(socket, replyOf(seqid, { error })),
        );
      },
      (size) => fail(new Error(`Frame size ${size} out of bounds (0 to ${maxFrameBytes})`)),
      heldFrames,
      (heldBytes) =>
        fail(
          new Error(
            `incomplete frames over the server's budget (${heldFrames.limit} bytes): this connection held the most, ${heldBytes}`,
          ),
        ),
    );
  };
  // Over TLS the decrypted socket of 'secureConnection' carries the calls ('connection' is the raw TCP one).
  const server = options.tls
    ? tls.createServer(
        { cert: options.tls.cert, key: options.tls.key, minVersion: 'TLSv1.2' },
        serve as (socket: tls.TLSSocket) => void,
      )
    : net.createServer(serve);
  // A server error (listening failed) is reported, never an uncaught 'error' event.
  server.on('error', (error: Error) => options.onConnectionError(error, undefined));
  if (options.tls) {
    const onTlsError = options.onTlsError ?? options.onConnectionError;
    server.on('tlsClientError', (error: Error, socket: net.Socket) => onTlsError(error, socket.remoteAddress));
  }
  return server;
}

export interface HealthStatConnection {
  client: HealthStatServiceClient;
  /** Resolves once the TCP connection is up; rejects if it fails first. */
  ready: Promise<void>;
  close(): void;
  /** Errors after `ready` (the connection drops): the caller moves to another endpoint. */
  onError(listener: (error: Error) => void): void;
  /** The connection closed (an error, the server's idle timeout, the server going away). */
  onClose(listener: () => void): void;
}

/** A promise client of HealthStatService over framed binary TCP. */
export function connectHealthStat(
  host: string,
  port: number,
  options: { connectTimeoutMs?: number; tls?: HealthStatClientTls } = {},
): HealthStatConnection {
  const settings = {
    transport: thrift.TFramedTransport,
    protocol: thrift.TBinaryProtocol,
    connect_timeout: options.connectTimeoutMs ?? 2_000,
    max_attempts: 0,
  };
  // Over TLS the server's certificate must chain to `ca` and name `host`; 'connect' is thrift's after the handshake.
  const connection = (options.tls
    ? thrift.createSSLConnection(host, port, {
        ...settings,
        ca: options.tls.ca,
        rejectUnauthorized: true,
        minVersion: 'TLSv1.2',
        // Present, so thrift does not force secureProtocol SSLv23_method (which conflicts with minVersion).
        secureOptions: 0,
      } as never)
    : thrift.createConnection(host, port, settings as never)) as unknown as NodeJS.EventEmitter & {
    end(): void;
    destroy?(): void;
  };
  const listeners: ((error: Error) => void)[] = [];
  const closeListeners: (() => void)[] = [];
  // Thrift's client leaves a call pending forever when its connection dies
  // (kill -9 of the server): every call also fails when the connection closes.
  const inFlight = new Set<(error: Error) => void>();
  let closedError: Error | undefined;
  let opened = false;
  const ready = new Promise<void>((resolve, reject) => {
    connection.once('connect', () => {
      opened = true;
      resolve();
    });
    connection.on('error', (error: Error) => {
      if (!opened) reject(error);
      for (const listener of listeners) listener(error);
    });
    connection.on('close', () => {
      closedError = new Error(`connection to ${host}:${port} closed`);
      for (const fail of inFlight) fail(closedError);
      inFlight.clear();
      if (!opened) reject(closedError);
      for (const listener of closeListeners) listener();
    });
  });
  ready.catch(() => {});
  const raw = thrift.createClient(HealthStatService.Client as never, connection as never) as unknown as {
    publish(batch: HealthStatBatchWire): Promise<BatchAckWire>;
  };
  const client: HealthStatServiceClient = {
    publish: (batch) => {
      if (closedError) return Promise.reject(closedError);
      return new Promise<BatchAckWire>((resolve, reject) => {
        inFlight.add(reject);
        raw
          .publish(batch)
          .then(resolve, reject)
          .finally(() => inFlight.delete(reject));
      });
    },
  };
  return {
    client,
    ready,
    close: () => connection.end(),
    onError: (listener) => listeners.push(listener),
    onClose: (listener) => closeListeners.push(listener),
  };
}
