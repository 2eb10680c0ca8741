import type net from 'node:net';
import { boundLoggedText, type Clock, type Logger, RateLimitedLog, type TimerHandle } from '@faultline/core';
import { createHealthStatServer, type HealthStatHandler } from '@faultline/protocol';

export interface ThriftSourceOptions {
  host: string;
  port: number;
  maxFrameBytes: number;
  /** Open connections at most; one more is closed at once and counted. */
  maxConnections: number;
  /** Open connections from one remote address at most. */
  maxConnectionsPerPeer: number;
  /** A connection that sends nothing for this long is closed (checked every half of it). */
  idleTimeoutMs: number;
  /** Certificate and key (PEM): the port speaks TLS only; a failed handshake counts as a bad frame. @default plain TCP */
  tls?: { cert: Buffer | string; key: Buffer | string } | undefined;
  handler: HealthStatHandler;
  clock: Clock;
  logger: Logger;
}

export interface ThriftSourceCounters {
  /** Connections ended by a bad frame (negative or oversized length, garbage, a call but publish). */
  badFrames: number;
  /** Connections closed at once because a cap was reached. */
  connectionsRefused: number;
  /** Connections closed for sending nothing for `idleTimeoutMs`. */
  idleClosed: number;
  /** TLS handshakes that failed (`tls.thrift` on): a client that does not trust the certificate, or plain TCP. */
  tlsHandshakeFailures: number;
}

interface Connection {
  peer: string;
  lastActivity: number;
}

/**
 * The SP's Thrift source port. Open only while the node is ACTIVE (README,
 * "Stream processor: the active/passive pair"): a passive node's port refuses
 * connections, so an agent fails over at once.
 * Closing also destroys the open connections, so agents connected to a node
 * that steps down notice immediately instead of at their next timeout.
 * Connections are capped in total and per remote address, and an idle one is
 * closed (README "Agents → SP (Thrift)"): a peer cannot hold the port's
 * sockets or memory.
 */
export class ThriftSource {
  readonly counters: ThriftSourceCounters = {
    badFrames: 0,
    connectionsRefused: 0,
    idleClosed: 0,
    tlsHandshakeFailures: 0,
  };
  private readonly server: net.Server;
  private readonly sockets = new Map<net.Socket, Connection>();
  private readonly perPeer = new Map<string, number>();
  private readonly peerLog: RateLimitedLog;
  private listeningOn: number | undefined;
  private idleSweep: TimerHandle | undefined;

  constructor(private readonly options: ThriftSourceOptions) {
    this.peerLog = new RateLimitedLog(options.logger, options.clock);
    this.server = createHealthStatServer(options.handler, {
      maxFrameBytes: options.maxFrameBytes,
      ...(options.tls ? { tls: options.tls } : {}),
      onTlsError: (error, peer) => {
        this.counters.tlsHandshakeFailures += 1;
        this.peerLog.warn(peer ?? '-', 'tls_handshake', 'thrift TLS handshake failed', {
          event: 'sp.thrift_tls_handshake_failed',
          reason: boundLoggedText(error.message),
        });
      },
      onConnectionError: (error, peer) => {
        // Thrift has already ended that connection; everyone else is served on. A peer can
        // do this at will: every one is counted, one line per 10 s per peer is logged.
        this.counters.badFrames += 1;
        this.peerLog.warn(peer ?? '-', 'connection_dropped', 'thrift connection dropped', {
          event: 'sp.thrift_connection_dropped',
          reason: boundLoggedText(error.message),
        });
      },
    });
    // Caps count the raw TCP sockets (before any handshake). Over TLS the raw
    // socket emits no 'data': the decrypted socket's data is its activity.
    this.server.on('connection', (socket: net.Socket) => this.accept(socket));
    if (options.tls) {
      this.server.on('secureConnection', (secure: net.Socket & { _parent?: net.Socket }) => {
        const connection = secure._parent ? this.sockets.get(secure._parent) : undefined;
        if (!connection) return;
        secure.on('data', () => {
          connection.lastActivity = this.options.clock.monotonicNow();
        });
      });
    }
  }

  private accept(socket: net.Socket): void {
    const peer = socket.remoteAddress ?? '-';
    const fromPeer = this.perPeer.get(peer) ?? 0;
    const { maxConnections, maxConnectionsPerPeer } = this.options;
    if (this.sockets.size >= maxConnections || fromPeer >= maxConnectionsPerPeer) {
      this.counters.connectionsRefused += 1;
      const total = this.sockets.size >= maxConnections;
      this.peerLog.warn(peer, total ? 'max_connections' : 'max_connections_per_peer', 'thrift connection refused', {
        event: 'sp.thrift_connection_refused',
        reason: total ? 'max_connections' : 'max_connections_per_peer',
        limit: total ? maxConnections : maxConnectionsPerPeer,
      });
      socket.destroy();
      return;
    }
    const connection: Connection = { peer, lastActivity: this.options.clock.monotonicNow() };
    this.sockets.set(socket, connection);
    this.perPeer.set(peer, fromPeer + 1);
    socket.on('data', () => {
      connection.lastActivity = this.options.clock.monotonicNow();
    });
    socket.on('close', () => {
      if (!this.sockets.delete(socket)) return;
      const left = (this.perPeer.get(peer) ?? 1) - 1;
      if (left > 0) this.perPeer.set(peer, left);
      else this.perPeer.delete(peer);
    });
  }

  private sweepIdle(): void {
    const now = this.options.clock.monotonicNow();
    for (const [socket, connection] of this.sockets) {
      if (now - connection.lastActivity < this.options.idleTimeoutMs) continue;
      this.counters.idleClosed += 1;
      this.options.logger.debug('idle thrift connection closed', {
        event: 'sp.thrift_connection_idle',
        peer: connection.peer,
        idleMs: now - connection.lastActivity,
      });
      socket.destroy();
    }
  }

  get port(): number | undefined {
    return this.listeningOn;
  }

  /** Bad frames so far (also in `counters`). */
  get badFrames(): number {
    return this.counters.badFrames;
  }

  async open(): Promise<number> {
    if (this.listeningOn !== undefined) return this.listeningOn;
    await new Promise<void>((resolve, reject) => {
      const fail = (error: Error) => reject(error);
      this.server.once('error', fail);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', fail);
        resolve();
      });
    });
    this.listeningOn = (this.server.address() as net.AddressInfo).port;
    this.idleSweep = this.options.clock.setInterval(
      () => this.sweepIdle(),
      Math.max(1, Math.floor(this.options.idleTimeoutMs / 2)),
    );
    return this.listeningOn;
  }

  async close(): Promise<void> {
    if (this.listeningOn === undefined) return;
    this.listeningOn = undefined;
    this.options.clock.clearInterval(this.idleSweep);
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets.keys()) socket.destroy();
    this.sockets.clear();
    this.perPeer.clear();
    await closed;
  }

  get connections(): number {
    return this.sockets.size;
  }
}
