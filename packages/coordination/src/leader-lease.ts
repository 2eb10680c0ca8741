import { type Clock, DEFAULTS, type Logger, nullLogger, type TimerHandle } from '@faultline/core';
import type { LeaseStore, NodeRole } from './store.js';

export type LeaseEvent = { type: 'acquired'; epoch: number } | { type: 'lost'; epoch: number; reason: string };

export interface LeaderLeaseOptions {
  store: LeaseStore;
  groupId: string;
  nodeId: string;
  /** What this node reports in its membership row at every heartbeat. */
  describe: () => { role: NodeRole; syncEndpoint: string; thriftEndpoint: string };
  onChange: (event: LeaseEvent) => void;
  /** @default DEFAULTS.heartbeatIntervalMs (1 000, WSO2 SP) */
  heartbeatIntervalMs?: number;
  /** The lease lasts interval × retries. @default DEFAULTS.heartbeatMaxRetry (2) */
  heartbeatMaxRetry?: number;
  /** Step down this long before the lease could expire in the database. @default DEFAULTS.fencingMarginMs */
  fencingMarginMs?: number;
  clock: Clock;
  logger?: Logger;
}

/**
 * A leader lease in the cluster database with self-fencing. Every interval it
 * renews (holder) or tries to acquire (everyone else). The lease is valid on
 * this node only until (start of the last successful renewal + lease −
 * margin) on its own monotonic clock: past that it steps down by itself, even
 * if the database is unreachable or the process was paused, before the peer
 * can possibly acquire (the database measures the lease from a later
 * instant, the renewal's execution). `isValid()` is the synchronous check
 * every output path makes, so a process that wakes from a pause fences
 * itself before it can act, whatever order its timers fire in.
 */
export class LeaderLease {
  private held: { epoch: number; validUntil: number } | undefined;
  private ticker: TimerHandle | undefined;
  private fence: TimerHandle | undefined;
  private atExpiry: TimerHandle | undefined;
  private ticking = false;
  private closed = false;
  private readonly leaseMs: number;
  private readonly intervalMs: number;
  private readonly marginMs: number;
  private readonly log: Logger;

  constructor(private readonly options: LeaderLeaseOptions) {
    this.intervalMs = options.heartbeatIntervalMs ?? DEFAULTS.heartbeatIntervalMs;
    this.leaseMs = this.intervalMs * (options.heartbeatMaxRetry ?? DEFAULTS.heartbeatMaxRetry);
    this.marginMs = options.fencingMarginMs ?? DEFAULTS.fencingMarginMs;
    if (this.marginMs >= this.leaseMs) throw new RangeError('fencingMarginMs must be shorter than the lease');
    this.log = (options.logger ?? nullLogger).child({ component: 'lease' });
  }

  /** Epoch of the lease this node holds and may act under, else undefined. */
  get epoch(): number | undefined {
    return this.isValid() ? this.held?.epoch : undefined;
  }

  get lengthMs(): number {
    return this.leaseMs;
  }

  /** Synchronous fence: held, and not past its self-fencing deadline. */
  isValid(): boolean {
    const held = this.held;
    if (!held) return false;
    if (this.options.clock.monotonicNow() < held.validUntil) return true;
    this.lose('self-fenced: no successful renewal in time');
    return false;
  }

  start(): void {
    if (this.ticker || this.closed) return;
    this.ticker = this.options.clock.setInterval(() => void this.tick(), this.intervalMs);
    void this.tick();
  }

  /** Stops; a held lease is released so the peer takes over without waiting for expiry. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.options.clock.clearInterval(this.ticker);
    this.options.clock.clearTimeout(this.fence);
    this.options.clock.clearTimeout(this.atExpiry);
    const held = this.held;
    this.held = undefined;
    if (held) {
      this.options.onChange({ type: 'lost', epoch: held.epoch, reason: 'shutting down' });
      await this.options.store.release(this.options.groupId, this.options.nodeId, held.epoch).catch((error) => {
        this.log.warn('lease release failed; the peer waits for expiry', { error });
      });
    }
  }

  /**
   * Gives the lease up now (this node cannot serve: its port is taken, say)
   * but keeps heartbeating, so it may lead again later.
   */
  async resign(reason: string): Promise<void> {
    const held = this.held;
    if (!held) return;
    this.lose(reason);
    await this.options.store.release(this.options.groupId, this.options.nodeId, held.epoch).catch(() => {});
  }

  private async tick(): Promise<void> {
    // A slow database must not stack renewals; the fence covers the gap.
    if (this.ticking || this.closed) return;
    this.ticking = true;
    const { store, groupId, nodeId, clock } = this.options;
    const started = clock.monotonicNow();
    try {
      const held = this.held;
      if (held) {
        const renewed = await store.renew(groupId, nodeId, held.epoch, this.leaseMs);
        if (this.held !== held) return;
        if (renewed) this.extend(started);
        else this.lose('renewal refused: the lease was taken or expired');
      } else {
        const result = await store.tryAcquire(groupId, nodeId, this.leaseMs);
        if (result.acquired && !this.closed) {
          this.held = { epoch: result.epoch, validUntil: 0 };
          this.extend(started);
          this.log.info('lease acquired', { epoch: result.epoch });
          this.options.onChange({ type: 'acquired', epoch: result.epoch });
        } else if (!result.acquired && result.remainingMs < this.intervalMs) {
          // The holder's lease ends before our next tick: try right then, not
          // up to one interval later (this is most of the failover time).
          clock.clearTimeout(this.atExpiry);
          this.atExpiry = clock.setTimeout(() => void this.tick(), result.remainingMs + 5);
        }
      }
    } catch (error) {
      this.log.warn(this.held ? 'lease renewal failed' : 'lease acquire failed', { error });
    } finally {
      this.ticking = false;
    }
    await store
      .heartbeat(groupId, { nodeId, ...this.options.describe() })
      .catch((error) => this.log.debug('node heartbeat failed', { error }));
  }

  private extend(started: number): void {
    const held = this.held;
    if (!held) return;
    held.validUntil = started + this.leaseMs - this.marginMs;
    const { clock } = this.options;
    clock.clearTimeout(this.fence);
    this.fence = clock.setTimeout(() => this.isValid(), Math.max(0, held.validUntil - clock.monotonicNow()));
  }

  private lose(reason: string): void {
    const held = this.held;
    if (!held) return;
    this.held = undefined;
    this.options.clock.clearTimeout(this.fence);
    this.log.warn('lease lost', { epoch: held.epoch, reason });
    this.options.onChange({ type: 'lost', epoch: held.epoch, reason });
  }
}
