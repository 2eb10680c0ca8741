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

/** An action as the feed hands it on: `seq` numbers the feed's deliveries (a page resumes after the last it saw). */
export interface FedAction extends ActionEntry {
  seq: number;
}

/** What a listener is told: new actions, or that the table started again (a database restored): forget what was shown. */
export type FeedEvent = { type: 'actions'; actions: FedAction[] } | { type: 'reset' };

const DEFAULTS = { pollIntervalMs: 1_000, gapWaitMs: 10_000, backlog: 500, batch: 500 };
/** Empty reads between two checks that the table did not start again below the floor. */
const RESET_CHECK_EVERY = 10;

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
  private readonly listeners = new Set<(event: FeedEvent) => void>();
  /** Every id at or below it was delivered or given up; -1 before the first read. */
  private floor = -1;
  /** Ids above the floor already delivered. */
  private readonly above = new Set<number>();
  /** Since when the hole right above the floor is waited for. */
  private holeSince: number | undefined;
  private readonly kept: FedAction[] = [];
  /** The last delivery's number: rises with every action handed on, in the order they were. */
  private seq = 0;
  /** Empty reads in a row: every RESET_CHECK_EVERY of them, the table's newest id is compared with the floor. */
  private emptyReads = 0;
  private first: Promise<void>;
  private firstDone: () => void = () => {};
  private timer: TimerHandle | undefined;
  private polling: Promise<void> | undefined;
  private closed = false;
  private failing = false;
  readonly counts = { polls: 0, readErrors: 0, delivered: 0, holesGivenUp: 0, resets: 0 };

  constructor(private readonly input: ActionFeedOptions) {
    this.options = withDefaults(DEFAULTS, {
      pollIntervalMs: input.pollIntervalMs,
      gapWaitMs: input.gapWaitMs,
      backlog: input.backlog,
      batch: input.batch,
    });
    this.first = new Promise((resolve) => {
      this.firstDone = resolve;
    });
  }

  /** Resolves once the first read succeeded: before it, `since()` knows no history yet. */
  ready(): Promise<void> {
    return this.first;
  }

  /** Starts polling; the first poll reads the newest `backlog` actions. */
  start(): void {
    this.schedule(0);
  }

  /** `listener` gets each batch of new actions (and resets) from now on; returns its unsubscribe. */
  subscribe(listener: (event: FeedEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * The kept actions delivered after delivery `lastSeq` (all of them without
   * one), in delivery order: a page that reconnects gets what it missed, late
   * commits under a lower id included.
   */
  since(lastSeq?: number): FedAction[] {
    return lastSeq === undefined ? [...this.kept] : this.kept.filter((a) => a.seq > lastSeq);
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
      // A full batch of ids all delivered (a burst behind a hole): read on past the highest delivered.
      if (this.floor >= 0 && rows.length >= this.options.batch && rows.every((a) => this.above.has(a.id)))
        rows = await this.input.readAfter(Math.max(...this.above), this.options.batch);
      // Nothing new for a while: is the table's newest id below the floor (a database restored)?
      this.emptyReads = rows.length === 0 ? this.emptyReads + 1 : 0;
      if (this.floor >= 0 && this.emptyReads >= RESET_CHECK_EVERY) {
        this.emptyReads = 0;
        const newest = (await this.input.readLatest(1))[0]?.id ?? 0;
        if (newest < this.floor) {
          this.reset(newest);
          return;
        }
      }
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
      const history = rows.map((a) => this.number(a));
      this.keep(history);
      this.firstDone();
      // Pages wait for this first read; after a reset, the ones still open get the history again.
      if (history.length > 0) this.tell({ type: 'actions', actions: history });
      return;
    }
    const fresh = rows.filter((a) => a.id > this.floor && !this.above.has(a.id)).map((a) => this.number(a));
    for (const a of fresh) this.above.add(a.id);
    this.advance(clock.monotonicNow());
    if (fresh.length === 0) return;
    this.keep(fresh);
    this.counts.delivered += fresh.length;
    this.tell({ type: 'actions', actions: fresh });
  }

  private number(a: ActionEntry): FedAction {
    this.seq += 1;
    return { ...a, seq: this.seq };
  }

  private tell(event: FeedEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (error) {
        this.input.logger.error('an action feed listener failed', { event: 'console.feed_listener_failed', error });
      }
    }
  }

  /** The table starts below the floor (restored, or recreated): start over from its newest actions. */
  private reset(newest: number): void {
    this.counts.resets += 1;
    this.input.logger.warn('the action table starts below what the feed has read: starting over', {
      event: 'console.feed_reset',
      floor: this.floor,
      newest,
    });
    this.floor = -1;
    this.above.clear();
    this.holeSince = undefined;
    this.kept.length = 0;
    this.tell({ type: 'reset' });
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

  private keep(actions: FedAction[]): void {
    this.kept.push(...actions);
    if (this.kept.length > this.options.backlog) this.kept.splice(0, this.kept.length - this.options.backlog);
  }
}
