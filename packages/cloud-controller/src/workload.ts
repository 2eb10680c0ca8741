import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { once, type TimerHandle } from '@faultline/core';
import { resolveWorkloadOptions, type WorkloadOptions } from './workload-options.js';

export interface WorkloadCounters {
  /** `GET /` requests answered. */
  served: number;
  /** `GET /` requests whose client went away before the answer. */
  aborted: number;
  /** Requests refused: unknown path (404) or method (405). */
  rejected: number;
  /** `GET /` requests refused because the workload drains (503). */
  refusedDraining: number;
}

/** The body of `GET /stats` (and, with `status`, of `GET /healthz`). */
export interface WorkloadStats {
  requestsInFlight: number;
  served: number;
}

export interface Workload {
  /** Listens; resolves with the port (0 picks a free one, which is how the local driver runs it). */
  listen(port: number, host: string): Promise<number>;
  readonly requestsInFlight: number;
  readonly counters: Readonly<WorkloadCounters>;
  /**
   * Graceful drain (README "Autoscaler → Graceful drain"): from now on `GET /`
   * is refused (503, `Connection: close`: no work done, the client may go
   * elsewhere), the requests in flight are finished (their answers close
   * their connections), idle keep-alive connections are closed, and
   * `GET /drain` answers 200 once none is in flight. Idempotent.
   */
  drain(): void;
  readonly draining: boolean;
  /** Stops listening and drops open connections. Idempotent. */
  close(): Promise<void>;
}

/**
 * The member's workload: the "instance" of a member for the local driver. A
 * small HTTP service whose requests take `latencyMs` and which counts the
 * requests it is serving, the figure the cartridge agent reports as
 * `requests_in_flight` (the Stratos health stat the scaling rule uses).
 *   GET /         → 200 after latencyMs
 *   GET /healthz  → 200 { status: 'ok', requestsInFlight, served }: the agent's activation check
 *   GET /stats    → 200 { requestsInFlight, served }
 *   GET /drain    → 200 once draining and idle, else 503 (the driver's wait)
 */
export function createWorkload(input: WorkloadOptions = {}): Workload {
  const { latencyMs, clock, logger } = resolveWorkloadOptions(input);
  const log = logger.child({ component: 'workload' });
  const counters: WorkloadCounters = { served: 0, aborted: 0, rejected: 0, refusedDraining: 0 };
  const timers = new Set<TimerHandle>();
  let inFlight = 0;
  /** `GET /` answers not yet handed to the kernel (or given up): a drain is idle only once these are done too. */
  let unfinished = 0;
  let draining = false;

  const json = (res: http.ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };

  /** An unknown path (404) or method (405). */
  const refuse = (req: http.IncomingMessage, res: http.ServerResponse, status: 404 | 405, url: string | undefined) => {
    counters.rejected += 1;
    log.debug('request refused', { event: 'workload.request_refused', method: req.method, url });
    json(res, status, { error: status === 404 ? 'not found' : 'method not allowed' });
  };

  const serve = (req: http.IncomingMessage, res: http.ServerResponse) => {
    inFlight += 1;
    unfinished += 1;
    res.once('close', () => {
      unfinished -= 1;
    });
    let done = false;
    const finish = (answered: boolean) => {
      if (done) return;
      done = true;
      inFlight -= 1;
      clock.clearTimeout(timer);
      timers.delete(timer);
      if (answered) counters.served += 1;
      else counters.aborted += 1;
    };
    const timer = clock.setTimeout(() => {
      finish(true);
      // Draining: the client's next request goes elsewhere, on a new connection.
      if (draining) res.setHeader('connection', 'close');
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok\n');
    }, latencyMs);
    timers.add(timer);
    // A client that gives up no longer counts as in flight.
    req.once('close', () => {
      if (!res.writableEnded) finish(false);
    });
  };

  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') {
      refuse(req, res, 405, url);
      return;
    }
    switch (url) {
      case '/':
        if (draining) {
          counters.refusedDraining += 1;
          res.writeHead(503, { 'content-type': 'application/json', connection: 'close', 'retry-after': '0' });
          res.end(JSON.stringify({ error: 'draining' }));
          return;
        }
        serve(req, res);
        return;
      case '/drain':
        json(res, draining && inFlight === 0 && unfinished === 0 ? 200 : 503, { draining, requestsInFlight: inFlight });
        return;
      case '/healthz':
        json(res, 200, { status: 'ok', requestsInFlight: inFlight, served: counters.served });
        return;
      case '/stats':
        json(res, 200, { requestsInFlight: inFlight, served: counters.served } satisfies WorkloadStats);
        return;
      default:
        refuse(req, res, 404, url);
    }
  });
  // A client error (bad HTTP) closes that socket only; never crash the instance.
  server.on('clientError', (error, socket) => {
    counters.rejected += 1;
    log.debug('bad request', { event: 'workload.bad_request', error });
    socket.destroy();
  });

  return {
    listen: (port, host) =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve((server.address() as AddressInfo).port);
        });
      }),
    get requestsInFlight() {
      return inFlight;
    },
    get draining() {
      return draining;
    },
    drain: () => {
      if (draining) return;
      draining = true;
      log.info('workload draining', { event: 'workload.draining', requestsInFlight: inFlight });
      // Keep-alive connections with no request under way: closed now, so no new request arrives on them.
      server.closeIdleConnections();
    },
    counters,
    close: once(async () => {
      for (const timer of timers) clock.clearTimeout(timer);
      timers.clear();
      // close()'s callback comes in every case (with an error when it never listened).
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    }),
  };
}
