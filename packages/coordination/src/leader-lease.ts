import type { Logger, TimerHandle } from '@faultline/core';
import { type LeaderLeaseOptions, type ResolvedLeaderLeaseOptions, resolveLeaderLeaseOptions } from './options.js';

export type LeaseEvent = { type: 'acquired'; epoch: number } | { type: 'lost'; epoch: number; reason: string };

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
  private readonly options: ResolvedLeaderLeaseOptions;
  private readonly leaseMs: number;
  private readonly log: Logger;

  constructor(input: LeaderLeaseOptions) {
    this.options = resolveLeaderLeaseOptions(input);
    this.leaseMs = this.options.heartbeatIntervalMs * this.options.heartbeatMaxRetry;
    this.log = this.options.logger.child({ component: 'lease' });
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
    this.ticker = this.options.clock.setInterval(() => void this.tick(), this.options.heartbeatIntervalMs);
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
        this.log.warn('lease release failed; the peer waits for expiry', { event: 'lease.release_failed', error });
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
          this.log.info('lease acquired', { event: 'lease.acquired', epoch: result.epoch });
          this.options.onChange({ type: 'acquired', epoch: result.epoch });
        } else if (!result.acquired && result.remainingMs < this.options.heartbeatIntervalMs) {
          // The holder's lease ends before our next tick: try right then, not
          // up to one interval later (this is most of the failover time).
          clock.clearTimeout(this.atExpiry);
          this.atExpiry = clock.setTimeout(() => void this.tick(), result.remainingMs + 5);
        }
      }
    } catch (error) {
      if (this.held) this.log.warn('lease renewal failed', { event: 'lease.renewal_failed', error });
      else this.log.warn('lease acquire failed', { event: 'lease.acquire_failed', error });
    } finally {
      this.ticking = false;
    }
    await store
      .heartbeat(groupId, { nodeId, ...this.options.describe() })
      .catch((error) => this.log.debug('node heartbeat failed', { event: 'lease.heartbeat_failed', error }));
  }

  private extend(started: number): void {
    const held = this.held;
    if (!held) return;
    held.validUntil = started + this.leaseMs - this.options.fencingMarginMs;
    const { clock } = this.options;
    clock.clearTimeout(this.fence);
    this.fence = clock.setTimeout(() => this.isValid(), Math.max(0, held.validUntil - clock.monotonicNow()));
  }

  private lose(reason: string): void {
    const held = this.held;
    if (!held) return;
    this.held = undefined;
    this.options.clock.clearTimeout(this.fence);
    this.log.warn('lease lost', { event: 'lease.lost', epoch: held.epoch, reason });
    this.options.onChange({ type: 'lost', epoch: held.epoch, reason });
  }
}
