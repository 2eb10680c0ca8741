import type { Logger } from '@faultline/core';
import type { MemberFault } from '@faultline/protocol';
import type { ClusterMembers } from './cluster-members.js';
import type { ClusterSink } from './decisions.js';
import { FaultStorm, type StormVerdict } from './fault-storm.js';
import { isLive, isPending, type LiveMember } from './member.js';

/** A member to retire: terminated if its instance still runs, removed if it is gone. */
export interface Retirement {
  member: LiveMember;
  reason: string;
  /** The SP epoch of the fault that caused it; undefined for a pending timeout. */
  epoch: number | undefined;
}

/** What ClusterFaults counted. */
export interface FaultCounts {
  /** MemberFaults acted upon or held. */
  faults: number;
  /** MemberFaults of unknown, terminating or already held members (idempotency). */
  faultsIgnored: number;
  /** MemberFaults held in a fault storm. */
  faultsHeld: number;
  pendingTimeouts: number;
}

export interface ClusterFaultsOptions {
  /** Read only: which members exist, and in which state. */
  members: Pick<ClusterMembers, 'get' | 'all' | 'liveCount'>;
  decide: ClusterSink['decide'];
  log: Logger;
  /** The fault-storm window: the CEP's fault timeout. */
  faultStormWindowMs: number;
  pendingTimeoutMs: number;
}

/** A fault not acted upon because the cluster was in a fault storm. */
interface HeldFault {
  reason: string;
  /** From the MemberFault: agent timestamp of the last stat of the faulted life. */
  lastStatAt: number | null;
  epoch: number | undefined;
  /** Set when the storm ends: the fault is carried out at this time unless the member shows life first. */
  recheckUntil: number | undefined;
}

const faultReason = (f: MemberFault): string =>
  `MemberFault (${f.reason}${f.reason === 'timeout' ? `, silent ${f.silentForMs} ms` : ''})`;

/**
 * Which members of one cluster must go because they failed (README
 * "Autoscaler", rules 2, 4 and 6): a MemberFault of a live member, a member
 * not active within the pending timeout, and a fault held in a fault storm
 * that its member did not answer with a sign of life. It says which members
 * to retire; the monitor retires them. It decides and logs only what is its
 * own: ignored faults, held faults, FaultStormHeld and FaultStormReleased.
 */
export class ClusterFaults {
  private readonly members: ClusterFaultsOptions['members'];
  private readonly decide: ClusterSink['decide'];
  private readonly log: Logger;
  private readonly pendingTimeoutMs: number;
  private readonly storm: FaultStorm;
  private readonly held = new Map<string, HeldFault>();
  private readonly counted: FaultCounts = { faults: 0, faultsIgnored: 0, faultsHeld: 0, pendingTimeouts: 0 };

  constructor(options: ClusterFaultsOptions) {
    this.members = options.members;
    this.decide = options.decide;
    this.log = options.log;
    this.pendingTimeoutMs = options.pendingTimeoutMs;
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

  /** The reason of the member's fault held in a storm, if one is. */
  heldReason(memberId: string): string | undefined {
    return this.held.get(memberId)?.reason;
  }

  /** The member left the context: a fault held for it is moot. */
  forget(memberId: string): void {
    this.held.delete(memberId);
  }

  /** The seed's MemberFault: the member to retire, or undefined when the fault is ignored or held. */
  fault(fault: MemberFault, faultId: string, epoch: number | undefined, now: number): Retirement | undefined {
    const member = this.members.get(fault.memberId);
    // Idempotent by state: unknown and already terminated members are not in the context.
    let ignored: string | undefined;
    if (!member) ignored = 'unknown or already terminated member';
    else if (!isLive(member)) ignored = 'already terminating';
    else if (this.held.has(member.memberId)) ignored = 'a fault of this member is already held';
    if (ignored !== undefined || !member || !isLive(member)) {
      this.counted.faultsIgnored += 1;
      this.log.info('fault ignored', {
        event: 'autoscaler.fault_ignored',
        memberId: fault.memberId,
        why: ignored,
        faultId,
        epoch: epoch ?? null,
      });
      return undefined;
    }
    this.counted.faults += 1;
    const reason = faultReason(fault);
    const verdict = this.storm.record(member.memberId, now, this.members.liveCount());
    if (verdict.type !== 'normal') {
      this.hold(member, fault, reason, epoch, verdict);
      return undefined;
    }
    return { member, reason, epoch };
  }

  /**
   * A cluster summary. Release rule: a summary of a window that ends after the hold began — the SP is
   * summarizing this cluster again. A summary computed before the hold but delivered late does not count.
   */
  clusterSummary(type: string, windowTo: number, epoch: number | undefined, now: number): void {
    const since = this.storm.heldSince;
    if (since !== undefined && windowTo > since) this.release(type, windowTo, epoch, now);
  }

  /** A member's figure in a member summary: a window that starts at or after the faulted life's last stat holds only samples of a new life. */
  memberSummary(memberId: string, windowFrom: number, type: string): void {
    const held = this.held.get(memberId);
    if (held && (held.lastStatAt === null || windowFrom >= held.lastStatAt)) {
      this.clearHeld(memberId, `${type} of a window from ${windowFrom}`);
    }
  }

  /** An instance event of the member (its agent is alive): a fault held for it is cleared. */
  instanceEvent(memberId: string, type: string): void {
    this.clearHeld(memberId, type);
  }

  /** Pending members with an instance that are not active within the pending timeout (outside a storm). */
  pendingTimeouts(now: number): Retirement[] {
    const due: Retirement[] = [];
    for (const member of this.members.all()) {
      if (!isLive(member) || !isPending(member) || !member.instance || this.held.has(member.memberId)) continue;
      if (now - member.createdAt < this.pendingTimeoutMs) continue;
      this.counted.pendingTimeouts += 1;
      due.push({ member, reason: `not active within ${this.pendingTimeoutMs} ms (pending timeout)`, epoch: undefined });
    }
    return due;
  }

  /** Faults held in the storm whose re-check time has come without a sign of life: carried out now. */
  confirmedFaults(now: number): Retirement[] {
    const due: Retirement[] = [];
    for (const [memberId, held] of [...this.held]) {
      if (held.recheckUntil === undefined || now < held.recheckUntil) continue;
      this.held.delete(memberId);
      const member = this.members.get(memberId);
      const reason = `${held.reason}, held in a fault storm and confirmed: no stats in ${this.storm.windowMs} ms after it`;
      if (member && isLive(member)) due.push({ member, reason, epoch: held.epoch });
    }
    return due;
  }

  private hold(
    member: LiveMember,
    fault: MemberFault,
    reason: string,
    epoch: number | undefined,
    verdict: StormVerdict,
  ): void {
    this.held.set(member.memberId, { reason, lastStatAt: fault.lastStatAt, epoch, recheckUntil: undefined });
    this.counted.faultsHeld += 1;
    if (verdict.type === 'tipped') {
      const { faultedMemberIds, clusterSize } = verdict;
      const { windowMs } = this.storm;
      this.decide({
        action: 'FaultStormHeld',
        reason: `${faultedMemberIds.length} of ${clusterSize} members faulted within ${windowMs} ms: terminations held, the monitor is the likely fault`,
        epoch,
        storm: { faultedMemberIds, clusterSize, windowMs },
      });
    }
    this.log.warn('fault held', {
      event: 'autoscaler.fault_held',
      memberId: member.memberId,
      reason,
      epoch: epoch ?? null,
    });
  }

  private release(type: string, windowTo: number, epoch: number | undefined, now: number): void {
    this.storm.release();
    const { windowMs } = this.storm;
    const until = now + windowMs;
    for (const held of this.held.values()) held.recheckUntil = until;
    this.decide({
      action: 'FaultStormReleased',
      reason: `cluster stats resumed (${type} of the window ending ${new Date(windowTo).toISOString()}); ${this.held.size} held faults carried out in ${windowMs} ms unless their members report`,
      epoch,
    });
  }

  private clearHeld(memberId: string, evidence: string): void {
    if (!this.held.delete(memberId)) return;
    this.log.info('held fault cleared: the member reported again', {
      event: 'autoscaler.held_fault_cleared',
      memberId,
      evidence,
    });
  }
}
