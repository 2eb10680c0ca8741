import { timingSafeEqual } from 'node:crypto';
import type http from 'node:http';
import {
  type Clock,
  type HealthState,
  healthRoutes,
  ID_PATTERN_DESCRIPTION,
  type Logger,
  type MetricsSource,
  RateLimitedLog,
  serveHttp,
  systemClock,
} from '@faultline/core';
import { isId } from '@faultline/protocol';
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
  /** Served at `GET /metrics` (a prom-client registry); without it, a 404. */
  metrics?: MetricsSource;
}

/**
 * Whether the node does its part of the pair: an active holding its lease
 * (its epoch) with its Thrift port open, or a passive following an active
 * with its snapshot applied. A node starting, stepping down, or passive and
 * unlinked or still taking the snapshot is not ready.
 */
export function readiness(status: SpStatus): { ready: boolean; reason: string } {
  if (status.role === 'ACTIVE') {
    if (status.epoch === undefined || status.thriftPort === undefined)
      return { ready: false, reason: 'active without its lease or its Thrift port' };
    return { ready: true, reason: 'active, accepting agents' };
  }
  if (status.role === 'PASSIVE') {
    const { following } = status;
    if (following === undefined) return { ready: false, reason: 'passive, following no active' };
    // Until its snapshot is applied, a takeover would start from a partial state.
    if (!following.synced) return { ready: false, reason: `passive, taking the state of ${following.nodeId}` };
    return { ready: true, reason: `passive, following ${following.nodeId}` };
  }
  return { ready: false, reason: 'stepping down' };
}

/** What the health routes answer for a node in `status` (`/active` needs the lease's epoch and the Thrift port open). */
function healthState(status: SpStatus): HealthState {
  const { ready, reason } = readiness(status);
  return {
    body: { node: status.nodeId, role: status.role, epoch: status.epoch ?? null },
    ready,
    reason,
    role:
      status.role === 'ACTIVE' && status.epoch !== undefined && status.thriftPort !== undefined
        ? 'active'
        : status.role === 'PASSIVE'
          ? 'passive'
          : 'neither',
  };
}

/** What the status server has answered; merged into `/status`'s counters. */
export interface StatusServerCounters {
  /** `/engine` answered: the only place the engine's whole state is serialized. */
  engineServed: number;
  /** `/engine` or `/status` with another method than GET (405). */
  statusRefusedMethod: number;
  /** `/engine` without the status token or with a wrong one (401). */
  statusRefusedToken: number;
  /** `/status` or `/engine` asked from another host than this one (403): only the health routes and metrics leave it. */
  statusRefusedRemote: number;
}

/** Whether `address` is this host's loopback (IPv4, IPv6, or IPv4 mapped into IPv6). */
function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return v4.startsWith('127.') || address === '::1';
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
    statusRefusedMethod: 0,
    statusRefusedToken: 0,
    statusRefusedRemote: 0,
  };
  const refusals = new RateLimitedLog(options.logger, options.clock ?? systemClock);
  const health = healthRoutes({
    state: () => healthState(node.status()),
    metrics: options.metrics,
    logger: options.logger,
    service: 'sp',
    onRefused: (request) => {
      counters.statusRefusedMethod += 1;
      refusals.warn(request.socket.remoteAddress ?? 'unknown', 'method_not_allowed', 'status request refused', {
        event: 'sp.status_request_refused',
        reason: 'method_not_allowed',
        method: request.method,
        path: request.url?.slice(0, 64),
      });
    },
  });
  const handler = (request: http.IncomingMessage, response: http.ServerResponse) => {
    const [path, query] = (request.url ?? '').split('?', 2);
    const reply = (status: number, body: unknown, headers: Record<string, string> = {}) =>
      response.writeHead(status, { ...json, ...headers }).end(JSON.stringify(body));
    const refuse = (counter: 'statusRefusedMethod' | 'statusRefusedToken' | 'statusRefusedRemote', reason: string) => {
      counters[counter] += 1;
      refusals.warn(request.socket.remoteAddress ?? 'unknown', reason, 'status request refused', {
        event: 'sp.status_request_refused',
        reason,
        method: request.method,
        path: path?.slice(0, 64),
      });
    };
    if (health(request, response)) return;
    if (path !== '/status' && path !== '/engine') {
      reply(404, { error: 'not found' });
      return;
    }
    if (request.method !== 'GET') {
      refuse('statusRefusedMethod', 'method_not_allowed');
      reply(405, { error: 'method not allowed' }, { allow: 'GET' });
      return;
    }
    // Bound to another address than loopback (statusHost), the port serves probes and Prometheus
    // elsewhere; the node's internals (peers, ports, its whole state) stay with this host.
    if (!isLoopback(request.socket.remoteAddress)) {
      refuse('statusRefusedRemote', 'not_local');
      reply(403, { error: `${path} is served to this host only` });
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
  };
  const served = await serveHttp(handler, {
    host: options.host,
    port: options.port,
    logger: options.logger,
    service: 'sp.status_server',
  });
  return { port: served.port, counters, close: served.close };
}
