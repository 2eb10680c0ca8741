import type net from 'node:net';
import type { Logger } from '@faultline/core';
import { createHealthStatServer, type HealthStatServiceHandler } from '@faultline/protocol';

export interface ThriftSourceOptions {
  host: string;
  port: number;
  maxFrameBytes: number;
  handler: HealthStatServiceHandler;
  logger: Logger;
}

/**
 * The SP's Thrift source port. Open only while the node is ACTIVE (README,
 * "Stream processor: the active/passive pair"): a passive node's port refuses
 * connections, so an agent fails over at once.
 * Closing also destroys the open connections, so agents connected to a node
 * that steps down notice immediately instead of at their next timeout.
 */
export class ThriftSource {
  badFrames = 0;
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private listeningOn: number | undefined;

  constructor(private readonly options: ThriftSourceOptions) {
    this.server = createHealthStatServer(options.handler, {
      maxFrameBytes: options.maxFrameBytes,
      onConnectionError: (error) => {
        // Thrift has already ended that connection; everyone else is served on.
        this.badFrames += 1;
        options.logger.warn('thrift connection dropped', {
          event: 'sp.thrift_connection_dropped',
          reason: error.message,
        });
      },
    });
    this.server.on('connection', (socket: net.Socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
  }

  get port(): number | undefined {
    return this.listeningOn;
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
    return this.listeningOn;
  }

  async close(): Promise<void> {
    if (this.listeningOn === undefined) return;
    this.listeningOn = undefined;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    await closed;
  }

  get connections(): number {
    return this.sockets.size;
  }
}
