import type { ActionEntry } from '@faultline/autoscaler';
import { type Clock, type Logger, type TimerHandle, withDefaults } from '@faultline/core';

export interface ActionFeedOptions {
  /** Up to `limit` actions with an id above `afterId`, oldest first (readActionsAfter). */
  readAfter: (afterId: number, limit: number) => Promise<ActionEntry[]>;
  /** The newest `limit` actions, newest first (readLastActions): the timeline a new page starts with. */
  readLatest: (limit: number) => Promise<ActionEntry[]>;
  clock: Clock;
  logger: Logger;
  /** How often the registry is read for new actions. @default 1000 */
  pollIntervalMs?: number;
  /**
   * How long a hole in the ids is waited for: an action committed after one
   * with a higher id (two writers, a slow transaction) is still delivered if
   * it shows up within this time; an id never used (a rolled back insert) is
   * given up after it. @default 10000
   */
  gapWaitMs?: number;
  /** Actions kept for a page that connects or reconnects (Last-Event-ID). @default 500 */
  backlog?: number;
  /** Rows read at most per poll. @default 500 */
  batch?: number;
}

const DEFAULTS = { pollIntervalMs: 1_000, gapWaitMs: 10_000, backlog: 500, batch: 500 };

/**
 * The autoscaler's actions as they are recorded, for the console's live
 * timeline: the registry's action table re-read every poll interval (the
 * registry is the truth; no message to lose), each action handed to every
 * listener once. An action that commits late under a lower id than one
 * already seen is still delivered (holes are waited for, gapWaitMs), so the
 * feed is complete without reading the table twice. The last `backlog`
 * actions are kept for pages that connect or reconnect. Reading failures
 * (PostgreSQL down) are logged once per outage and counted; polling goes on.
 */
export class ActionFeed {
  private readonly options: Required<Omit<ActionFeedOptions, 'readAfter' | 'readLatest' | 'clock' | 'logger'>>;
  private readonly listeners = new Set<(actions: ActionEntry[]) => void>();
  /** Every id at or below it was delivered or given up; -1 before the first read. */
  private floor = -1;
  /** Ids above the floor already delivered. */
  private readonly above = new Set<number>();
  /** Since when the hole right above the floor is waited for. */
  private holeSince: number | undefined;
  private readonly kept: ActionEntry[] = [];
  private timer: TimerHandle | undefined;
  private polling: Promise<void> | undefined;
  private closed = false;
  private failing = false;
  readonly counts = { polls: 0, readErrors: 0, delivered: 0, holesGivenUp: 0 };

  constructor(private readonly input: ActionFeedOptions) {
    this.options = withDefaults(DEFAULTS, {
      pollIntervalMs: input.pollIntervalMs,
      gapWaitMs: input.gapWaitMs,
      backlog: input.backlog,
      batch: input.batch,
    });
  }

  /** Starts polling; the first poll reads the newest `backlog` actions. */
  start(): void {
    this.schedule(0);
  }

  /** `listener` gets each batch of new actions from now on; returns its unsubscribe. */
  subscribe(listener: (actions: ActionEntry[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The kept actions with an id above `lastId` (all of them without one), in id order. */
  since(lastId?: number): ActionEntry[] {
    const out = lastId === undefined ? [...this.kept] : this.kept.filter((a) => a.id > lastId);
    return out.sort((a, b) => a.id - b.id);
  }

  /** One poll now (tests; the timer calls it too). */
  poll(): Promise<void> {
    this.polling ??= this.read().finally(() => {
      this.polling = undefined;
    });
    return this.polling;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== undefined) this.input.clock.clearTimeout(this.timer);
    this.listeners.clear();
    await this.polling;
  }

  private schedule(ms: number): void {
    if (this.closed) return;
    this.timer = this.input.clock.setTimeout(() => {
      void this.poll().finally(() => this.schedule(this.options.pollIntervalMs));
    }, ms);
  }

  private async read(): Promise<void> {
    const { clock, logger } = this.input;
    this.counts.polls += 1;
    let rows: ActionEntry[];
    try {
      rows =
        this.floor < 0
          ? (await this.input.readLatest(this.options.backlog)).reverse()
          : await this.input.readAfter(this.floor, this.options.batch);
      if (this.failing) logger.info('the action feed reads the registry again', { event: 'console.feed_resumed' });
      this.failing = false;
    } catch (error) {
      this.counts.readErrors += 1;
      if (!this.failing)
        logger.warn('the action feed cannot read the registry', { event: 'console.feed_failed', error });
      this.failing = true;
      return;
    }
    if (this.closed) return;
    if (this.floor < 0) {
      // The first read: what is there is history, delivered as it is; the floor starts at its newest id.
      this.floor = rows.reduce((max, a) => Math.max(max, a.id), 0);
      this.keep(rows);
      return;
    }
    const fresh = rows.filter((a) => a.id > this.floor && !this.above.has(a.id));
    for (const a of fresh) this.above.add(a.id);
    this.advance(clock.now());
    if (fresh.length === 0) return;
    this.keep(fresh);
    this.counts.delivered += fresh.length;
    for (const listener of this.listeners) {
      try {
        listener(fresh);
      } catch (error) {
        logger.error('an action feed listener failed', { event: 'console.feed_listener_failed', error });
      }
    }
  }

  /** Moves the floor over delivered ids; a hole waited for past gapWaitMs is given up. */
  private advance(now: number): void {
    for (;;) {
      const before = this.floor;
      while (this.above.delete(this.floor + 1)) this.floor += 1;
      if (this.floor !== before) this.holeSince = undefined;
      if (this.above.size === 0) {
        this.holeSince = undefined;
        return;
      }
      this.holeSince ??= now;
      if (now - this.holeSince < this.options.gapWaitMs) return;
      // Given up: the floor jumps to just below the lowest delivered id above it.
      this.counts.holesGivenUp += 1;
      this.floor = Math.min(...this.above) - 1;
      this.holeSince = undefined;
    }
  }

  private keep(actions: ActionEntry[]): void {
    this.kept.push(...actions);
    if (this.kept.length > this.options.backlog) this.kept.splice(0, this.kept.length - this.options.backlog);
  }
}
