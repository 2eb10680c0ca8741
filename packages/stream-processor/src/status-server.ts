import http from 'node:http';
import type net from 'node:net';
import { type Logger, once } from '@faultline/core';
import type { SpNode } from './node.js';

export interface StatusServerOptions {
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  logger: Logger;
}

/**
 * The node's status call over HTTP on loopback: `GET /status` (role, epoch,
 * passive and lag, counters, engine summary) and `GET /engine` (the engine's
 * whole state; tests compare the two nodes with it). The CLI's `stack status`
 * reads it.
 */
export async function startStatusServer(
  node: SpNode,
  options: StatusServerOptions,
): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((request, response) => {
    const body = request.url === '/status' ? node.status() : request.url === '/engine' ? node.engineState() : undefined;
    if (request.method !== 'GET' || body === undefined) {
      response.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
      return;
    }
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  });
  server.on('error', (error) =>
    options.logger.error('status server error', { event: 'sp.status_server_error', error }),
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    close: once(
      () =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    ),
  };
}
