import type { Clock } from '@faultline/core';
import type pg from 'pg';
import { liveHandle, liveMembers, type MemberRow } from './cluster-view.js';
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

async function pickMember(pool: pg.Pool, id: string | undefined): Promise<MemberRow> {
  const members = (await liveMembers(pool)).filter((m) => liveHandle(m));
  if (id) {
    const member = members.find((m) => m.memberId === id);
    if (!member)
      throw new Error(`no running member ${id}; running: ${members.map((m) => m.memberId).join(', ') || 'none'}`);
    return member;
  }
  const active = members.filter((m) => m.state === 'Active');
  const pool_ = active.length > 0 ? active : members;
  const member = pool_[Math.floor(Math.random() * pool_.length)];
  if (!member) throw new Error('no running member to pick');
  return member;
}

async function spNodeWithRole(
  nodes: { id: string; statusPort: number }[],
  role: 'ACTIVE' | 'PASSIVE',
): Promise<string> {
  for (const node of nodes) {
    try {
      const response = await fetch(`http://127.0.0.1:${node.statusPort}/status`, {
        signal: AbortSignal.timeout(1_000),
      });
      if (((await response.json()) as { role: string }).role === role) return node.id;
    } catch {
      // down: not this one
    }
  }
  throw new Error(`no SP node is ${role.toLowerCase()} right now`);
}

/**
 * The chaos commands, run inside the supervisor (it owns the platform
 * processes and reads the member registry). Each returns one line saying
 * what it did.
 */
export async function runChaos(
  action: ChaosAction,
  args: { target?: string; seconds?: number },
  ctx: { pool: pg.Pool; supervisor: Supervisor; spNodes: { id: string; statusPort: number }[]; clock: Clock },
): Promise<string> {
  switch (action) {
    case 'kill-member': {
      const member = await pickMember(ctx.pool, args.target);
      const handle = liveHandle(member);
      if (!handle) throw new Error(`member ${member.memberId} is not running`);
      process.kill(-handle.pgid, 'SIGKILL');
      return `killed member ${member.memberId} (process group ${handle.pgid}, SIGKILL)`;
    }
    case 'kill-agent': {
      const member = await pickMember(ctx.pool, args.target);
      const agent = liveHandle(member)?.agent;
      if (!agent) throw new Error(`member ${member.memberId} has no running agent`);
      process.kill(agent.pid, 'SIGKILL');
      return `killed the agent of ${member.memberId} (pid ${agent.pid}); its instance still runs`;
    }
    case 'hang-member': {
      const member = await pickMember(ctx.pool, args.target);
      const handle = liveHandle(member);
      if (!handle) throw new Error(`member ${member.memberId} is not running`);
      process.kill(-handle.pgid, 'SIGSTOP');
      return `hung member ${member.memberId} (process group ${handle.pgid}, SIGSTOP)`;
    }
    case 'kill-broker': {
      const name = `broker-${args.target ?? ''}`;
      if (!ctx.supervisor.signal(name, 'SIGKILL'))
        throw new Error(`no running broker ${args.target ?? '(give a or b)'}`);
      return `killed ${name} (SIGKILL); the supervisor restarts it`;
    }
    case 'kill-sp': {
      const role = args.target === 'passive' ? 'PASSIVE' : args.target === 'active' ? 'ACTIVE' : undefined;
      if (!role) throw new Error('kill-sp takes active or passive');
      const node = await spNodeWithRole(ctx.spNodes, role);
      ctx.supervisor.signal(node, 'SIGKILL');
      return `killed the ${role.toLowerCase()} SP node ${node} (SIGKILL); the supervisor restarts it as passive`;
    }
    case 'pause-sp': {
      if (args.target !== 'active') throw new Error('pause-sp takes active');
      const node = await spNodeWithRole(ctx.spNodes, 'ACTIVE');
      const seconds = args.seconds ?? 5;
      ctx.supervisor.signal(node, 'SIGSTOP');
      ctx.clock.setTimeout(() => ctx.supervisor.signal(node, 'SIGCONT'), seconds * 1_000);
      return `paused the active SP node ${node} (SIGSTOP) for ${seconds} s`;
    }
  }
}
