import type { LocalHandle } from '@faultline/cloud-controller';
import type { Clock } from '@faultline/core';
import type { SpRole } from '@faultline/stream-processor';
import type pg from 'pg';
import { liveHandle, liveMembers, type MemberRow } from './cluster-view.js';
import { ChaosTargetError, UsageError } from './errors.js';
import { spStatus } from './probes.js';
import type { Supervisor } from './supervisor.js';

export const CHAOS_ACTIONS = [
  'kill-member',
  'kill-agent',
  'hang-member',
  'kill-broker',
  'kill-sp',
  'pause-sp',
] as const;
export type ChaosAction = (typeof CHAOS_ACTIONS)[number];

export function isChaosAction(value: unknown): value is ChaosAction {
  return (CHAOS_ACTIONS as readonly unknown[]).includes(value);
}

/** How long `pause-sp` stops the active node without `--seconds`. */
const DEFAULT_PAUSE_SECONDS = 5;

/** A chaos command as the control endpoint receives it, checked once. */
export interface ChaosRequest {
  action: ChaosAction;
  /** A member id, a broker name (`a`, `b`) or an SP role (`active`, `passive`), as the action takes. */
  target: string | undefined;
  /** `pause-sp` only. */
  seconds: number;
}

/** The `chaos` call's JSON body (`{ action, target?, seconds? }`, strings from the command line) as a request. */
export function parseChaosRequest(body: Record<string, unknown>): ChaosRequest {
  const action = String(body.action);
  if (!isChaosAction(action)) throw new UsageError(`unknown chaos action ${action}`);
  return {
    action,
    target: body.target ? String(body.target) : undefined,
    seconds: body.seconds ? Number(body.seconds) : DEFAULT_PAUSE_SECONDS,
  };
}

/** What a chaos command acts through: the member registry, the platform processes, the SP nodes. */
export interface ChaosContext {
  pool: pg.Pool;
  supervisor: Supervisor;
  spNodes: readonly { id: string; statusPort: number }[];
  clock: Clock;
}

async function pickMember(pool: pg.Pool, id: string | undefined): Promise<MemberRow> {
  const members = (await liveMembers(pool)).filter((m) => liveHandle(m));
  if (id) {
    const member = members.find((m) => m.memberId === id);
    if (!member) {
      throw new ChaosTargetError(
        `no running member ${id}; running: ${members.map((m) => m.memberId).join(', ') || 'none'}`,
      );
    }
    return member;
  }
  const active = members.filter((m) => m.state === 'Active');
  const candidates = active.length > 0 ? active : members;
  const member = candidates[Math.floor(Math.random() * candidates.length)];
  if (!member) throw new ChaosTargetError('no running member to pick');
  return member;
}

/** A member picked as pickMember does, with its process group checked still alive right before a signal. */
async function pickRunningMember(
  pool: pg.Pool,
  id: string | undefined,
): Promise<{ member: MemberRow; handle: LocalHandle }> {
  const member = await pickMember(pool, id);
  const handle = liveHandle(member);
  if (!handle) throw new ChaosTargetError(`member ${member.memberId} is not running`);
  return { member, handle };
}

async function spNodeWithRole(nodes: ChaosContext['spNodes'], role: SpRole): Promise<string> {
  for (const node of nodes) {
    // Down or paused: not this one.
    if ((await spStatus(node.statusPort))?.role === role) return node.id;
  }
  throw new ChaosTargetError(`no SP node is ${role.toLowerCase()} right now`);
}

/**
 * The chaos commands, run inside the supervisor (it owns the platform
 * processes and reads the member registry). Each returns one line saying
 * what it did.
 */
export async function runChaos({ action, target, seconds }: ChaosRequest, context: ChaosContext): Promise<string> {
  switch (action) {
    case 'kill-member': {
      const { member, handle } = await pickRunningMember(context.pool, target);
      process.kill(-handle.pgid, 'SIGKILL');
      return `killed member ${member.memberId} (process group ${handle.pgid}, SIGKILL)`;
    }
    case 'kill-agent': {
      const member = await pickMember(context.pool, target);
      const agent = liveHandle(member)?.agent;
      if (!agent) throw new ChaosTargetError(`member ${member.memberId} has no running agent`);
      process.kill(agent.pid, 'SIGKILL');
      return `killed the agent of ${member.memberId} (pid ${agent.pid}); its instance still runs`;
    }
    case 'hang-member': {
      const { member, handle } = await pickRunningMember(context.pool, target);
      process.kill(-handle.pgid, 'SIGSTOP');
      return `hung member ${member.memberId} (process group ${handle.pgid}, SIGSTOP)`;
    }
    case 'kill-broker': {
      const name = `broker-${target ?? ''}`;
      if (!context.supervisor.signal(name, 'SIGKILL')) {
        throw new ChaosTargetError(`no running broker ${target ?? '(give a or b)'}`);
      }
      return `killed ${name} (SIGKILL); the supervisor restarts it`;
    }
    case 'kill-sp': {
      const role = target === 'passive' ? 'PASSIVE' : target === 'active' ? 'ACTIVE' : undefined;
      if (!role) throw new UsageError('kill-sp takes active or passive');
      const node = await spNodeWithRole(context.spNodes, role);
      context.supervisor.signal(node, 'SIGKILL');
      return `killed the ${role.toLowerCase()} SP node ${node} (SIGKILL); the supervisor restarts it as passive`;
    }
    case 'pause-sp': {
      if (target !== 'active') throw new UsageError('pause-sp takes active');
      const node = await spNodeWithRole(context.spNodes, 'ACTIVE');
      context.supervisor.signal(node, 'SIGSTOP');
      context.clock.setTimeout(() => context.supervisor.signal(node, 'SIGCONT'), seconds * 1_000);
      return `paused the active SP node ${node} (SIGSTOP) for ${seconds} s`;
    }
  }
}
