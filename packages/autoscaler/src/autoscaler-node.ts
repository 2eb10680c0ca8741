import { LeaderLease, type LeaseEvent, type LeaseStore } from '@faultline/coordination';
import {
  type Clock,
  DEFAULTS,
  type Logger,
  nullLogger,
  once,
  type ServedHttp,
  serveHealth,
  serviceRegistry,
  withDefaults,
} from '@faultline/core';
import type { Registry } from 'prom-client';
import type { Autoscaler } from './autoscaler.js';
import type { ActionCount } from './autoscaler-status.js';
import type { Fence } from './fence.js';
import { autoscalerMetrics } from './metrics.js';

export type AutoscalerRole = 'ACTIVE' | 'PASSIVE';

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
  private server: ServedHttp | undefined;
  /** Served at `GET /metrics`: read from `status()` at each scrape. */
  private metrics: Registry | undefined;
  /** The counts of the terms that ended in this process: the metrics' totals add the current term's. */
  private readonly ended: AutoscalerTotals = {
    actions: [],
    faults: 0,
    faultsHeld: 0,
    spawned: 0,
    terminated: 0,
    publishErrors: 0,
  };
  /** A term's autoscaler while it closes: its counts still in the totals until they are in `ended`. */
  private closing: Autoscaler | undefined;

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
  }

  get role(): AutoscalerRole {
    return this.autoscaler && this.lease.isValid() ? 'ACTIVE' : 'PASSIVE';
  }

  /** The health endpoint's port, once started (a free one when healthPort was 0). */
  get healthPort(): number | undefined {
    return this.server?.port;
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
    await this.server?.close();
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
    this.closing = autoscaler;
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
    const done = totalsOf(autoscaler.status());
    for (const key of ['faults', 'faultsHeld', 'spawned', 'terminated', 'publishErrors'] as const)
      this.ended[key] += done[key];
    this.ended.actions = addActions(this.ended.actions, done.actions);
    this.closing = undefined;
  }

  /**
   * What this node's autoscalers counted since the process started, every
   * term's added up: counters that never go back within the process.
   */
  totals(): AutoscalerTotals {
    const current = this.autoscaler ?? this.closing;
    if (!current) return { ...this.ended, actions: [...this.ended.actions] };
    const now = totalsOf(current.status());
    return {
      actions: addActions(this.ended.actions, now.actions),
      faults: this.ended.faults + now.faults,
      faultsHeld: this.ended.faultsHeld + now.faultsHeld,
      spawned: this.ended.spawned + now.spawned,
      terminated: this.ended.terminated + now.terminated,
      publishErrors: this.ended.publishErrors + now.publishErrors,
    };
  }

  /** Its Prometheus registry, made with the health endpoint (one per process: Node's own metrics). */
  private metricsRegistry(): Registry {
    if (!this.metrics) {
      this.metrics = serviceRegistry();
      autoscalerMetrics(
        this.metrics,
        () => this.status(),
        () => this.totals(),
      );
    }
    return this.metrics;
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
  private serveHealth(port: number): Promise<ServedHttp> {
    return serveHealth({
      host: this.options.healthHost,
      port,
      state: () => {
        const { node, role, epoch, terms } = this.status();
        const { ready, reason } = this.readiness();
        return { body: { node, role, epoch, terms }, ready, reason, role: role === 'ACTIVE' ? 'active' : 'passive' };
      },
      metrics: this.metricsRegistry(),
      logger: this.log,
      service: 'autoscaler',
    });
  }
}

/** Counts of the autoscaler's terms, added up over the process (`AutoscalerNode.totals`). */
export interface AutoscalerTotals {
  actions: ActionCount[];
  faults: number;
  faultsHeld: number;
  spawned: number;
  terminated: number;
  publishErrors: number;
}

function totalsOf(status: ReturnType<Autoscaler['status']>): AutoscalerTotals {
  const { counters } = status;
  return {
    actions: status.actionCounts,
    faults: counters.faults,
    faultsHeld: counters.faultsHeld,
    spawned: counters.spawned,
    terminated: counters.terminated,
    publishErrors: counters.publishErrors,
  };
}

function addActions(a: readonly ActionCount[], b: readonly ActionCount[]): ActionCount[] {
  const sum = new Map<string, ActionCount>();
  for (const x of [...a, ...b]) {
    const key = `${x.action}\u0000${x.clusterId}`;
    const had = sum.get(key);
    sum.set(key, { ...x, count: (had?.count ?? 0) + x.count });
  }
  return [...sum.values()];
}
