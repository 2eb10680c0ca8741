import type net from 'node:net';
import { DEFAULTS } from '@faultline/core';
import {
  type BatchAckWire,
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
   * serving every other one; the SP counts and logs these.
   */
  onConnectionError: (error: Error) => void;
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
  let current: Buffer | undefined;
  const wrapped = { publish: (batch: HealthStatBatchWire) => handler.publish(batch, current) };
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
          current = reader.inBuf;
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
  }
  const server = thrift.createServer(
    HealthStatService as never,
    wrapped as never,
    {
      transport: RecordingFramedTransport,
      protocol: thrift.TBinaryProtocol,
      maxLength: options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
    } as never,
  ) as unknown as net.Server;
  // Without this listener one bad frame would be an uncaught 'error' event and kill the process.
  server.on('error', options.onConnectionError);
  return server;
}

export interface HealthStatConnection {
  client: HealthStatServiceClient;
  /** Resolves once the TCP connection is up; rejects if it fails first. */
  ready: Promise<void>;
  close(): void;
  /** Errors after `ready` (the connection drops): the caller moves to another endpoint. */
  onError(listener: (error: Error) => void): void;
}

/** A promise client of HealthStatService over framed binary TCP. */
export function connectHealthStat(
  host: string,
  port: number,
  options: { connectTimeoutMs?: number } = {},
): HealthStatConnection {
  const connection = thrift.createConnection(host, port, {
    transport: thrift.TFramedTransport,
    protocol: thrift.TBinaryProtocol,
    connect_timeout: options.connectTimeoutMs ?? 2_000,
    max_attempts: 0,
  } as never) as unknown as NodeJS.EventEmitter & { end(): void; destroy?(): void };
  const listeners: ((error: Error) => void)[] = [];
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
  };
}
