import { type Logger, RateLimitedLog, type TimerHandle } from '@faultline/core';
import { DatabaseClockWatch } from './db-clock.js';
import {
  type LeaderLeaseOptions,
  maxRenewalsInFlight,
  RENEWALS_PER_INTERVAL,
  type ResolvedLeaderLeaseOptions,
  resolveLeaderLeaseOptions,
} from './options.js';
import type { AcquireResult, PreviousHolder } from './store.js';

export type LeaseEvent =
  | {
      type: 'acquired';
      epoch: number;
      /**
       * Whom the lease was taken from, when the acquiring statement saw it;
       * `silentForMs` then bounds, from above, how long that holder had not
       * renewed (or, released, heartbeated) at the time of this event.
       */
      previous?: PreviousHolder;
    }
  | { type: 'lost'; epoch: number; reason: string };

/** A term: the lease under one epoch, won in the database; `reported` once valid here. */
interface Term {
  epoch: number;
  /** The holder it was taken from; `silentSince` (monotonic) is no later than its last renewal. */
  previous: { nodeId: string; epoch: number; silentSince?: number } | undefined;
  /** Monotonic instant the acquire was answered: a renewal sent before it may have run before the lease was taken. */
  answeredAt: number;
  reported: boolean;
  /** Past this (monotonic) the node fences itself. */
  validUntil: number;
  /** Monotonic and wall-clock start of the statement the validity counts from. */
  fromMono: number;
  fromWall: number;
}

/**
 * A leader lease in the cluster database with self-fencing (README, "Stream
 * processor: the active/passive pair").
 *
 * Validity: the lease is valid on this node until (start of the newest
 * successful renewal + lease − margin) on its own monotonic clock, which ends
 * before the database can expire it (it measures from the renewal's
 * execution, later). `isValid()` is the synchronous check every output path
 * makes, so a process that wakes from a pause fences itself before it acts.
 *
 * Renewals do not wait for one another (issue "Robust under strain"): the
 * holder starts one every interval / 8, each abandoned (its statement timed
 * out) once it could no longer extend the validity, so at most
 * ⌈(lease − margin) / (interval / 8)⌉ are in flight. The lease survives
 * statement latency up to about lease − margin − interval / 8 (1 575 ms at
 * 1 000 ms × 2 and 300 ms), even latency that sets in at once, where waiting
 * for each renewal in turn gave up at 700 ms. An acquire that is slow to
 * answer gets renewals too, for the epoch it expects to win (the lease was
 * seen expiring), so a lease taken while the database is slow is kept too.
 *
 * Clocks: every renew and acquire statement returns the database clock,
 * which DatabaseClockWatch compares with this node's monotonic clock. When
 * they disagree by more than the margin (the database host's clock stepped,
 * this host was suspended) the holder steps down, and no node acquires until
 * its readings have agreed again for a whole lease. An acquire is taken only
 * if the lease has also expired by this node's own reckoning of database
 * time, so a step between two readings cannot end the holder's lease early.
 * A node with no such reckoning yet (just started, or back after a window
 * without a reading) only reads for a lease too: the holder's last renewal
 * may predate a step it never saw, and a lease later that holder has fenced
 * itself. So a cold start has its first leader one lease (2 s by default)
 * after its first reading.
 * And a wall clock that ran ahead of the monotonic clock since the last
 * renewal (a suspend the monotonic clock slept through) fences at once.
 */
export class LeaderLease {
  private term: Term | undefined;
  /** The acquire in flight. */
  private attempt: { sentAt: number } | undefined;
  /** Whether this node has held the lease since it started, and when it started (monotonic). */
  private everHeld = false;
  private startedAt: number | undefined;
  /** The epoch the acquire in flight expects to win (the lease was seen expiring), for renewals sent before its answer. */
  private speculation: number | undefined;
  /** The lease row as last seen: whose, under which epoch, expiring when (database time). */
  private seen: { epoch: number; expiresAtMs: number } | undefined;
  private readonly renewals = new Map<object, { epoch: number; sentAt: number }>();
  private heartbeating = false;
  private ticker: TimerHandle | undefined;
  private fence: TimerHandle | undefined;
  private atExpiry: TimerHandle | undefined;
  private renewTimer: TimerHandle | undefined;
  private closed = false;
  private readonly options: ResolvedLeaderLeaseOptions;
  private readonly leaseMs: number;
  /** How long after its start a statement can still extend the validity: lease − margin. */
  private readonly usefulMs: number;
  private readonly renewEveryMs: number;
  private readonly maxRenewals: number;
  private readonly dbClock: DatabaseClockWatch;
  private readonly log: Logger;
  private readonly failures: RateLimitedLog;

  constructor(input: LeaderLeaseOptions) {
    this.options = resolveLeaderLeaseOptions(input);
    const { heartbeatIntervalMs, heartbeatMaxRetry, fencingMarginMs, clock } = this.options;
    this.leaseMs = heartbeatIntervalMs * heartbeatMaxRetry;
    this.usefulMs = this.leaseMs - fencingMarginMs;
    // After a renewal starts, the lease survives only if another starts and comes back within
    // lease − margin: a database that turns slow at once is survived up to lease − margin − this cadence.
    this.renewEveryMs = Math.max(1, heartbeatIntervalMs / RENEWALS_PER_INTERVAL);
    this.maxRenewals = maxRenewalsInFlight(this.options);
    this.dbClock = new DatabaseClockWatch(fencingMarginMs, 2 * this.leaseMs);
    this.log = this.options.logger.child({ component: 'lease' });
    this.failures = new RateLimitedLog(this.log, clock);
  }

  /** Epoch of the lease this node holds and may act under, else undefined. */
  get epoch(): number | undefined {
    return this.isValid() ? this.term?.epoch : undefined;
  }

  get lengthMs(): number {
    return this.leaseMs;
  }

  /** Synchronous fence: held, and not past its self-fencing deadline. */
  isValid(): boolean {
    const term = this.term;
    if (!term?.reported) return false;
    const { clock, fencingMarginMs } = this.options;
    const mono = clock.monotonicNow();
    if (mono >= term.validUntil) {
      this.endTerm('self-fenced: no successful renewal in time');
      return false;
    }
    // A host suspended while the monotonic clock stood still: the wall clock says how long it slept.
    const ahead = clock.now() - term.fromWall - (mono - term.fromMono);
    if (ahead > fencingMarginMs) {
      this.endTerm(`self-fenced: the wall clock ran ${Math.round(ahead)} ms ahead of the monotonic clock`);
      return false;
    }
    return true;
  }

  start(): void {
    if (this.ticker || this.closed) return;
    this.startedAt = this.options.clock.monotonicNow();
    this.ticker = this.options.clock.setInterval(() => this.tick(), this.options.heartbeatIntervalMs);
    this.tick();
  }

  /** Stops; a held lease is released so the peer takes over without waiting for expiry. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const { clock } = this.options;
    clock.clearInterval(this.ticker);
    for (const timer of [this.fence, this.atExpiry, this.renewTimer]) clock.clearTimeout(timer);
    const term = this.term;
    this.term = undefined;
    if (!term) return;
    if (term.reported) this.options.onChange({ type: 'lost', epoch: term.epoch, reason: 'shutting down' });
    await this.release(term.epoch, 'the peer waits for expiry');
  }

  /**
   * Gives the lease up now (this node cannot serve: its port is taken, say)
   * but keeps heartbeating, so it may lead again later.
   */
  async resign(reason: string): Promise<void> {
    const term = this.term;
    if (!term) return;
    this.endTerm(reason);
    await this.release(term.epoch, 'the peer waits for expiry');
  }

  private tick(): void {
    if (this.closed) return;
    const term = this.term;
    // Won in the database but never valid here within a lease (the database is slower than the lease): let it go.
    if (term && !term.reported && this.options.clock.monotonicNow() - term.answeredAt >= this.leaseMs)
      this.endTerm('taken, but no statement came back in time to make it valid');
    if (!this.term) void this.acquire();
    void this.heartbeat();
  }

  /** Renewals run on their own cadence while a term is held or an acquire is out; a tick does the rest. */
  private armRenewals(): void {
    if (this.renewTimer !== undefined || this.closed) return;
    this.renewTimer = this.options.clock.setTimeout(() => {
      this.renewTimer = undefined;
      this.renewTick();
    }, this.renewEveryMs);
  }

  private renewTick(): void {
    if (this.closed) return;
    const now = this.options.clock.monotonicNow();
    // Abandoned: it can no longer extend the validity (its statement times out now too).
    for (const [key, renewal] of this.renewals) if (now - renewal.sentAt >= this.usefulMs) this.renewals.delete(key);
    const epoch = this.term?.epoch ?? (this.attempt ? this.speculation : undefined);
    if (epoch !== undefined && this.renewals.size < this.maxRenewals) void this.renew(epoch);
    else if (this.term || this.attempt) this.armRenewals();
  }

  private async renew(epoch: number): Promise<void> {
    const { store, groupId, nodeId, clock } = this.options;
    const sentAt = clock.monotonicNow();
    const wallAt = clock.now();
    const key = {};
    this.renewals.set(key, { epoch, sentAt });
    this.armRenewals();
    let result: Awaited<ReturnType<typeof store.renew>>;
    try {
      result = await store.renew(groupId, nodeId, epoch, this.leaseMs, { timeoutMs: this.usefulMs });
    } catch (error) {
      if (this.term?.epoch === epoch)
        this.failures.warn(undefined, 'renewal_failed', 'lease renewal failed', {
          event: 'lease.renewal_failed',
          epoch,
          error,
        });
      return;
    } finally {
      this.renewals.delete(key);
    }
    if (this.closed || this.sawStep(sentAt, result.dbNowMs)) return;
    if (result.renewed) this.credit(epoch, sentAt, wallAt);
    else if (!result.busy) this.refused(epoch, sentAt);
  }

  private async acquire(): Promise<void> {
    if (this.attempt || this.term || this.closed) return;
    const { store, groupId, nodeId, clock } = this.options;
    const sentAt = clock.monotonicNow();
    const wallAt = clock.now();
    const settled = this.dbClock.settled(sentAt, this.leaseMs);
    const reckonedNowMs = this.dbClock.reckon(sentAt);
    const seen = this.seen;
    this.speculation =
      settled && seen && reckonedNowMs !== undefined && seen.expiresAtMs <= reckonedNowMs ? seen.epoch + 1 : undefined;
    const attempt = { sentAt };
    this.attempt = attempt;
    this.armRenewals();
    try {
      const result = await store.tryAcquire(groupId, nodeId, this.leaseMs, {
        timeoutMs: this.usefulMs,
        // Settled implies a reckoning; never take the lease without one, so the guard below is always sent.
        readOnly: !settled || reckonedNowMs === undefined,
        // A node that has not held the lease since it started, for two leases at most (a peer that never takes it is not waited for).
        yieldOwnToPeer: !this.everHeld && sentAt - (this.startedAt ?? sentAt) < 2 * this.leaseMs,
        ...(reckonedNowMs === undefined ? {} : { reckonedNowMs }),
      });
      if (this.closed) {
        if (result.acquired) await this.release(result.epoch, 'the peer waits for expiry');
        return;
      }
      const stepped = this.sawStep(sentAt, result.dbNowMs);
      if (result.acquired) await this.won(result, sentAt, wallAt, stepped);
      else this.missed(result);
    } catch (error) {
      this.failures.warn(undefined, 'acquire_failed', 'lease acquire failed', { event: 'lease.acquire_failed', error });
    } finally {
      if (this.attempt === attempt) this.attempt = undefined;
    }
  }

  private async won(
    result: Extract<AcquireResult, { acquired: true }>,
    sentAt: number,
    wallAt: number,
    stepped: boolean,
  ) {
    this.everHeld = true;
    const now = this.options.clock.monotonicNow();
    const { epoch } = result;
    this.seen = { epoch, expiresAtMs: result.dbNowMs + this.leaseMs };
    if (stepped || !this.dbClock.settled(now, this.leaseMs)) {
      // Taken while the database clock was seen to step: given back before this node ever acts on it.
      if (this.term?.epoch === epoch) this.endTerm('the database clock stepped while the lease was taken');
      await this.release(epoch, 'it expires');
      return;
    }
    // The statement ran after `sentAt`: the holder was silent since no earlier than (sent − silence).
    const prior = result.previous;
    const previous = prior && {
      nodeId: prior.nodeId,
      epoch: prior.epoch,
      ...(prior.silentForMs === undefined ? {} : { silentSince: sentAt - prior.silentForMs }),
    };
    const term = this.term;
    if (term?.epoch === epoch) {
      // A renewal sent before this answer already made it valid (adopted): keep what it knows of the holder.
      term.previous ??= previous;
      term.answeredAt = Math.min(term.answeredAt, now);
    } else if (term) {
      await this.release(epoch, 'it expires'); // cannot be: this node held another epoch meanwhile
      return;
    } else {
      this.term = {
        epoch,
        previous,
        answeredAt: now,
        reported: false,
        validUntil: Number.NEGATIVE_INFINITY,
        fromMono: sentAt,
        fromWall: wallAt,
      };
    }
    this.credit(epoch, sentAt, wallAt);
    // No renewal was sent ahead of the answer: the first one now, not a cadence later.
    if (this.term?.epoch === epoch && this.renewals.size === 0) void this.renew(epoch);
  }

  private missed(result: Extract<AcquireResult, { acquired: false }>): void {
    this.seen = result.holder
      ? { epoch: result.holder.epoch, expiresAtMs: result.holder.expiresAtMs }
      : { epoch: 0, expiresAtMs: Number.NEGATIVE_INFINITY };
    const { clock, heartbeatIntervalMs } = this.options;
    const now = clock.monotonicNow();
    if (!this.dbClock.settled(now, this.leaseMs)) {
      // Reading for a lease (started, back, or after a step): try as soon as that is done, not a tick later.
      const settlesAt = this.dbClock.settlesAt(this.leaseMs);
      if (settlesAt === undefined || settlesAt <= now || settlesAt - now >= heartbeatIntervalMs) return;
      clock.clearTimeout(this.atExpiry);
      this.atExpiry = clock.setTimeout(() => void this.acquire(), Math.max(0, Math.ceil(settlesAt - now)));
      return;
    }
    // The holder's lease ends before our next tick: try right then (by our own reckoning of database time).
    const reckoned = this.dbClock.reckon(now);
    const waitMs = result.holder && reckoned !== undefined ? result.holder.expiresAtMs - reckoned : result.remainingMs;
    if (waitMs >= heartbeatIntervalMs) return;
    clock.clearTimeout(this.atExpiry);
    this.atExpiry = clock.setTimeout(() => void this.acquire(), Math.max(0, Math.ceil(waitMs)) + 5);
  }

  /** A statement proved the lease ours under `epoch` from `sentAt` on: valid until sentAt + lease − margin. */
  private credit(epoch: number, sentAt: number, wallAt: number): void {
    const now = this.options.clock.monotonicNow();
    if (!this.term && this.speculation === epoch && this.dbClock.settled(now, this.leaseMs)) {
      // A renewal sent for the epoch the acquire expected came back first: the acquire won.
      this.term = {
        epoch,
        previous: undefined,
        answeredAt: now,
        reported: false,
        validUntil: Number.NEGATIVE_INFINITY,
        fromMono: sentAt,
        fromWall: wallAt,
      };
    }
    const term = this.term;
    if (term?.epoch !== epoch) return;
    // Lapsed already (a late fence timer): lost, whatever comes back now.
    if (term.reported && !this.isValid()) return;
    const until = sentAt + this.usefulMs;
    if (until <= now) return;
    if (until > term.validUntil) {
      term.validUntil = until;
      term.fromMono = sentAt;
      term.fromWall = wallAt;
      const { clock } = this.options;
      clock.clearTimeout(this.fence);
      this.fence = clock.setTimeout(() => this.isValid(), Math.max(0, until - now));
    }
    if (!term.reported) this.report(term, now);
  }

  private report(term: Term, now: number): void {
    term.reported = true;
    this.speculation = undefined;
    const prior = term.previous;
    const previous: PreviousHolder | undefined = prior && {
      nodeId: prior.nodeId,
      epoch: prior.epoch,
      ...(prior.silentSince === undefined ? {} : { silentForMs: Math.max(0, Math.round(now - prior.silentSince)) }),
    };
    this.log.info('lease acquired', { event: 'lease.acquired', epoch: term.epoch, previous });
    this.options.onChange({ type: 'acquired', epoch: term.epoch, ...(previous ? { previous } : {}) });
  }

  /** A renewal refused: the lease was taken or expired, unless it may have run before the acquire did. */
  private refused(epoch: number, sentAt: number): void {
    const term = this.term;
    if (term?.epoch !== epoch || sentAt < term.answeredAt) return;
    this.endTerm('renewal refused: the lease was taken or expired');
  }

  /** Compares the reading with the node's clock; on a step, steps down (and acquires nothing for a lease). */
  private sawStep(sentAt: number, dbNowMs: number): boolean {
    const answeredAt = this.options.clock.monotonicNow();
    const stepMs = this.dbClock.observe(sentAt, answeredAt, dbNowMs);
    if (stepMs === undefined) return false;
    this.log.warn('the database clock and this node’s disagree: no lease until they agree again for a lease', {
      event: 'lease.clock_step',
      stepMs: Math.round(stepMs),
      epoch: this.term?.epoch,
      quietMs: this.leaseMs,
    });
    this.speculation = undefined;
    if (this.term) this.endTerm(`the database clock moved ${Math.round(stepMs)} ms against this node’s`);
    return true;
  }

  private endTerm(reason: string): void {
    const term = this.term;
    if (!term) return;
    this.term = undefined;
    this.speculation = undefined;
    this.options.clock.clearTimeout(this.fence);
    if (!term.reported) {
      this.log.info('lease taken but never valid here', { event: 'lease.not_kept', epoch: term.epoch, reason });
      return;
    }
    this.log.warn('lease lost', { event: 'lease.lost', epoch: term.epoch, reason });
    this.options.onChange({ type: 'lost', epoch: term.epoch, reason });
  }

  private async release(epoch: number, otherwise: string): Promise<void> {
    const { store, groupId, nodeId } = this.options;
    await store.release(groupId, nodeId, epoch).catch((error) => {
      this.log.warn(`lease release failed; ${otherwise}`, { event: 'lease.release_failed', epoch, error });
    });
  }

  private async heartbeat(): Promise<void> {
    if (this.heartbeating) return;
    this.heartbeating = true;
    const { store, groupId, nodeId } = this.options;
    try {
      await store.heartbeat(groupId, { nodeId, ...this.options.describe() });
    } catch (error) {
      this.log.debug('node heartbeat failed', { event: 'lease.heartbeat_failed', error });
    } finally {
      this.heartbeating = false;
    }
  }
}
