import http from 'node:http';
import type net from 'node:net';
import { LeaderLease, type LeaseEvent, type LeaseStore } from '@faultline/coordination';
import { type Clock, DEFAULTS, type Logger, nullLogger, once, withDefaults } from '@faultline/core';
import { serviceRegistry } from '@faultline/messaging';
import type { Registry } from 'prom-client';
import type { Autoscaler } from './autoscaler.js';
import type { Fence } from './fence.js';
import { autoscalerMetrics } from './metrics.js';

export type AutoscalerRole = 'ACTIVE' | 'PASSIVE';

/** The health routes (Patroni's): alive, ready, and one per role. */
const HEALTH_ROUTES = new Set(['/health', '/readiness', '/active', '/passive']);

export interface AutoscalerNodeOptions {
  /** `autoscaler.nodes[].id` */
  nodeId: string;
  /** `autoscaler.groupId`: the pair's lease (not the SP's). */
  groupId: string;
  store: LeaseStore;
  /**
   * Builds the autoscaler of one lease term, fenced by `fence` (the lease):
   * its Iaas and its registry refuse to act or write without it.
   */
  createAutoscaler: (fence: Fence) => Autoscaler;
  clock: Clock;
  /** @default DEFAULTS.heartbeatIntervalMs */
  heartbeatIntervalMs?: number;
  /** @default DEFAULTS.heartbeatMaxRetry */
  heartbeatMaxRetry?: number;
  /** @default DEFAULTS.fencingMarginMs */
  fencingMarginMs?: number;
  /** The health routes and `/metrics` on healthHost:healthPort (0: a free port); undefined: none. */
  healthPort?: number;
  /** The address the health port binds. @default '127.0.0.1' */
  healthHost?: string;
  /** @default nullLogger */
  logger?: Logger;
}

export interface AutoscalerNodeStatus {
  node: string;
  role: AutoscalerRole;
  /** The pair's lease epoch this node acts under; null when passive. */
  epoch: number | null;
  /** Lease terms this node has acted in since it started. */
  terms: number;
  /** The acting autoscaler's status; null when passive. */
  autoscaler: ReturnType<Autoscaler['status']> | null;
}

/**
 * One node of the autoscaler pair (README "The autoscaler pair"). Both nodes
 * contend for a lease in the cluster database (`coordination`'s LeaderLease,
 * group `autoscaler.groupId`); the holder builds and starts an autoscaler,
 * which adopts the members from the registry like a restarted one, and acts.
 * The other stands by with nothing open but its lease and its health
 * endpoint. On losing the lease (deposed, a database it cannot reach for a
 * lease, a pause past it) the autoscaler is closed: members keep running and
 * the next term, on either node, adopts them. Every Iaas action and registry
 * write of a term is fenced by the lease (fencedIaas, PgRegistry's fence),
 * so a deposed node that has not noticed yet acts on nothing.
 */
export class AutoscalerNode {
  private readonly options: Required<Omit<AutoscalerNodeOptions, 'healthPort'>> & { healthPort: number | undefined };
  private readonly lease: LeaderLease;
  private readonly log: Logger;
  private autoscaler: Autoscaler | undefined;
  /** Term changes, one at a time: a term starts only after the last one closed. */
  private transitions: Promise<void> = Promise.resolve();
  private terms = 0;
  private closed = false;
  private server: http.Server | undefined;
  /** Served at `GET /metrics`: read from `status()` at each scrape. */
  readonly metrics: Registry = serviceRegistry();

  constructor(input: AutoscalerNodeOptions) {
    this.options = withDefaults(
      {
        heartbeatIntervalMs: DEFAULTS.heartbeatIntervalMs as number,
        heartbeatMaxRetry: DEFAULTS.heartbeatMaxRetry as number,
        fencingMarginMs: DEFAULTS.fencingMarginMs as number,
        logger: nullLogger,
        healthPort: undefined as number | undefined,
        healthHost: '127.0.0.1',
      },
      input,
    );
    this.log = this.options.logger;
    const { store, groupId, nodeId, clock, heartbeatIntervalMs, heartbeatMaxRetry, fencingMarginMs } = this.options;
    this.lease = new LeaderLease({
      store,
      groupId,
      nodeId,
      clock,
      heartbeatIntervalMs,
      heartbeatMaxRetry,
      fencingMarginMs,
      logger: this.log,
      describe: () => ({ role: this.role, syncEndpoint: '', thriftEndpoint: '' }),
      onChange: (event) => this.onLease(event),
    });
    autoscalerMetrics(this.metrics, () => this.status());
  }

  get role(): AutoscalerRole {
    return this.autoscaler && this.lease.isValid() ? 'ACTIVE' : 'PASSIVE';
  }

  /** The health endpoint's port, once started (a free one when healthPort was 0). */
  get healthPort(): number | undefined {
    const address = this.server?.address() as net.AddressInfo | null | undefined;
    return address?.port;
  }

  status(): AutoscalerNodeStatus {
    const role = this.role;
    return {
      node: this.options.nodeId,
      role,
      epoch: role === 'ACTIVE' ? (this.lease.epoch ?? null) : null,
      terms: this.terms,
      autoscaler: role === 'ACTIVE' && this.autoscaler ? this.autoscaler.status() : null,
    };
  }

  /** Opens the health endpoint, then contends for the lease. */
  async start(): Promise<void> {
    if (this.options.healthPort !== undefined) this.server = await this.serveHealth(this.options.healthPort);
    this.lease.start();
    this.log.info('autoscaler node started, contending for the lease', {
      event: 'autoscaler.node_started',
      node: this.options.nodeId,
      groupId: this.options.groupId,
      healthPort: this.healthPort ?? null,
    });
  }

  /** Releases the lease (the peer takes over at once) after closing the term's autoscaler. Members keep running. */
  readonly close = once(async () => {
    this.closed = true;
    // A term starting finishes first (the runMain close timeout bounds it), then ends.
    await this.transitions;
    await this.endTerm('shutting down');
    await this.lease.close();
    if (this.server) {
      const server = this.server;
      await new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
    }
  });

  private onLease(event: LeaseEvent): void {
    if (event.type === 'acquired') {
      this.transitions = this.transitions.then(() => this.beginTerm(event.epoch));
    } else {
      this.transitions = this.transitions.then(() => this.endTerm(event.reason));
    }
  }

  private async beginTerm(epoch: number): Promise<void> {
    // The lease may have been lost again while the last term was closing.
    if (this.closed || this.lease.epoch !== epoch || this.autoscaler) return;
    const autoscaler = this.options.createAutoscaler(this.lease);
    this.autoscaler = autoscaler;
    this.terms += 1;
    this.log.info('autoscaler node acting under the lease: adopting the members', {
      event: 'autoscaler.node_active',
      node: this.options.nodeId,
      epoch,
    });
    try {
      await autoscaler.start();
    } catch (error) {
      this.log.error('autoscaler did not start: the lease is given up, the peer may act', {
        event: 'autoscaler.node_start_failed',
        node: this.options.nodeId,
        epoch,
        error,
      });
      await this.endTerm('its autoscaler did not start');
      await this.lease.resign('its autoscaler did not start');
    }
  }

  private async endTerm(reason: string): Promise<void> {
    const autoscaler = this.autoscaler;
    if (!autoscaler) return;
    this.autoscaler = undefined;
    this.log.warn('autoscaler node stands by: its autoscaler is closed, members keep running', {
      event: 'autoscaler.node_passive',
      node: this.options.nodeId,
      reason,
    });
    await autoscaler
      .close()
      .catch((error: unknown) =>
        this.log.warn('autoscaler close failed', { event: 'autoscaler.node_close_failed', error }),
      );
  }

  /**
   * Whether the node does its part of the pair: acting with its autoscaler
   * running, or standing by, contending for the lease.
   */
  readiness(): { ready: boolean; reason: string } {
    if (this.closed) return { ready: false, reason: 'closing' };
    if (this.role === 'PASSIVE') return { ready: true, reason: 'standing by' };
    const state = this.autoscaler?.status().state;
    return state === 'running'
      ? { ready: true, reason: 'acting' }
      : { ready: false, reason: `acting, autoscaler ${state}` };
  }

  /**
   * On healthHost (loopback by default): `GET /health` 200 with the node's
   * role, epoch and terms while its event loop turns (a paused or hung node
   * does not answer, which is how the stack's supervisor finds it);
   * `/readiness` 200 while `readiness()` says so; `/active` and `/passive`
   * 200 only in that role, 503 otherwise; `/metrics` for Prometheus. HEAD
   * too on the health routes. Anything else is a 404 or a 405.
   */
  private async serveHealth(port: number): Promise<http.Server> {
    const server = http.createServer((request, response) => {
      const path = (request.url ?? '').split('?', 1)[0] ?? '';
      const reply = (status: number, body: unknown) =>
        response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      if (!HEALTH_ROUTES.has(path) && path !== '/metrics') return reply(404, { error: 'not found' });
      if (request.method !== 'GET' && !(request.method === 'HEAD' && path !== '/metrics'))
        return reply(405, { error: 'method not allowed' });
      if (path === '/metrics') {
        this.metrics.metrics().then(
          (text) => response.writeHead(200, { 'content-type': this.metrics.contentType }).end(text),
          (error: unknown) => {
            this.log.error('metrics could not be collected', { event: 'autoscaler.metrics_failed', error });
            reply(500, { error: 'metrics could not be collected' });
          },
        );
        return;
      }
      const { node, role, epoch, terms } = this.status();
      const { ready, reason } = this.readiness();
      const up =
        path === '/health' ||
        (path === '/readiness' && ready) ||
        (path === '/active' && role === 'ACTIVE') ||
        (path === '/passive' && role === 'PASSIVE');
      reply(up ? 200 : 503, { node, role, epoch, terms, ready, reason });
    });
    server.requestTimeout = 5_000;
    server.headersTimeout = 5_000;
    server.on('error', (error) => this.log.error('health endpoint error', { event: 'autoscaler.health_error', error }));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, this.options.healthHost, () => resolve());
    });
    return server;
  }
}
