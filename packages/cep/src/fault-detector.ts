import type { Clock, TimerHandle } from '@faultline/core';
import { type MemberIdentity, memberIdentityOf } from '@faultline/protocol';
import { DeadlineHeap, type HeapItem } from './deadline-heap.js';

export type FaultReason = 'timeout' | 'ports_not_open';
/** `alive`: a deadline runs. `faulted`: declared once, quiet until the member reports again. */
export type MemberLifeState = 'alive' | 'faulted';
/** What a stat did: first sight, a reset deadline, a new life after a fault, or a late stat of the faulted life. */
export type TouchResult = 'new' | 'alive' | 'revived' | 'late';

export interface FaultInfo {
  reason: FaultReason;
  /** Agent timestamp of the newest stat seen from the member (its id derives from it). */
  lastStatAt: number | null;
  /** How long the member had been silent when the fault was declared (0 for ports_not_open). */
  silentForMs: number;
  /** Wall time (`clock.now()`) the fault was declared: the envelope's `time`, the same in every re-announcement. */
  declaredAt: number;
  /**
   * A timeout's lateness: how long after its deadline (the fault timeout
   * from its last stat, plus any time a takeover or a stall gave back) it
   * was declared. Undefined for ports_not_open.
   */
  lateByMs?: number;
}

export interface FaultDetectorOptions {
  faultTimeoutMs: number;
  clock: Clock;
  /**
   * Told when the detector finds that this process did not run for `ms` (a
   * SIGSTOP, a long GC): every alive member got that time back.
   */
  onStall?: (ms: number) => void;
  /** Called exactly once per silence (or per ports_not_open) of a member's life. */
  onFault: (member: Readonly<MemberIdentity>, info: FaultInfo) => void;
}

/** One member in exported state. Times are relative ("ms ago", "ms left") so they survive another node's clock. */
export interface DetectorMemberState extends MemberIdentity {
  state: MemberLifeState;
  lastStatAt: number | null;
  /** How long ago (ms) the last stat was applied on the exporting node. */
  lastSeenAgoMs: number;
  /** Time left (ms) before the fault; null when faulted. May be negative: overdue, fires at once on import. */
  remainingMs: number | null;
  /**
   * The fault as declared (faulted members only), so the node that imports it
   * re-announces the same fact. Absent from an older peer's export.
   */
  fault?: { reason: FaultReason; silentForMs: number; declaredAt: number };
  /**
   * Time given back to the member by takeovers since its last stat (see
   * FaultDetector.shift), so the cap holds across a handover. Absent: none
   * (also from an older peer's export).
   */
  givenBackMs?: number;
}

/**
 * A tracked member's `lastStatAt` before any stat: a number, never null. A
 * field that held null in any member held every member's time as a boxed
 * number of its own, made anew at every stat (16 bytes, promoted with the
 * member's next 15 s of life, and a pointer from the old generation that
 * every scavenge had to visit); one that only ever holds numbers is updated in place.
 */
const NO_STAT = Number.NEGATIVE_INFINITY;
const statOrNull = (at: number): number | null => (at === NO_STAT ? null : at);

/**
 * A tracked member. `deadline` is its key in the heap, `dueAt` when it is
 * due: the key is never later than `dueAt`, and may be earlier (see touch).
 */
interface Tracked extends HeapItem {
  ref: MemberIdentity;
  /** Monotonic time the member is due to be faulted when it stays silent (alive members). */
  dueAt: number;
  state: MemberLifeState;
  /** NO_STAT when none is known. */
  lastStatAt: number;
  /** Monotonic time the last stat was applied here. */
  lastSeenAt: number;
  /** The fault that ended this life; null while alive. */
  fault: Omit<FaultInfo, 'lastStatAt'> | null;
  /** Time takeovers gave back (shift, grace) since the last stat; a stat resets it. */
  givenBackMs: number;
}

/**
 * The member fault detector (issue 5, part 1): one deadline per member in a
 * min-heap, and ONE timer on the injected Clock, armed for the earliest one.
 *
 * Time base: deadlines run on `clock.monotonicNow()`, the clock core reserves
 * for elapsed time, so an NTP step of the wall clock neither fires nor delays
 * faults; fake timers advance it with `Date.now()`. A deadline is set from the
 * moment a stat is applied on this node (not the agent's timestamp, which is
 * another machine's clock): a passive applies synced stats a little after the
 * active, so it never faults a member earlier than the active does.
 *
 * Lives: the first stat of a member starts its life; a fault ends it (state
 * `faulted`, no deadline); a later stat whose agent timestamp is newer than
 * the last one seen starts a new life, whose silence faults again. A stat that
 * is not newer (a batch resent after a failover) is late news of the faulted
 * life and revives nothing. So a fault is declared once per silence, never as
 * a flapping duplicate.
 *
 * When the timer fires, every member whose deadline has passed is faulted in
 * the same pass, so 10 000 deadlines falling together cost one wake-up.
 *
 * A stat moves a member's deadline later (unless a grace, shift or stall had
 * given it more than a fault timeout: then its key follows at once), so it
 * leaves the member's place in the heap alone: its key stays the deadline it
 * had, earlier than the one it has. The key reaches the top of the heap once
 * per fault timeout (not once per stat: a quarter as often at the default
 * timings), and the timer pass that finds it there sets it to when the member
 * is due, as it does the stale keys that follow within REKEY_AHEAD_MS, up to
 * the first key that is a deadline. Before, every stat sifted its member from
 * near the top of a 100 000-member heap to the bottom, 17 levels of scattered
 * reads, and the timer woke at every earlier deadline a stat had moved. A
 * key is never later than its member's deadline, so no fault is declared
 * late for it.
 *
 * Faulted members are also kept in a map of their own, in the order they were
 * last announced, so the engine re-announces them (`reannounce`) at a cost in
 * the number re-announced, not in the number of members tracked.
 */
/** How often the detector notes that its process runs; a gap beyond it plus STALL_MS is a stall. */
const AWAKE_TICK_MS = 250;
const STALL_MS = 1_000;
/**
 * A timer pass goes on setting stale keys to when their members are due
 * while the keys at the top fall within this much of now: when every member
 * reports, the next pass is then this long after, not at the next stale key.
 * It stops at a key that is its member's deadline (a silent member, one a
 * takeover gave time): the stale keys behind it wait for that member's pass.
 */
const REKEY_AHEAD_MS = 1_000;

export class FaultDetector {
  private readonly members = new Map<string, Tracked>();
  private readonly heap = new DeadlineHeap<Tracked>();
  private timer: TimerHandle | undefined;
  /** Deadline the armed timer targets; a timer armed for a later time is re-armed earlier, never the reverse. */
  private armedFor: number | undefined;
  private firing = false;
  private closed = false;
  /** Monotonic time this process was last seen running (the awake tick, a stat, a fire). */
  private awakeAt: number;
  private readonly awakeTimer: TimerHandle;
  /** Faulted (not forgotten) members, least recently announced first. */
  private readonly faultedMembers = new Map<string, Tracked>();

  constructor(private readonly options: FaultDetectorOptions) {
    this.awakeAt = options.clock.monotonicNow();
    this.awakeTimer = options.clock.setInterval(() => this.checkAwake(), AWAKE_TICK_MS);
  }

  /** Members tracked (alive and faulted). */
  get size(): number {
    return this.members.size;
  }

  get faulted(): number {
    return this.faultedMembers.size;
  }

  /**
   * Calls `visit` with up to `max` faulted members and their fault as it was
   * declared (same id, same content), least recently announced first, and
   * moves each to the back: successive calls rotate through every faulted
   * member. Costs O(min(max, faulted)); returns how many were visited.
   */
  reannounce(max: number, visit: (member: Readonly<MemberIdentity>, info: FaultInfo) => void): number {
    if (max <= 0 || this.faultedMembers.size === 0) return 0;
    const due: Tracked[] = [];
    for (const tracked of this.faultedMembers.values()) {
      if (due.length >= max) break;
      due.push(tracked);
    }
    for (const tracked of due) {
      // Moved to the back before the visit: a visit that forgets or revives the member wins.
      this.faultedMembers.delete(tracked.ref.memberId);
      this.faultedMembers.set(tracked.ref.memberId, tracked);
    }
    let visited = 0;
    for (const tracked of due) {
      // A visit may have forgotten or revived a later one.
      if (tracked.state !== 'faulted' || !tracked.fault || this.members.get(tracked.ref.memberId) !== tracked) continue;
      visited += 1;
      visit(tracked.ref, { ...tracked.fault, lastStatAt: statOrNull(tracked.lastStatAt) });
    }
    return visited;
  }

  /** What the detector knows of a member, or undefined when it does not track it. */
  member(
    memberId: string,
  ): { ref: Readonly<MemberIdentity>; state: MemberLifeState; lastStatAt: number | null } | undefined {
    const tracked = this.members.get(memberId);
    return tracked && { ref: tracked.ref, state: tracked.state, lastStatAt: statOrNull(tracked.lastStatAt) };
  }

  /** A stat arrived from `member` (agent timestamp `statAt`): its deadline restarts. */
  touch(member: MemberIdentity, statAt: number): TouchResult {
    const now = this.options.clock.monotonicNow();
    let tracked = this.members.get(member.memberId);
    let result: TouchResult;
    if (!tracked) {
      tracked = this.track(member, statAt, now);
      result = 'new';
    } else if (tracked.state === 'faulted') {
      if (statAt <= tracked.lastStatAt) return 'late';
      this.unfault(tracked);
      result = 'revived';
    } else {
      result = 'alive';
    }
    if (statAt > tracked.lastStatAt) tracked.lastStatAt = statAt;
    tracked.lastSeenAt = now;
    const dueAt = now + this.options.faultTimeoutMs;
    tracked.dueAt = dueAt;
    tracked.givenBackMs = 0;
    if (tracked.heapIndex < 0) {
      tracked.deadline = dueAt;
      this.heap.push(tracked);
      this.arm();
    } else if (dueAt < tracked.deadline) {
      // Earlier than its key (a grace had given it more than a fault timeout): the key follows at once.
      tracked.deadline = dueAt;
      this.heap.update(tracked);
      this.arm();
    }
    return result;
  }

  /**
   * Declares a fault at once (a `ports_not_open` stat). Once per life: a
   * member already faulted stays faulted and nothing is declared again.
   * Returns whether a fault was declared.
   */
  faultNow(member: MemberIdentity, reason: FaultReason, statAt: number): boolean {
    const now = this.options.clock.monotonicNow();
    let tracked = this.members.get(member.memberId);
    if (tracked?.state === 'faulted') return false;
    if (!tracked) tracked = this.track(member, statAt, now);
    if (statAt > tracked.lastStatAt) tracked.lastStatAt = statAt;
    tracked.lastSeenAt = now;
    this.declare(tracked, reason, 0);
    this.arm();
    return true;
  }

  /** The topology removed the member: no deadline, no state. */
  forget(memberId: string): boolean {
    const tracked = this.members.get(memberId);
    if (!tracked) return false;
    this.heap.remove(tracked);
    this.members.delete(memberId);
    this.faultedMembers.delete(memberId);
    this.arm();
    return true;
  }

  /**
   * Takes back a timeout fault this node could not verify (it was declared
   * while the node followed no active): the member is alive again, due at
   * once, or, with `keepDeadline`, due when it was declared (a `shift()` then
   * gives it back the time it could not be heard); the takeover's `grace()`
   * or `shift()` then gives it its time. A member that reports meanwhile
   * continues its life; one that stays silent is faulted again under the same
   * id (its last stat has not changed).
   */
  reopen(memberId: string, keepDeadline = false): boolean {
    const tracked = this.members.get(memberId);
    if (tracked?.state !== 'faulted') return false;
    this.unfault(tracked);
    if (!keepDeadline) tracked.dueAt = this.options.clock.monotonicNow();
    tracked.deadline = tracked.dueAt;
    this.heap.push(tracked);
    this.arm();
    return true;
  }

  /**
   * Every alive member gets at least `ms` from now before it can be faulted
   * (after a takeover); what that adds counts toward the cap of `shift()`.
   */
  grace(ms: number): void {
    const floor = this.options.clock.monotonicNow() + ms;
    for (const tracked of this.heap.values()) {
      if (tracked.dueAt < floor) {
        tracked.givenBackMs += floor - tracked.dueAt;
        tracked.dueAt = floor;
      }
      tracked.deadline = tracked.dueAt;
    }
    this.heap.heapify();
    this.arm();
  }

  /**
   * Every alive member's deadline moves `ms` later: the time its stats could
   * reach no active node is given back, and nothing more (after a short gap
   * in the lease, whose length the node knows), but never more than `capMs`
   * in all since the member's last stat. The gap is an upper bound, often
   * the whole lease where the members lost far less (an expiry takeover
   * waits until the holder's heartbeat is older than the lease), and a lease
   * that flaps gives it again at every activation: uncapped, a silent member
   * was never faulted. Capped, it is faulted at most `faultTimeoutMs +
   * capMs` after its last stat, whatever the flapping; a member that reports
   * starts afresh.
   */
  shift(ms: number, capMs: number): void {
    if (ms <= 0) return;
    for (const tracked of this.heap.values()) {
      const added = Math.min(ms, Math.max(0, capMs - tracked.givenBackMs));
      tracked.dueAt += added;
      tracked.deadline = tracked.dueAt;
      tracked.givenBackMs += added;
    }
    // Members capped at different points move by different amounts: the order may change.
    this.heap.heapify();
    this.disarm();
    this.arm();
  }

  /** Every tracked member's id, in insertion order. */
  memberIds(): string[] {
    return [...this.members.keys()];
  }

  /** The same, without copying them. */
  ids(): IterableIterator<string> {
    return this.members.keys();
  }

  export(): DetectorMemberState[] {
    const out: DetectorMemberState[] = [];
    for (const tracked of this.members.values()) out.push(this.exported(tracked, this.options.clock.monotonicNow()));
    return out;
  }

  /** One member as `export()` gives it, or undefined when it is not tracked. */
  exportOne(memberId: string): DetectorMemberState | undefined {
    const tracked = this.members.get(memberId);
    return tracked && this.exported(tracked, this.options.clock.monotonicNow());
  }

  /** Replaces every member with `members` (a peer's export). */
  import(members: readonly DetectorMemberState[]): void {
    this.heap.clear();
    this.members.clear();
    this.faultedMembers.clear();
    for (const m of members) this.place(m);
    this.disarm();
    this.arm();
  }

  /** Replaces one member with a peer's export of it (a streamed import): its life, deadline and fault. */
  importOne(member: DetectorMemberState): void {
    const known = this.members.get(member.memberId);
    if (known) {
      this.heap.remove(known);
      this.members.delete(member.memberId);
      this.faultedMembers.delete(member.memberId);
    }
    this.place(member);
    this.arm();
  }

  /**
   * Written out field by field, not spread: a snapshot of 100 000 members
   * makes one per member, and the spreads took some 7 µs each, most of the
   * export's time. The same keys in the same order.
   */
  private exported(t: Tracked, now: number): DetectorMemberState {
    const { ref } = t;
    const out: DetectorMemberState = {
      clusterId: ref.clusterId,
      clusterInstanceId: ref.clusterInstanceId,
      networkPartitionId: ref.networkPartitionId,
      partitionId: ref.partitionId,
      memberId: ref.memberId,
      state: t.state,
      lastStatAt: statOrNull(t.lastStatAt),
      lastSeenAgoMs: Math.max(0, Math.round(now - t.lastSeenAt)),
      remainingMs: t.state === 'alive' ? Math.round(t.dueAt - now) : null,
    };
    if (t.state === 'faulted' && t.fault) {
      const { reason, silentForMs, declaredAt } = t.fault;
      out.fault = { reason, silentForMs, declaredAt };
    }
    if (t.givenBackMs > 0) out.givenBackMs = Math.round(t.givenBackMs);
    return out;
  }

  private place(m: DetectorMemberState): void {
    const now = this.options.clock.monotonicNow();
    const tracked: Tracked = {
      ref: memberIdentityOf(m),
      state: m.state,
      lastStatAt: m.lastStatAt ?? NO_STAT,
      lastSeenAt: now - m.lastSeenAgoMs,
      dueAt: now + (m.remainingMs ?? 0),
      deadline: now + (m.remainingMs ?? 0),
      heapIndex: -1,
      fault: null,
      givenBackMs: Math.max(0, m.givenBackMs ?? 0),
    };
    this.members.set(m.memberId, tracked);
    if (m.state === 'alive') this.heap.push(tracked);
    else {
      // An older peer's export has no fault: a timeout, as silent as it was when exported, declared now.
      tracked.fault = m.fault
        ? { ...m.fault }
        : { reason: 'timeout', silentForMs: m.lastSeenAgoMs, declaredAt: this.options.clock.now() };
      this.faultedMembers.set(m.memberId, tracked);
    }
  }

  close(): void {
    this.closed = true;
    this.disarm();
    this.options.clock.clearInterval(this.awakeTimer);
  }

  private track(member: MemberIdentity, statAt: number, now: number): Tracked {
    const tracked: Tracked = {
      ref: memberIdentityOf(member),
      state: 'alive',
      lastStatAt: statAt,
      lastSeenAt: now,
      dueAt: now + this.options.faultTimeoutMs,
      deadline: now + this.options.faultTimeoutMs,
      heapIndex: -1,
      fault: null,
      givenBackMs: 0,
    };
    this.members.set(member.memberId, tracked);
    return tracked;
  }

  /** A faulted member's life goes on (a newer stat, a reopened fault): no longer faulted. */
  private unfault(tracked: Tracked): void {
    tracked.state = 'alive';
    tracked.fault = null;
    this.faultedMembers.delete(tracked.ref.memberId);
  }

  private declare(tracked: Tracked, reason: FaultReason, silentForMs: number, lateByMs?: number): void {
    this.heap.remove(tracked);
    tracked.state = 'faulted';
    tracked.fault = { reason, silentForMs, declaredAt: this.options.clock.now() };
    this.faultedMembers.set(tracked.ref.memberId, tracked);
    this.options.onFault(tracked.ref, {
      ...tracked.fault,
      lastStatAt: statOrNull(tracked.lastStatAt),
      ...(lateByMs === undefined ? {} : { lateByMs }),
    });
  }

  /**
   * A silence measured across this process's own stall is not the members':
   * when the process did not run for more than STALL_MS (SIGSTOP, a long GC),
   * every alive member gets that time back, and at least one fault timeout
   * from now, before any deadline is judged. A paused node otherwise faults
   * every member the moment it wakes.
   */
  private checkAwake(): void {
    const now = this.options.clock.monotonicNow();
    const stalledMs = now - this.awakeAt - AWAKE_TICK_MS;
    this.awakeAt = now;
    if (stalledMs <= STALL_MS || this.closed) return;
    // Its time back, and at least one fault timeout from now, as after a takeover: the agents' calls to
    // a stopped node timed out and they back off, so they need a while to be heard again.
    const floor = now + this.options.faultTimeoutMs;
    for (const tracked of this.heap.values()) {
      tracked.dueAt = Math.max(tracked.dueAt + stalledMs, floor);
      tracked.deadline = tracked.dueAt;
    }
    this.heap.heapify();
    this.disarm();
    this.arm();
    this.options.onStall?.(Math.round(stalledMs));
  }

  private fire(): void {
    this.timer = undefined;
    this.armedFor = undefined;
    this.checkAwake();
    if (this.timer !== undefined) return; // the deadlines moved: re-armed
    const now = this.options.clock.monotonicNow();
    this.firing = true;
    try {
      // Everything due goes in this one pass; onFault may forget or touch members, so re-read the top each time.
      // A key that is not the member's deadline (stats came since it was set) is set to it, and the member
      // sinks to its place; so is each such key that comes to the top up to REKEY_AHEAD_MS ahead, so that
      // the next pass is not for the next stale key. The pass stops at the first key that is a deadline
      // still to come (the next pass is for it), or beyond REKEY_AHEAD_MS.
      const ahead = now + REKEY_AHEAD_MS;
      for (let top = this.heap.peek(); top && top.deadline <= ahead; top = this.heap.peek()) {
        if (top.dueAt <= now) {
          this.declare(top, 'timeout', Math.max(0, Math.round(now - top.lastSeenAt)), Math.max(0, now - top.dueAt));
        } else if (top.deadline < top.dueAt) {
          top.deadline = top.dueAt;
          this.heap.update(top);
        } else break;
      }
    } finally {
      this.firing = false;
      this.arm();
    }
  }

  private arm(): void {
    if (this.firing || this.closed) return;
    const top = this.heap.peek();
    if (!top) {
      this.disarm();
      return;
    }
    // Keys only move later (a pass, a fault, a forgotten member): the armed timer then fires
    // early, finds nothing due and re-arms. Cheaper than a clear + set for every such move.
    if (this.armedFor !== undefined && this.armedFor <= top.deadline) return;
    this.disarm();
    const delay = Math.max(0, Math.ceil(top.deadline - this.options.clock.monotonicNow()));
    this.armedFor = top.deadline;
    this.timer = this.options.clock.setTimeout(() => this.fire(), delay);
  }

  private disarm(): void {
    this.options.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.armedFor = undefined;
  }
}
