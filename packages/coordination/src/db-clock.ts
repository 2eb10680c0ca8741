/** One statement's view of the database clock, on this node's monotonic clock. */
interface Reading {
  answeredAt: number;
  /** Bounds of (database time − monotonic time) while the statement ran. */
  lo: number;
  hi: number;
}

/**
 * Compares the database clock's progress with this node's monotonic clock
 * (issue "Robust under strain", item 2: expiry is judged by the database's
 * wall clock, self-fencing by the node's monotonic clock, so a step of the
 * database host's clock, or a suspend of this host, set the two apart).
 *
 * Every lease statement returns `clock_timestamp()`. A statement sent at
 * `sentAt` and answered at `answeredAt` ran in between, so the database
 * clock's offset from the monotonic clock was then within
 * [dbNow − answeredAt, dbNow − sentAt]: latency widens the interval, it never
 * moves it. Without a step, the intervals of all readings overlap (drift over
 * the few seconds kept is microseconds). A reading whose interval lies more
 * than `toleranceMs` from an earlier one's saw a step of at least that much.
 */
export class DatabaseClockWatch {
  /** Consistent readings of the last `windowMs`, in the order they were answered. */
  private readings: Reading[] = [];
  /**
   * Monotonic time the readings began to agree: the first reading, the one
   * that saw the last step, or the first after a window with none.
   */
  private agreeingSince: number | undefined;
  /** Readings since then that agreed with it. */
  private agreedSince = 0;

  constructor(
    private readonly toleranceMs: number,
    private readonly windowMs: number,
  ) {}

  /**
   * Records a reading. Returns the step it reveals (ms the database clock moved
   * against this node's; negative: backwards), or undefined when it agrees.
   */
  observe(sentAt: number, answeredAt: number, dbNowMs: number): number | undefined {
    if (!Number.isFinite(dbNowMs)) return undefined;
    const reading = { answeredAt, lo: dbNowMs - answeredAt, hi: dbNowMs - sentAt };

    this.prune(answeredAt);
    // The first reading, or the first after a window with none (cut off, or slow): a new history starts.
    const newest = this.readings.at(-1);
    const fresh = newest === undefined || newest.answeredAt < answeredAt - this.windowMs;
    let ahead = Number.NEGATIVE_INFINITY;
    let behind = Number.NEGATIVE_INFINITY;
    for (const r of this.readings) {
      ahead = Math.max(ahead, reading.lo - r.hi);
      behind = Math.max(behind, r.lo - reading.hi);
    }
    if (ahead > this.toleranceMs || behind > this.toleranceMs) {
      this.restart(reading);
      return ahead > this.toleranceMs ? ahead : -behind;
    }
    if (fresh) {
      this.restart(reading);
    } else {
      this.readings.push(reading);
      this.agreedSince += 1;
    }
    return undefined;
  }

  /**
   * The readings have agreed for `forMs` (on this node's clock), the newest
   * is still in the window, and one came after the first: only then may the
   * node take the lease. A node with no such history (just started, back
   * after a window with no reading, or having seen a step) is not settled:
   * a holder's last renewal may have run before its first reading, on a
   * database clock that has stepped since, so the node has no reckoning that
   * could tell the lease ended early; once it has read for a lease, that
   * holder has fenced itself.
   */
  settled(now: number, forMs: number): boolean {
    const newest = this.readings.at(-1);
    return (
      this.agreeingSince !== undefined &&
      now - this.agreeingSince >= forMs &&
      this.agreedSince > 0 &&
      newest !== undefined &&
      newest.answeredAt >= now - this.windowMs
    );
  }

  /** When the readings will have agreed for `forMs`, if they go on agreeing; undefined before the first. */
  settlesAt(forMs: number): number | undefined {
    return this.agreeingSince === undefined ? undefined : this.agreeingSince + forMs;
  }

  /**
   * The database time at monotonic `now`, carried forward from the readings
   * on this node's clock: the lowest bound of the offset any reading of the
   * window gives, so never ahead of the database's own time unless its clock
   * stepped forward since, and a step too small to be noticed does not count
   * while a reading from before it is still in the window. Undefined before
   * the first reading; defined whenever `settled()`, and then from readings
   * that agree with those of the whole lease it waited for.
   */
  reckon(now: number): number | undefined {
    this.prune(now);
    if (this.readings.length === 0) return undefined;
    let lo = Number.POSITIVE_INFINITY;
    for (const r of this.readings) lo = Math.min(lo, r.lo);
    return now + lo;
  }

  /** A new history of readings, from `reading` on. */
  private restart(reading: Reading): void {
    this.readings = [reading];
    this.agreeingSince = reading.answeredAt;
    this.agreedSince = 0;
  }

  /** Keeps the readings of the last window, and always the newest (the one a later reading is compared with). */
  private prune(now: number): void {
    let drop = 0;
    while (drop < this.readings.length - 1 && (this.readings[drop] as Reading).answeredAt < now - this.windowMs) drop++;
    if (drop > 0) this.readings.splice(0, drop);
  }
}
