import type net from 'node:net';
import { DEFAULTS } from '@faultline/core';
import {
  type BatchAckWire,
  BoundedBinaryProtocol,
  type HealthStatBatchWire,
  HealthStatService,
  type HealthStatServiceClient,
  type HealthStatServiceHandler,
  thrift,
} from './thrift.js';

/** README "Thrift": framed transport, binary protocol, 1 MiB frames. */
export const DEFAULT_MAX_FRAME_BYTES = DEFAULTS.maxFrameBytes;

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
}

/** TLS of a client: the CA (PEM) the server's certificate must chain to, for the host it dialled. */
export interface HealthStatClientTls {
  ca: Buffer | string;
}

/*
 * Thrift's server reads messages from a frame until one fails to start, and
 * that failure is how it learns the frame is done: one InputBufferUnderrunError
 * per frame, each built with two stack traces (~4 % of the active SP's CPU at
 * 200k stats/s, and its garbage). The server only tests `instanceof`, so the
 * frame's transport throws one shared instance instead.
 */
const ThriftUnderrun = (thrift as unknown as { InputBufferUnderrunError: new () => Error }).InputBufferUnderrunError;
const UNDERRUN = new ThriftUnderrun();
function ensureAvailable(this: { readPos: number; inBuf: Buffer }, len: number): void {
  if (this.readPos + len > this.inBuf.length) throw UNDERRUN;
}

/** Frames a connection may have handled in one turn of the event loop before the rest wait for the next turn. */
const FRAME_TURN_BUDGET_MS = 5;

/** When the frames of this turn of the event loop began to be handled (every connection's together). */
let turnStartedAt: number | undefined;

/**
 * Time spent on frames in this turn, by all connections: the budget is the
 * server's, not each connection's. With a budget per connection, a hundred
 * agents catching up after a stall (each with a backlog) made one turn of
 * a hundred budgets, and the event loop stalled for hundreds of ms.
 */
function turnElapsedMs(): number {
  if (turnStartedAt === undefined) {
    turnStartedAt = performance.now();
    setImmediate(() => {
      turnStartedAt = undefined;
    });
  }
  return performance.now() - turnStartedAt;
}

/**
 * Hands thrift's 'data' listener (`deliver`) one whole frame at a time, and
 * frames for at most FRAME_TURN_BUDGET_MS per turn of the event loop, all
 * connections together (`turnElapsedMs`): a burst of pipelined frames,
 * hostile or not, then delays every other connection and timer (the lease's
 * renewal) by about one budget or one frame, not by the whole burst. The socket is paused while frames wait. A frame size thrift
 * refuses is handed over as it is, so its receiver ends the connection.
 */
function paceFrames(socket: net.Socket, maxFrameBytes: number, deliver: (data: Buffer) => void): void {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let waiting = false;
  const take = (bytes: number): Buffer => {
    const all = pending.length === 1 ? (pending[0] as Buffer) : Buffer.concat(pending, pendingBytes);
    const rest = all.subarray(bytes);
    pending = rest.length > 0 ? [rest] : [];
    pendingBytes = rest.length;
    return all.subarray(0, bytes);
  };
  const pump = (): void => {
    waiting = false;
    // Once thrift has ended the connection (a bad frame), nothing more of it is handled.
    while (pendingBytes >= 4 && !socket.destroyed && !socket.writableEnded) {
      if ((pending[0] as Buffer).length < 4) take(0); // the size is split across chunks: join them
      const size = (pending[0] as Buffer).readInt32BE(0);
      if (size < 0 || size > maxFrameBytes) {
        deliver(take(pendingBytes));
        return;
      }
      if (pendingBytes < 4 + size) break;
      deliver(take(4 + size));
      if (pendingBytes >= 4 && turnElapsedMs() >= FRAME_TURN_BUDGET_MS) {
        waiting = true;
        socket.pause();
        setImmediate(pump);
        return;
      }
    }
    if (socket.isPaused() && !socket.destroyed) socket.resume();
  };
  socket.on('data', (chunk: Buffer) => {
    pending.push(chunk);
    pendingBytes += chunk.length;
    if (!waiting) pump();
  });
}

const uncork = (socket: net.Socket): void => socket.uncork();

/** What thrift's TFramedTransport holds of an answer being written. */
interface FramedOutput {
  _seqid: unknown;
  outBuffers: Buffer[];
  outCount: number;
  onFlush?: (message: Buffer, seqid: unknown) => void;
}

/**
 * The answers written in one turn of the event loop leave in one write: one
 * acknowledgement of the passive resolves the agent's answers of many batches
 * at once, and thrift writes each on its own (a syscall each, a tenth of the
 * active's time at full flight).
 */
function coalesceWrites(socket: net.Socket): void {
  const write = socket.write;
  socket.write = function (this: net.Socket, ...args: unknown[]) {
    if (!this.writableCorked) {
      this.cork();
      process.nextTick(uncork, this);
    }
    return (write as (...a: unknown[]) => boolean).apply(this, args);
  } as typeof socket.write;
}

/**
 * What the server reads requests with: container sizes bounded
 * (BoundedBinaryProtocol), and any call but `publish` ends the connection
 * instead of being answered: the runtime's "Unknown function <name>" reply
 * would echo a name of up to a frame's size, twice.
 */
class ServerProtocol extends BoundedBinaryProtocol {
  override readMessageBegin() {
    const begin = super.readMessageBegin();
    if (begin.fname !== 'publish') throw new Error('not a publish call');
    return begin;
  }
}

/**
 * A HealthStatService server over TCP with the project's fixed settings. It is
 * not listening yet: the caller decides when (the SP only while ACTIVE).
 * npm thrift 0.24.0 exactly: earlier versions hang on a negative frame size.
 */
export function createHealthStatServer(
  handler: HealthStatServiceHandler,
  options: HealthStatServerOptions,
): net.Server {
  // The generated processor picks promise or callback style by `publish.length`:
  // a handler declared without its parameter would be called callback-style and
  // never answer. Wrapping fixes the arity to 1 whatever the caller wrote.
  // It also hands the handler the raw request: thrift calls the handler
  // synchronously from inside the frame callback, where `current` is set.
  // The peer is set by a 'data' listener that runs before thrift's own, which
  // calls the handler synchronously from the same event.
  let current: { inBuf: Buffer; readPos: number } | undefined;
  let peer: string | undefined;
  const wrapped = {
    publish: (batch: HealthStatBatchWire) => {
      // One call per frame. The SP forwards the frame as this call's bytes and
      // its passive applies the first call in it, so a frame holding more
      // would set the two nodes apart. Thrown here, while the first call is
      // handled, this ends the connection (onConnectionError) before any
      // call of the frame is applied or answered.
      if (current && current.readPos !== current.inBuf.length) throw new Error('a frame holds more than one call');
      return handler.publish(batch, current?.inBuf, peer);
    },
  };
  const Framed = thrift.TFramedTransport as unknown as {
    new (...args: unknown[]): unknown;
    receiver(
      cb: (reader: { inBuf: Buffer }, seqid: unknown) => void,
      seqid: unknown,
      max?: number,
    ): (data: Buffer) => void;
  };
  class RecordingFramedTransport extends (Framed as new (...args: unknown[]) => object) {
    static receiver(cb: (reader: { inBuf: Buffer }, seqid: unknown) => void, seqid: unknown, max?: number) {
      return Framed.receiver(
        (reader, id) => {
          current = reader as { inBuf: Buffer; readPos: number };
          (reader as { ensureAvailable?: unknown }).ensureAvailable = ensureAvailable;
          try {
            cb(reader, id);
          } finally {
            current = undefined;
          }
        },
        seqid,
        max,
      );
    }

    /**
     * The answer's frame in one buffer from the pool: thrift's own flush
     * makes two zero-filled ones per answer, and a burst of thousands of
     * answers (one acknowledgement of the passive resolves them all) then
     * cost a GC pause of its own.
     */
    flush(this: FramedOutput): void {
      const seqid = this._seqid;
      this._seqid = null;
      const message = Buffer.allocUnsafe(this.outCount + 4);
      message.writeInt32BE(this.outCount, 0);
      let at = 4;
      for (const buffer of this.outBuffers) at += buffer.copy(message, at);
      this.outBuffers = [];
      this.outCount = 0;
      this.onFlush?.(message, seqid);
    }
  }
  const maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  const server = thrift.createServer(
    HealthStatService as never,
    wrapped as never,
    {
      transport: RecordingFramedTransport,
      protocol: ServerProtocol,
      maxLength: maxFrameBytes,
      ...(options.tls
        ? { tls: { cert: options.tls.cert, key: options.tls.key, minVersion: 'TLSv1.2', secureOptions: 0 } } // secureOptions: as the client's
        : {}),
    } as never,
  ) as unknown as net.Server;
  // Registered after thrift's connection listener: its 'data' listener is taken over and fed paced frames.
  // Over TLS thrift reads the decrypted socket of 'secureConnection' ('connection' is the raw TCP one).
  server.on(options.tls ? 'secureConnection' : 'connection', (socket: net.Socket) => {
    const address = socket.remoteAddress;
    // Thrift re-emits a socket's error on the server, synchronously: this runs first and names it.
    socket.prependListener('error', () => {
      peer = address;
    });
    coalesceWrites(socket);
    const thriftListeners = socket.listeners('data') as ((data: Buffer) => void)[];
    socket.removeAllListeners('data');
    paceFrames(socket, maxFrameBytes, (frame) => {
      peer = address;
      for (const listener of thriftListeners) listener(frame);
    });
  });
  // Without this listener one bad frame would be an uncaught 'error' event and kill the process.
  // Thrift emits it synchronously from the frame or socket error being handled, which set `peer`.
  server.on('error', (error: Error) => {
    options.onConnectionError(error, peer);
    peer = undefined;
  });
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
