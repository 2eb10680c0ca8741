import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from './logger.js';

/*
 * The health routes every Faultline service serves (README "Operations →
 * Health endpoints"), Patroni's convention, so a load balancer, HAProxy's
 * `option httpchk` or a Kubernetes probe can route to the active node of a
 * pair and restart a hung one; and Prometheus's `/metrics`.
 */

/** What a service says of itself when probed; read afresh for every request. */
export interface HealthState {
  /** The node's own fields (its id, role, epoch, …): the body of every answer. */
  body: Record<string, unknown>;
  /** Doing its part: `/readiness` is 200. */
  ready: boolean;
  /** Why (or why not) ready, in a few words. */
  reason: string;
  /** For a node of an active/passive pair: `/active` and `/passive` are 200 only in that role; else both 404. */
  role?: 'active' | 'passive' | 'neither';
}

/** A Prometheus registry as prom-client has it (core does not depend on prom-client). */
export interface MetricsSource {
  metrics(): Promise<string>;
  readonly contentType: string;
}

export interface HealthRoutesOptions {
  state: () => HealthState;
  metrics?: MetricsSource | undefined;
  logger: Logger;
  /** Prefix of the log event of a failed scrape: `<service>.metrics_failed`. */
  service: string;
  /** Told of each request refused for its method (a 405), to count and log it. */
  onRefused?: (request: http.IncomingMessage) => void;
}

const ROUTES = new Set(['/health', '/readiness', '/active', '/passive', '/metrics']);

/**
 * A request handler for `/health` (200 while the event loop turns),
 * `/readiness` (200 while `ready`), `/active` and `/passive` (200 only in
 * that role, 503 otherwise) and `/metrics`. GET, and HEAD but on `/metrics`;
 * another method is a 405. Returns false for any other path, for the
 * caller's own routes.
 */
export function healthRoutes(
  options: HealthRoutesOptions,
): (request: http.IncomingMessage, response: http.ServerResponse) => boolean {
  const json = (response: http.ServerResponse, status: number, body: unknown) =>
    response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  return (request, response) => {
    const path = (request.url ?? '').split('?', 1)[0] ?? '';
    if (!ROUTES.has(path)) return false;
    const { metrics } = options;
    if (path === '/metrics') {
      if (!metrics) return false;
      if (request.method !== 'GET') {
        options.onRefused?.(request);
        response.writeHead(405, { allow: 'GET', 'content-type': 'application/json' });
        response.end(JSON.stringify({ error: 'method not allowed' }));
        return true;
      }
      metrics.metrics().then(
        (text) => response.writeHead(200, { 'content-type': metrics.contentType }).end(text),
        (error: unknown) => {
          options.logger.error('metrics could not be collected', { event: `${options.service}.metrics_failed`, error });
          json(response, 500, { error: 'metrics could not be collected' });
        },
      );
      return true;
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      options.onRefused?.(request);
      response.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'application/json' });
      response.end(JSON.stringify({ error: 'method not allowed' }));
      return true;
    }
    const state = options.state();
    if ((path === '/active' || path === '/passive') && state.role === undefined) return false;
    const up =
      path === '/health' ||
      (path === '/readiness' && state.ready) ||
      (path === '/active' && state.role === 'active') ||
      (path === '/passive' && state.role === 'passive');
    json(response, up ? 200 : 503, { ...state.body, ready: state.ready, reason: state.reason });
    return true;
  };
}

/** A small HTTP server of a service (status, health, metrics): what `serveHttp` returns. */
export interface ServedHttp {
  /** The port listened on (the OS's choice when asked for 0). */
  readonly port: number;
  /** Stops listening and drops the connections. Idempotent. */
  close(): Promise<void>;
}

/** Requests cut after this, checked every second: a slow or silent client cannot hold a node's sockets. */
const REQUEST_TIMEOUT_MS = 5_000;
const CONNECTIONS_CHECK_MS = 1_000;

/**
 * Serves `handler` on `host`:`port` with the limit every Faultline status
 * server keeps: a request not whole within 5 s is cut (checked every
 * second), so idle or slow clients cannot pile up. No cap on connections: a
 * cap let 64 idle sockets make `/health` fail for everyone. A server error is
 * logged as `<service>.http_error`, never thrown.
 */
export async function serveHttp(
  handler: (request: http.IncomingMessage, response: http.ServerResponse) => void,
  options: { host: string; port: number; logger: Logger; service: string },
): Promise<ServedHttp> {
  const server = http.createServer(
    {
      requestTimeout: REQUEST_TIMEOUT_MS,
      headersTimeout: REQUEST_TIMEOUT_MS,
      connectionsCheckingInterval: CONNECTIONS_CHECK_MS,
    },
    handler,
  );
  server.on('error', (error) =>
    options.logger.error('http server error', { event: `${options.service}.http_error`, error }),
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  let closing: Promise<void> | undefined;
  return {
    port: (server.address() as AddressInfo).port,
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
      return closing;
    },
  };
}

/** The health routes alone, anything else a 404: a service whose port serves nothing more. */
export function serveHealth(options: HealthRoutesOptions & { host: string; port: number }): Promise<ServedHttp> {
  const routes = healthRoutes(options);
  return serveHttp((request, response) => {
    if (!routes(request, response))
      response.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'not found' }));
  }, options);
}
