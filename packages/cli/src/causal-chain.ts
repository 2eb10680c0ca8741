import { type ActionEntry, type MemberRecord, readMemberActions, readMembers } from '@faultline/autoscaler';
import { escapeControlChars } from '@faultline/core';
import type pg from 'pg';

/**
 * The steps of a member's causal chain (docs/operations.md, "The console"),
 * in the order they happen: its last stat, the fault declared, the
 * autoscaler's decision, the member terminated (forgotten), the spawn of its
 * replacement, the replacement active.
 */
export const CHAIN_STEPS = ['lastStat', 'fault', 'decision', 'terminated', 'spawn', 'active'] as const;
export type ChainStepName = (typeof CHAIN_STEPS)[number];

export interface ChainStep {
  step: ChainStepName;
  /** Epoch ms. */
  at: number;
  /** The member the step is about: the replacement's for `spawn` and `active`. */
  memberId: string;
  what: string;
}

export interface CausalChain {
  memberId: string;
  clusterId: string | null;
  /** The member's registry state now (`Terminated` until the row is pruned), or null when the registry has no row. */
  state: string | null;
  createdAt: number | null;
  /** The steps known so far, in CHAIN_STEPS order: a chain under way ends early. */
  steps: ChainStep[];
  /** The member that replaced it, once a spawn is matched to it. */
  replacedBy: string | null;
  /** Whether the member was retired for a fault (else: scaled down, a pending timeout, still live, …). */
  faulted: boolean;
}

/**
 * Which minimum-rule spawn replaced which removed member, when the spawns do
 * not say (recorded by an autoscaler that did not see the retirement: a
 * restart, a takeover in between), from one cluster's removals, scale-downs
 * and spawns, oldest first. A spawn that names the member it replaces
 * (`replaces`) is taken as it says; each other MemberSpawnAction replaces the
 * oldest removal not yet replaced (the minimum rule refills the cluster in
 * the order it emptied). A removal after a ScaleDownAction of the same member
 * is not replaced (the cluster meant to shrink), a removal recorded twice
 * counts once, and a spawn with no removal waiting (the cluster growing to
 * its minimum) replaces nothing. A guess: a removal that left the cluster
 * above its minimum is paired with a later spawn all the same. Returns
 * removed member id → spawn.
 */
export function pairReplacements(actions: readonly ActionEntry[]): Map<string, ActionEntry> {
  const scaledDown = new Set<string>();
  const waiting = new Set<string>();
  const pairs = new Map<string, ActionEntry>();
  for (const a of actions) {
    if (a.memberId === null) continue;
    if (a.action === 'ScaleDownAction') scaledDown.add(a.memberId);
    else if (a.action === 'MemberRemoved' && !scaledDown.has(a.memberId) && !pairs.has(a.memberId))
      waiting.add(a.memberId);
    else if (a.action === 'MemberSpawnAction') {
      const named = a.replaces !== null && waiting.has(a.replaces) ? a.replaces : undefined;
      const removed = named ?? (a.replaces === null ? waiting.values().next().value : undefined);
      if (removed === undefined) continue;
      waiting.delete(removed);
      pairs.set(removed, a);
    }
  }
  return pairs;
}

const FAULT_WHAT: Record<string, string> = {
  timeout: 'MemberFault: no stats within the fault timeout',
  ports_not_open: 'MemberFault: its workload ports are not open',
  absent: 'absent: no member summary listed it',
  gone: 'its instance is not running (the infrastructure, by reconciliation)',
};

/**
 * A member's causal chain from the autoscaler's registry: its own decisions
 * (the first one on a fault carries when the fault was declared and its last
 * stat), its row (when it was terminated), the spawn that replaced it and
 * when that member became active. Undefined when the registry knows nothing
 * of the member (never seen, or pruned).
 */
export async function causalChain(pool: pg.Pool, memberId: string): Promise<CausalChain | undefined> {
  const { own, replacedBy, cluster } = await readMemberActions(pool, memberId);
  const replacement = replacedBy ?? pairReplacements(cluster).get(memberId);
  const rows = await readMembers(pool, replacement?.memberId ? [memberId, replacement.memberId] : [memberId]);
  const member = rows.find((r) => r.memberId === memberId);
  if (!member && own.length === 0) return undefined;
  const next = replacement?.memberId ? rows.find((r) => r.memberId === replacement.memberId) : undefined;
  return chainOf(memberId, member, own, replacement, next);
}

/** The chain from what was read (causalChain); pure, for tests. */
export function chainOf(
  memberId: string,
  member: MemberRecord | undefined,
  own: readonly ActionEntry[],
  replacement: ActionEntry | undefined,
  next: MemberRecord | undefined,
): CausalChain {
  const steps: ChainStep[] = [];
  const decision = own.find((a) => a.fault !== null);
  const fault = decision?.fault ?? null;
  if (fault?.lastStatAt != null) steps.push({ step: 'lastStat', at: fault.lastStatAt, memberId, what: 'last stat' });
  if (fault) steps.push({ step: 'fault', at: fault.declaredAt, memberId, what: FAULT_WHAT[fault.kind] ?? fault.kind });
  const first = decision ?? own.find((a) => a.action === 'MemberTerminateAction' || a.action === 'ScaleDownAction');
  if (first) steps.push({ step: 'decision', at: first.at, memberId, what: `${first.action}: ${first.reason}` });
  const removed = own.find((a) => a.action === 'MemberRemoved');
  const terminatedAt = member?.terminatedAt ?? removed?.at;
  if (terminatedAt != null)
    steps.push({
      step: 'terminated',
      at: terminatedAt,
      memberId,
      what: `terminated: ${removed?.reason ?? member?.reason ?? ''}`,
    });
  if (replacement?.memberId) {
    steps.push({
      step: 'spawn',
      at: replacement.at,
      memberId: replacement.memberId,
      what: `MemberSpawnAction ${replacement.memberId}: ${replacement.reason}`,
    });
    if (next?.activatedAt != null)
      steps.push({
        step: 'active',
        at: next.activatedAt,
        memberId: replacement.memberId,
        what: `${replacement.memberId} active`,
      });
  }
  return {
    memberId,
    clusterId: member?.clusterId ?? own[0]?.clusterId ?? null,
    state: member?.state ?? null,
    createdAt: member?.createdAt ?? null,
    steps,
    replacedBy: replacement?.memberId ?? null,
    faulted: fault !== null,
  };
}

/** The chain as `faultline explain` prints it: a line a step, with the time and the time since the step before. */
export function formatChain(chain: CausalChain): string {
  const lines = [
    `member ${chain.memberId}  cluster ${chain.clusterId ?? '?'}  state ${chain.state ?? 'pruned from the registry'}`,
  ];
  if (chain.createdAt !== null) lines.push(`  ${iso(chain.createdAt)}  created`);
  let before: number | undefined;
  for (const s of chain.steps) {
    const delta = before === undefined ? '' : `  (+${formatMs(s.at - before)})`;
    lines.push(`  ${iso(s.at)}  ${s.step.padEnd(10)} ${s.what}${delta}`);
    before = s.at;
  }
  if (!chain.faulted) lines.push('  no fault recorded for this member');
  else if (chain.replacedBy === null) lines.push('  no replacement spawned yet');
  return lines.map((line) => escapeControlChars(line)).join('\n');
}

const iso = (ms: number) => new Date(ms).toISOString().replace('T', ' ').replace('Z', '');

function formatMs(ms: number): string {
  if (ms < 0) return `-${formatMs(-ms)}`;
  return ms < 1_000 ? `${ms} ms` : `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}
