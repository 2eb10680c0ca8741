import type { Iaas } from '@faultline/cloud-controller';
import type { Logger } from '@faultline/core';
import type { MemberFault } from '@faultline/protocol';
import type { ClusterMembers } from './cluster-members.js';
import type { ClusterSink, FaultTimes } from './decisions.js';
import { FaultStorm, type StormVerdict } from './fault-storm.js';
import { isLive, isPending, type LiveMember } from './member.js';

/** A member to retire: terminated if its instance still runs, removed if it is gone. */
export interface Retirement {
  member: LiveMember;
  reason: string;
  /** The SP epoch of the fault that caused it; undefined for a pending timeout or an absence. */
  epoch: number | undefined;
  /** A fault of the member (not a pending timeout): counts as a failed replacement when it had served little. */
  faulted: boolean;
  /** When the fault was seen (its causal chain, `faultline explain`): only a fault acted on as it came. */
  fault?: FaultTimes | undefined;
}

/** What ClusterFaults counted. */
export interface FaultCounts {
  /** MemberFaults and absences acted upon or held. */
  faults: number;
  /** Active members absent from the SP's member summaries for longer than the fault timeout plus a tick. */
  faultsAbsent: number;
  /** MemberFaults of unknown, terminating or already held members (idempotency), and ports_not_open before activation. */
  faultsIgnored: number;
  /** Faults held in a fault storm, while the detector was silent, or in maintenance. */
  faultsHeld: number;
  /** Held members checked through the Iaas (probe), and those the check had acted upon. */
  heldVerified: number;
  heldConfirmed: number;
  pendingTimeouts: number;
}

/** What a fault claims: a MemberFault of the SP, an absence the autoscaler noticed itself, or an instance gone (reconciliation). */
export interface FaultClaim {
  memberId: string;
  kind: MemberFault['reason'] | 'absent' | 'gone';
  /** The log reason. */
  reason: string;
  /** Agent timestamp of the last stat of the faulted life (MemberFault), or null. */
  lastStatAt: number | null;
  /** When the fault was declared: the MemberFault's time (the CEP's clock), or the autoscaler's for an absence. */
  declaredAt: number;
}

/** Why a fault is held: a fault storm, a silent detector, or maintenance mode (README "Maintenance mode"). */
export type HoldCause = 'storm' | 'silent' | 'maintenance';

const HOLD_CAUSES: Readonly<Record<HoldCause, string>> = {
  storm: 'fault storm',
  silent: 'detector silent',
  maintenance: 'maintenance',
};

/** Held members verified (probed) per tick at most; the rest wait their turn, oldest verification first. */
export const MAX_PROBES_PER_TICK = 200;

/** A fault not acted upon: in a fault storm, while the detector could not see the member's partition, or in maintenance. */
export interface HeldFault {
  memberId: string;
  cause: HoldCause;
  reason: string;
  lastStatAt: number | null;
  /** The fault's kind and when it was declared (absent from a state stored by an earlier version). */
  kind?: FaultTimes['kind'] | undefined;
  declaredAt?: number | undefined;
  epoch: number | null;
  heldAt: number;
  /** Set when a storm ends on resumed stats: carried out at this time unless the member shows life first. */
  recheckUntil: number | null;
  /** What the last verification found (`answering` keeps it held). */
  lastProbe: 'answering' | 'failing' | 'gone' | null;
}

/** The part of a monitor's state ClusterFaults keeps across restarts. */
export interface FaultsState {
  stormHeldSince: number | null;
  held: HeldFault[];
}

export interface ClusterFaultsOptions {
  /** Read only: which members exist, and in which state. */
  members: Pick<ClusterMembers, 'get' | 'all' | 'liveCount'>;
  iaas: Pick<Iaas, 'probe'>;
  decide: ClusterSink['decide'];
  log: Logger;
  /** The fault-storm window: the CEP's fault timeout. */
  faultStormWindowMs: number;
  /** A storm hold ends after this long at the latest (each held member verified every tick meanwhile). */
  stormMaxHoldMs: number;
  pendingTimeoutMs: number;
  /** The cluster's min: a storm's cluster size is never taken below it (members being replaced still count). */
  minMembers: number;
  /** Called whenever what must survive a restart changed. */
  changed: () => void;
  /**
   * Whether the member is in maintenance now (its own, or its cluster's): its
   * faults are held, not acted on, and not verified until it ends.
   * @default never
   */
  maintained?: (memberId: string) => boolean;
}

/** The fault times of a held fault carried out, when it kept them. */
function heldTimes(held: HeldFault): FaultTimes | undefined {
  if (held.kind === undefined || held.declaredAt === undefined) return undefined;
  return { kind: held.kind, lastStatAt: held.lastStatAt, declaredAt: held.declaredAt };
}

export function memberFaultClaim(f: MemberFault, declaredAt: number): FaultClaim {
  return {
    memberId: f.memberId,
    kind: f.reason,
    reason: `MemberFault (${f.reason}${f.reason === 'timeout' ? `, silent ${f.silentForMs} ms` : ''})`,
    lastStatAt: f.lastStatAt,
    declaredAt,
  };
}

/**
 * Which members of one cluster must go because they failed (README
 * "Autoscaler", rules 2, 4, 6 and "Liveness from state"): a MemberFault or an
 * absence of a live member, a member not active within the pending timeout,
 * and held faults that their verification or re-check confirmed. A fault is
 * held instead of acted upon in a fault storm (the monitor is the likely
 * fault) and while the detector is silent for the member's network partition
 * (the SP pair or the brokers are); a held member is verified through the
 * Iaas every tick — gone or not answering: act; answering: keep. It says
 * which members to retire; the monitor retires them.
 */
export class ClusterFaults {
  private readonly members: ClusterFaultsOptions['members'];
  private readonly iaas: ClusterFaultsOptions['iaas'];
  private readonly decide: ClusterSink['decide'];
  private readonly log: Logger;
  private readonly pendingTimeoutMs: number;
  private readonly stormMaxHoldMs: number;
  private readonly minMembers: number;
  private readonly changed: () => void;
  private readonly maintained: (memberId: string) => boolean;
  private readonly storm: FaultStorm;
  private readonly held = new Map<string, HeldFault>();
  private readonly counted: FaultCounts = {
    faults: 0,
    faultsAbsent: 0,
    faultsIgnored: 0,
    faultsHeld: 0,
    heldVerified: 0,
    heldConfirmed: 0,
    pendingTimeouts: 0,
  };

  constructor(options: ClusterFaultsOptions) {
    this.members = options.members;
    this.iaas = options.iaas;
    this.decide = options.decide;
    this.log = options.log;
    this.pendingTimeoutMs = options.pendingTimeoutMs;
    this.stormMaxHoldMs = options.stormMaxHoldMs;
    this.minMembers = options.minMembers;
    this.changed = options.changed;
    this.maintained = options.maintained ?? (() => false);
    this.storm = new FaultStorm(options.faultStormWindowMs);
  }

  get counts(): FaultCounts {
    return { ...this.counted };
  }

  /** A storm holds every termination of the cluster, and its stats are not trusted for scaling. */
  get stormHeld(): boolean {
    return this.storm.held;
  }

  /** Epoch ms the current storm hold began, or undefined when not held. */
  get stormHeldSince(): number | undefined {
    return this.storm.heldSince;
  }

  isHeld(memberId: string): boolean {
    return this.held.has(memberId);
  }

  /** The reason of the member's held fault, if one is. */
  heldReason(memberId: string): string | undefined {
    const held = this.held.get(memberId);
    return held && `${held.reason} (held: ${HOLD_CAUSES[held.cause]})`;
  }

  state(): FaultsState {
    return { stormHeldSince: this.storm.heldSince ?? null, held: [...this.held.values()].map((h) => ({ ...h })) };
  }

  /** The cause of the member's held fault, if one is. */
  heldCause(memberId: string): HoldCause | undefined {
    return this.held.get(memberId)?.cause;
  }

  /** The members whose fault is held for this cause. */
  heldFor(cause: HoldCause): string[] {
    return [...this.held.values()].filter((h) => h.cause === cause).map((h) => h.memberId);
  }

  /** Takes back what an earlier life persisted; held faults of members no longer live are dropped. */
  restore(state: FaultsState): void {
    this.storm.restore(state.stormHeldSince ?? undefined);
    for (const held of state.held) {
      const member = this.members.get(held.memberId);
      if (member && isLive(member)) this.held.set(held.memberId, { ...held });
    }
  }

  /** The member left the context: a fault held for it is moot. */
  forget(memberId: string): void {
    if (this.held.delete(memberId)) this.changed();
  }

  /**
   * A fault of a member (a MemberFault, or an absence): the member to retire,
   * or undefined when it is ignored or held. `silent`: the detector cannot see
   * the member's network partition now.
   */
  fault(
    claim: FaultClaim,
    faultId: string,
    epoch: number | undefined,
    now: number,
    silent: boolean,
  ): Retirement | undefined {
    const member = this.members.get(claim.memberId);
    // Idempotent by state: unknown and already terminated members are not in the context.
    let ignored: string | undefined;
    if (!member) ignored = 'unknown or already terminated member';
    else if (!isLive(member)) ignored = 'already terminating';
    else if (this.held.has(member.memberId)) ignored = 'a fault of this member is already held';
    else if (claim.kind === 'ports_not_open' && isPending(member))
      ignored = 'ports_not_open before activation: the pending timeout covers a member that never opens its port';
    if (ignored !== undefined || !member || !isLive(member)) {
      this.counted.faultsIgnored += 1;
      // The CEP re-announces a fault every tick until the member is forgotten: a held one would log each time.
      const level = member && this.held.has(member.memberId) ? 'debug' : 'info';
      this.log[level]('fault ignored', {
        event: 'autoscaler.fault_ignored',
        memberId: claim.memberId,
        why: ignored,
        faultId,
        epoch: epoch ?? null,
      });
      return undefined;
    }
    this.counted.faults += 1;
    if (claim.kind === 'absent') this.counted.faultsAbsent += 1;
    // Expected while someone works on it: logged and shown, not acted on, not counted towards a storm.
    if (this.maintained(member.memberId)) {
      this.hold(member, claim, epoch, now, 'maintenance');
      return undefined;
    }
    if (silent) {
      this.hold(member, claim, epoch, now, 'silent');
      return undefined;
    }
    // A member terminated for an earlier fault is no longer live, and its replacement may not be spawned
    // yet (backoff): without the floor, 2 of 3 went before the guard saw a cluster of 3.
    const size = Math.max(this.members.liveCount(), this.minMembers);
    const verdict = this.storm.record(member.memberId, now, size);
    if (verdict.type !== 'normal') {
      this.hold(member, claim, epoch, now, 'storm', verdict);
      return undefined;
    }
    const fault = { kind: claim.kind, lastStatAt: claim.lastStatAt, declaredAt: claim.declaredAt };
    return { member, reason: claim.reason, epoch, faulted: true, fault };
  }

  /**
   * A cluster summary. Release rule: a summary of a window that ends after the hold began — the SP is
   * summarizing this cluster again. A summary computed before the hold but delivered late does not count.
   */
  clusterSummary(type: string, windowTo: number, epoch: number | undefined, now: number): void {
    const since = this.storm.heldSince;
    if (since !== undefined && windowTo > since) {
      this.release(
        `cluster stats resumed (${type} of the window ending ${new Date(windowTo).toISOString()})`,
        epoch,
        now,
        true,
      );
    }
  }

  /** A member's figure in a member summary: a window that starts at or after the faulted life's last stat holds only samples of a new life. */
  memberSummary(memberId: string, windowFrom: number, type: string): void {
    const held = this.held.get(memberId);
    // An instance found gone has no last stat: only a window that starts after it was found gone is of a new life.
    const floor = held?.lastStatAt ?? (held?.kind === 'gone' ? held.heldAt : null);
    if (held && (floor === null || windowFrom >= floor)) {
      this.clearHeld(memberId, `${type} of a window from ${windowFrom}`);
    }
  }

  /** An instance event of the member (its agent is alive): a fault held for it is cleared. */
  instanceEvent(memberId: string, type: string): void {
    this.clearHeld(memberId, type);
  }

  /** The detector sees the member's partition again: a fault held because it did not is cleared (the absence rule re-decides). */
  detectorResumed(isSilent: (member: LiveMember) => boolean): void {
    for (const [memberId, held] of [...this.held]) {
      if (held.cause !== 'silent') continue;
      const member = this.members.get(memberId);
      if (member && isLive(member) && isSilent(member)) continue;
      this.clearHeld(memberId, 'the detector sees its network partition again');
    }
  }

  /**
   * A retirement whose decision came after its member went into maintenance
   * (the second witness' verdict, which arrives later): held (cause
   * `maintenance`) instead, with the fault it was for. False when a fault of
   * it is already held.
   */
  holdMaintained(
    member: LiveMember,
    reason: string,
    fault: FaultTimes | undefined,
    epoch: number | undefined,
    now: number,
  ): boolean {
    if (this.held.has(member.memberId)) return false;
    const claim: FaultClaim = {
      memberId: member.memberId,
      kind: fault?.kind ?? 'gone',
      reason,
      lastStatAt: fault?.lastStatAt ?? null,
      declaredAt: fault?.declaredAt ?? now,
    };
    this.hold(member, claim, epoch, now, 'maintenance');
    return true;
  }

  /**
   * A live member whose instance is gone, found by reconciliation while it is
   * in maintenance: held (cause `maintenance`) instead of removed, verified
   * once the maintenance ends. False when a fault of it is already held.
   */
  holdGone(member: LiveMember, reason: string, now: number): boolean {
    if (this.held.has(member.memberId)) return false;
    this.counted.faults += 1;
    const claim: FaultClaim = { memberId: member.memberId, kind: 'gone', reason, lastStatAt: null, declaredAt: now };
    this.hold(member, claim, undefined, now, 'maintenance');
    return true;
  }

  /**
   * Pending members with an instance that are not active within the pending
   * timeout (outside a storm). Not a member in maintenance: its timeout applies
   * at the first tick after the maintenance ends (it counts from its creation).
   */
  pendingTimeouts(now: number): Retirement[] {
    const due: Retirement[] = [];
    for (const member of this.members.all()) {
      if (!isLive(member) || !isPending(member) || !member.instance || this.held.has(member.memberId)) continue;
      if (this.maintained(member.memberId)) continue;
      if (now - member.createdAt < this.pendingTimeoutMs) continue;
      this.counted.pendingTimeouts += 1;
      due.push({
        member,
        reason: `not active within ${this.pendingTimeoutMs} ms (pending timeout)`,
        epoch: undefined,
        faulted: false,
      });
    }
    return due;
  }

  /** Faults held in the storm whose re-check time has come without a sign of life: carried out now. */
  confirmedFaults(now: number): Retirement[] {
    const due: Retirement[] = [];
    for (const [memberId, held] of [...this.held]) {
      if (held.recheckUntil === null || now < held.recheckUntil || this.maintained(memberId)) continue;
      this.held.delete(memberId);
      this.changed();
      const member = this.members.get(memberId);
      const reason = `${held.reason}, held in a fault storm and confirmed: no stats in ${this.storm.windowMs} ms after it`;
      if (member && isLive(member))
        due.push({ member, reason, epoch: held.epoch ?? undefined, faulted: true, fault: heldTimes(held) });
    }
    return due;
  }

  /**
   * Every held member checked through the Iaas, all at once: gone or not
   * answering is acted upon now (the monitor's doubt does not protect a dead
   * member); answering stays held. An Iaas that cannot tell keeps it held.
   * A member in maintenance is not checked (nothing would be done about it);
   * a fault held for a maintenance that has ended is checked like the others,
   * and cleared when its member answers (it came back: the rules re-decide).
   */
  async verifyHeld(): Promise<Retirement[]> {
    // At most MAX_PROBES_PER_TICK probes at once, rotating: a storm of thousands costs bounded sockets a tick.
    const entries = [...this.held.values()]
      .filter((held) => !this.maintained(held.memberId))
      .slice(0, MAX_PROBES_PER_TICK);
    if (entries.length === 0) return [];
    const probes = await Promise.all(
      entries.map((held) =>
        this.iaas.probe(held.memberId).then(
          (outcome) => outcome,
          (error: unknown) => {
            this.log.warn('held member could not be verified, kept held', {
              event: 'autoscaler.verify_failed',
              memberId: held.memberId,
              error,
            });
            return undefined;
          },
        ),
      ),
    );
    const due: Retirement[] = [];
    entries.forEach((held, i) => {
      const outcome = probes[i];
      if (outcome === undefined || this.held.get(held.memberId) !== held) return;
      this.counted.heldVerified += 1;
      const first = held.lastProbe !== outcome;
      held.lastProbe = outcome;
      if (outcome === 'answering' && held.cause === 'maintenance') {
        this.clearHeld(held.memberId, 'it answers its probe now that its maintenance has ended');
        return;
      }
      if (outcome === 'answering') {
        this.held.delete(held.memberId); // to the back of the rotation
        this.held.set(held.memberId, held);
        if (first)
          this.log.info('held member answers its probe: kept', {
            event: 'autoscaler.held_member_answers',
            memberId: held.memberId,
            cause: held.cause,
          });
        return;
      }
      const member = this.members.get(held.memberId);
      this.held.delete(held.memberId);
      this.changed();
      if (!member || !isLive(member)) return;
      this.counted.heldConfirmed += 1;
      const why = outcome === 'gone' ? 'its instance is gone' : 'its workload does not answer';
      const cause = { storm: 'a fault storm', silent: 'a detector silence', maintenance: 'maintenance' }[held.cause];
      due.push({
        member,
        reason: `${held.reason}, held in ${cause} and verified: ${why}`,
        epoch: held.epoch ?? undefined,
        faulted: true,
        fault: heldTimes(held),
      });
    });
    return due;
  }

  /** A storm hold older than stormMaxHoldMs ends: its held members answered their probes, so they stay. */
  expireStorm(now: number): void {
    const since = this.storm.heldSince;
    if (since === undefined || now - since < this.stormMaxHoldMs) return;
    this.release(`the hold reached its bound of ${this.stormMaxHoldMs} ms`, undefined, now, false);
  }

  private hold(
    member: LiveMember,
    claim: FaultClaim,
    epoch: number | undefined,
    now: number,
    cause: HoldCause,
    verdict?: StormVerdict,
  ): void {
    this.held.set(member.memberId, {
      memberId: member.memberId,
      cause,
      reason: claim.reason,
      lastStatAt: claim.lastStatAt,
      kind: claim.kind,
      declaredAt: claim.declaredAt,
      epoch: epoch ?? null,
      heldAt: now,
      recheckUntil: null,
      lastProbe: null,
    });
    this.counted.faultsHeld += 1;
    this.changed();
    if (verdict?.type === 'tipped') {
      const { faultedMemberIds, clusterSize } = verdict;
      const { windowMs } = this.storm;
      this.decide({
        action: 'FaultStormHeld',
        reason: `${faultedMemberIds.length} of ${clusterSize} members faulted within ${windowMs} ms: terminations held, the monitor is the likely fault; held members are verified through the Iaas`,
        epoch,
        storm: { faultedMemberIds, clusterSize, windowMs },
      });
    }
    this.log.warn('fault held', {
      event: 'autoscaler.fault_held',
      memberId: member.memberId,
      reason: claim.reason,
      cause,
      epoch: epoch ?? null,
    });
  }

  /**
   * Ends the storm. On resumed stats (`recheck`) its held faults are carried
   * out in one window unless their members report; at the bound they are
   * dropped (their members answered every probe).
   */
  private release(why: string, epoch: number | undefined, now: number, recheck: boolean): void {
    this.storm.release();
    const { windowMs } = this.storm;
    const storm = [...this.held.values()].filter((h) => h.cause === 'storm');
    for (const held of storm) {
      if (recheck) held.recheckUntil = now + windowMs;
      else this.held.delete(held.memberId);
    }
    this.changed();
    const next = recheck
      ? `${storm.length} held faults carried out in ${windowMs} ms unless their members report`
      : `${storm.length} held faults dropped: their members answered their probes`;
    this.decide({ action: 'FaultStormReleased', reason: `${why}; ${next}`, epoch });
  }

  private clearHeld(memberId: string, evidence: string): void {
    if (!this.held.delete(memberId)) return;
    this.changed();
    this.log.info('held fault cleared', {
      event: 'autoscaler.held_fault_cleared',
      memberId,
      evidence,
    });
  }
}
