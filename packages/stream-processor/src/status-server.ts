import { timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type net from 'node:net';
import { type Clock, ID_PATTERN_DESCRIPTION, type Logger, once, RateLimitedLog, systemClock } from '@faultline/core';
import { isId } from '@faultline/protocol';
import type { Registry } from 'prom-client';
import type { SpNode, SpStatus } from './node.js';

export interface StatusServerOptions {
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  /** The bearer token `/engine` requires: the content of the file `security.statusTokenFile`. */
  engineToken: Buffer;
  logger: Logger;
  /** Paces the refusal log records. @default systemClock */
  clock?: Clock;
  /** Served at `GET /metrics` (Prometheus text format); without it, a 404. */
  metrics?: Registry;
}

/**
 * Whether the node does its part of the pair: an active holding its lease
 * (its epoch) with its Thrift port open, or a passive following an active.
 * A node starting, stepping down, or passive and unlinked is not ready.
 */
export function readiness(status: SpStatus): { ready: boolean; reason: string } {
  if (status.role === 'ACTIVE') {
    if (status.epoch === undefined || status.thriftPort === undefined)
      return { ready: false, reason: 'active without its lease or its Thrift port' };
    return { ready: true, reason: 'active, accepting agents' };
  }
  if (status.role === 'PASSIVE') {
    if (status.following === undefined) return { ready: false, reason: 'passive, following no active' };
    return { ready: true, reason: `passive, following ${status.following.nodeId}` };
  }
  return { ready: false, reason: 'stepping down' };
}

/** The health routes (Patroni's): alive, ready, and one per role, 200 only in it. */
const HEALTH_ROUTES = new Set(['/health', '/readiness', '/active', '/passive']);

/** What the status server has answered; merged into `/status`'s counters. */
export interface StatusServerCounters {
  /** `/engine` answered: the only place the engine's whole state is serialized. */
  engineServed: number;
  /** `/metrics` answered. */
  metricsServed: number;
  /** `/engine` or `/status` with another method than GET (405). */
  statusRefusedMethod: number;
  /** `/engine` without the status token or with a wrong one (401). */
  statusRefusedToken: number;
}

const json = { 'content-type': 'application/json' };

/**
 * Most members whose whole state `/engine` makes: it is made and serialized
 * in one turn of the event loop, ~2.6 s at 100 000 members on an active,
 * which lost its lease to the request. Above it, one member's part
 * (`?member=<id>`) is what is served.
 */
export const MAX_WHOLE_ENGINE_MEMBERS = 10_000;

/**
 * The node's status over HTTP, on loopback unless `sp.nodes[].statusHost`
 * says otherwise. Health (README "Operations → Health endpoints"): `GET
 * /health` 200 while the event loop turns; `/readiness` 200 while the node
 * does its part (`readiness`); `/active` and `/passive` 200 only in that
 * role, 503 otherwise, so a load balancer or a probe routes agents to the
 * active; each answers its role, epoch and reason as JSON. `GET /metrics`:
 * Prometheus. `GET /status` (role, epoch,
 * passive and lag, counters, engine summary; open to any local caller, the
 * CLI's `stack status` reads it) and `GET /engine` (the engine's whole state,
 * up to MAX_WHOLE_ENGINE_MEMBERS members, tests compare the two nodes with it;
 * `?member=<id>`: that member's part, at any size), which needs
 * `Authorization: Bearer <status token>`. The method and the token are checked before anything is
 * read: another method is a 405, no or a wrong token a 401, each counted and
 * logged (`sp.status_request_refused`, at most once per 10 s per reason).
 */
export async function startStatusServer(
  node: SpNode,
  options: StatusServerOptions,
): Promise<{ port: number; counters: Readonly<StatusServerCounters>; close(): Promise<void> }> {
  const expected = Buffer.concat([Buffer.from('Bearer '), options.engineToken]);
  const counters: StatusServerCounters = {
    engineServed: 0,
    metricsServed: 0,
    statusRefusedMethod: 0,
    statusRefusedToken: 0,
  };
  const refusals = new RateLimitedLog(options.logger, options.clock ?? systemClock);
  const server = http.createServer((request, response) => {
    const [path, query] = (request.url ?? '').split('?', 2);
    const reply = (status: number, body: unknown, headers: Record<string, string> = {}) =>
      response.writeHead(status, { ...json, ...headers }).end(JSON.stringify(body));
    const refuse = (counter: 'statusRefusedMethod' | 'statusRefusedToken', reason: string) => {
      counters[counter] += 1;
      refusals.warn(request.socket.remoteAddress ?? 'unknown', reason, 'status request refused', {
        event: 'sp.status_request_refused',
        reason,
        method: request.method,
        path: path?.slice(0, 64),
      });
    };
    const route = path ?? '';
    const metrics = route === '/metrics' ? options.metrics : undefined;
    if (route !== '/status' && route !== '/engine' && !HEALTH_ROUTES.has(route) && !metrics) {
      reply(404, { error: 'not found' });
      return;
    }
    // HEAD too on the health routes: some load balancers probe with it.
    if (request.method !== 'GET' && !(request.method === 'HEAD' && HEALTH_ROUTES.has(route))) {
      refuse('statusRefusedMethod', 'method_not_allowed');
      reply(405, { error: 'method not allowed' }, { allow: 'GET' });
      return;
    }
    if (HEALTH_ROUTES.has(route)) {
      const status = node.status();
      const { ready, reason } = readiness(status);
      const up =
        route === '/health' ||
        (route === '/readiness' && ready) ||
        (route === '/active' && status.role === 'ACTIVE' && status.epoch !== undefined) ||
        (route === '/passive' && status.role === 'PASSIVE');
      reply(up ? 200 : 503, { node: status.nodeId, role: status.role, epoch: status.epoch ?? null, ready, reason });
      return;
    }
    if (metrics) {
      counters.metricsServed += 1;
      metrics.metrics().then(
        (text) => response.writeHead(200, { 'content-type': metrics.contentType }).end(text),
        (error: unknown) => {
          options.logger.error('metrics could not be collected', { event: 'sp.metrics_failed', error });
          reply(500, { error: 'metrics could not be collected' });
        },
      );
      return;
    }
    if (path === '/status') {
      const status = node.status();
      reply(200, { ...status, counters: { ...status.counters, ...counters } });
      return;
    }
    const given = Buffer.from(request.headers.authorization ?? '');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      refuse('statusRefusedToken', 'bad_token');
      reply(401, { error: 'unauthorized' });
      return;
    }
    const member = new URLSearchParams(query ?? '').get('member');
    if (member !== null) {
      if (!isId(member)) {
        reply(400, { error: `member must be an id (${ID_PATTERN_DESCRIPTION})` });
        return;
      }
      const state = node.engineMemberState(member);
      if (state === undefined) {
        reply(400, { error: 'this engine keeps no state per member' });
        return;
      }
      counters.engineServed += 1;
      reply(200, state);
      return;
    }
    const members = node.engineMembers();
    if (members !== undefined && members > MAX_WHOLE_ENGINE_MEMBERS) {
      reply(413, {
        error: `the engine holds ${members} members; its whole state is served up to ${MAX_WHOLE_ENGINE_MEMBERS} (it is made in one turn of the event loop); ask for one member with ?member=<id>`,
      });
      return;
    }
    counters.engineServed += 1;
    reply(200, node.engineState());
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
    counters,
    close: once(
      () =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    ),
  };
}
