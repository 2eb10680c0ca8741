import { randomBytes } from 'node:crypto';
import type { CartridgeMemberIdentity, MemberInstance } from '@faultline/cloud-controller';
import { memberIdentityOf } from '@faultline/protocol';

/**
 * A member's life as the autoscaler sees it (Stratos' member states):
 *
 *   Created ──InstanceStartedEvent──► Starting ──InstanceActivatedEvent──► Active
 *      │                                 │                                   │
 *      └──────── terminate (fault, pending timeout, scale down) ─────────────┴──► Terminating ──► Terminated
 *
 * A member terminated while it still serves (scale down, max rule) is
 * Terminating with `drainUntil` set (draining: its readiness is false, a
 * MemberReadyToShutdownEvent says so) until its workload is idle or that
 * time has passed; a faulted member has none and is stopped at once.
 *
 * Created may go straight to Active (the two events can arrive in either
 * order through different brokers). Terminated members leave the monitor's
 * context; only the registry keeps them.
 */
export const MEMBER_STATES = ['Created', 'Starting', 'Active', 'Terminating', 'Terminated'] as const;
export type MemberState = (typeof MEMBER_STATES)[number];

interface MemberBase extends CartridgeMemberIdentity {
  /** Epoch ms the autoscaler created it (decided to spawn it). */
  createdAt: number;
  /** What the Iaas returned from spawn; undefined while the spawn is under way. */
  instance: MemberInstance | undefined;
}

export type MemberContext =
  | (MemberBase & { state: 'Created' })
  | (MemberBase & { state: 'Starting'; startedAt: number })
  | (MemberBase & { state: 'Active'; activatedAt: number })
  | (MemberBase & {
      state: 'Terminating';
      reason: string;
      since: number;
      activatedAt: number | undefined;
      /** Epoch ms its graceful drain ends at the latest; undefined: stopped without a drain. */
      drainUntil?: number | undefined;
    })
  | (MemberBase & { state: 'Terminated'; reason: string; terminatedAt: number; activatedAt: number | undefined });

/** Created, Starting or Active: a member that is, or will be, serving. */
export type LiveMember = Extract<MemberContext, { state: 'Created' | 'Starting' | 'Active' }>;

export function isLive(member: MemberContext): member is LiveMember {
  return member.state === 'Created' || member.state === 'Starting' || member.state === 'Active';
}

export function isPending(member: MemberContext): boolean {
  return member.state === 'Created' || member.state === 'Starting';
}

export function activatedAtOf(member: MemberContext): number | undefined {
  return member.state === 'Active' || member.state === 'Terminating' || member.state === 'Terminated'
    ? member.activatedAt
    : undefined;
}

/** A registry row: plain data, one per member ever created. */
export interface MemberRecord extends CartridgeMemberIdentity {
  state: MemberState;
  /** The Iaas's MemberInstance (driver, address, handle with pids and start times); null until spawned. */
  instance: MemberInstance | null;
  /** Why it is terminating or terminated. */
  reason: string | null;
  createdAt: number;
  activatedAt: number | null;
  terminatedAt: number | null;
  /** Epoch ms a Terminating member's drain ends at the latest; null (or absent): no drain. */
  drainUntil?: number | null;
}

/** Exactly the identity of a member (protocol's five ids and its cartridge type), out of a larger record. */
export function identityOf(member: CartridgeMemberIdentity): CartridgeMemberIdentity {
  return { ...memberIdentityOf(member), cartridgeType: member.cartridgeType };
}

/** What every state of a member's context keeps: its identity, createdAt and instance. */
export function baseOf(member: MemberContext): MemberBase {
  return { ...identityOf(member), createdAt: member.createdAt, instance: member.instance };
}

/** `php-k3x9q2`: short, readable, and unique across restarts without a counter to keep. */
export function randomMemberId(clusterId: string): string {
  const bytes = randomBytes(6);
  const suffix = [...bytes].map((b) => (b % 36).toString(36)).join('');
  return `${clusterId}-${suffix}`;
}

export function toRecord(member: MemberContext): MemberRecord {
  return {
    ...identityOf(member),
    state: member.state,
    instance: member.instance ?? null,
    reason: member.state === 'Terminating' || member.state === 'Terminated' ? member.reason : null,
    createdAt: member.createdAt,
    activatedAt: activatedAtOf(member) ?? null,
    terminatedAt: member.state === 'Terminated' ? member.terminatedAt : null,
    drainUntil: member.state === 'Terminating' ? (member.drainUntil ?? null) : null,
  };
}

/**
 * The context of a member loaded from the registry (after a restart), with
 * the instance the Iaas adopted. Terminated rows are not loaded.
 */
export function fromRecord(record: MemberRecord, instance: MemberInstance | undefined, now: number): MemberContext {
  const base: MemberBase = { ...identityOf(record), createdAt: record.createdAt, instance };
  switch (record.state) {
    case 'Created':
      return { ...base, state: 'Created' };
    case 'Starting':
      // The row does not keep when the agent started; only the pending timeout reads it, from createdAt.
      return { ...base, state: 'Starting', startedAt: record.createdAt };
    case 'Active':
      return { ...base, state: 'Active', activatedAt: record.activatedAt ?? record.createdAt };
    case 'Terminating':
      return {
        ...base,
        state: 'Terminating',
        reason: record.reason ?? 'terminating before a restart',
        since: now,
        activatedAt: record.activatedAt ?? undefined,
        // The persisted end, not a new one: a restart during a drain never waits for a second full drain.
        ...(record.drainUntil == null ? {} : { drainUntil: record.drainUntil }),
      };
    case 'Terminated':
      return {
        ...base,
        state: 'Terminated',
        reason: record.reason ?? 'terminated',
        terminatedAt: record.terminatedAt ?? now,
        activatedAt: record.activatedAt ?? undefined,
      };
  }
}
