import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Clock, type Logger, nullLogger, once, systemClock, type TimerHandle } from '@faultline/core';

export interface WorkloadOptions {
  /** How long each `GET /` takes to answer: the demo's service time. @default 20 */
  latencyMs?: number;
  /** @default systemClock */
  clock?: Clock;
  /** @default nullLogger */
  logger?: Logger;
}

export interface WorkloadCounters {
  /** `GET /` requests answered. */
  served: number;
  /** `GET /` requests whose client went away before the answer. */
  aborted: number;
  /** Requests refused: unknown path (404) or method (405). */
  rejected: number;
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
 */
export function createWorkload(options: WorkloadOptions = {}): Workload {
  const latencyMs = options.latencyMs ?? 20;
  const clock = options.clock ?? systemClock;
  const log = (options.logger ?? nullLogger).child({ component: 'workload' });
  const counters: WorkloadCounters = { served: 0, aborted: 0, rejected: 0 };
  const timers = new Set<TimerHandle>();
  let inFlight = 0;

  const json = (res: http.ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };

  const serve = (req: http.IncomingMessage, res: http.ServerResponse) => {
    inFlight += 1;
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
      counters.rejected += 1;
      log.debug('request refused', { method: req.method, url });
      json(res, 405, { error: 'method not allowed' });
      return;
    }
    switch (url) {
      case '/':
        serve(req, res);
        return;
      case '/healthz':
        json(res, 200, { status: 'ok', requestsInFlight: inFlight, served: counters.served });
        return;
      case '/stats':
        json(res, 200, { requestsInFlight: inFlight, served: counters.served } satisfies WorkloadStats);
        return;
      default:
        counters.rejected += 1;
        log.debug('request refused', { method: req.method, url });
        json(res, 404, { error: 'not found' });
    }
  });
  // A client error (bad HTTP) closes that socket only; never crash the instance.
  server.on('clientError', (error, socket) => {
    counters.rejected += 1;
    log.debug('bad request', { error });
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
