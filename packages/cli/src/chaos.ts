import { type LocalHandle, linuxProcessTable, type ProcessTable, processState } from '@faultline/cloud-controller';
import { type Clock, ID_PATTERN, ID_PATTERN_DESCRIPTION, type Logger } from '@faultline/core';
import type { SpRole } from '@faultline/stream-processor';
import type pg from 'pg';
import { liveHandle, liveMembers, type MemberRow } from './cluster-view.js';
import type { ControlHandler } from './control.js';
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
/** `pause-sp --seconds` bounds: a longer pause is an outage, not a test of failover. */
export const PAUSE_SECONDS_MIN = 1;
export const PAUSE_SECONDS_MAX = 60;

/** A chaos command as the control endpoint receives it, checked once. */
export interface ChaosRequest {
  action: ChaosAction;
  /** A member id, a broker name (`a`, `b`) or an SP role (`active`, `passive`), as the action takes. */
  target: string | undefined;
  /** `pause-sp` only: whole seconds from PAUSE_SECONDS_MIN to PAUSE_SECONDS_MAX. */
  seconds: number;
}

/** `--seconds` as given (a string from the command line, or a number), checked; the default when absent. */
function pauseSeconds(value: unknown): number {
  if (value === undefined || value === null) return DEFAULT_PAUSE_SECONDS;
  const text = typeof value === 'number' ? String(value) : typeof value === 'string' ? value : undefined;
  const seconds = text !== undefined && /^\d{1,2}$/.test(text) ? Number(text) : Number.NaN;
  if (!(seconds >= PAUSE_SECONDS_MIN && seconds <= PAUSE_SECONDS_MAX)) {
    throw new UsageError(
      `--seconds must be a whole number from ${PAUSE_SECONDS_MIN} to ${PAUSE_SECONDS_MAX}; got ${JSON.stringify(text ?? typeof value)}`,
    );
  }
  return seconds;
}

/**
 * The `chaos` call's JSON body (`{ action, target?, seconds? }`, strings from
 * the command line) as a request. The CLI checks its arguments with it before
 * calling the supervisor, and the control endpoint checks the body with it
 * again (it does not trust its caller): a UsageError for an unknown action, a
 * target that is not an id (README "Ids") or `--seconds` out of bounds.
 */
export function parseChaosRequest(body: Record<string, unknown>): ChaosRequest {
  const action = body.action;
  if (!isChaosAction(action)) {
    throw new UsageError(
      `unknown chaos action ${JSON.stringify(typeof action === 'string' ? action.slice(0, 64) : typeof action)}; one of: ${CHAOS_ACTIONS.join(', ')}`,
    );
  }
  const target = body.target;
  if (target !== undefined && target !== null && (typeof target !== 'string' || !ID_PATTERN.test(target))) {
    const shown = typeof target === 'string' ? JSON.stringify(target.slice(0, 64)) : typeof target;
    throw new UsageError(`chaos target ${shown} is not an id: it ${ID_PATTERN_DESCRIPTION}`);
  }
  // The words an action takes, checked here too: the CLI refuses a wrong one (exit 2) before contacting anyone.
  if (action === 'kill-sp' && target !== 'active' && target !== 'passive')
    throw new UsageError('kill-sp takes active or passive');
  if (action === 'pause-sp' && target !== 'active') throw new UsageError('pause-sp takes active');
  if (action === 'kill-broker' && (typeof target !== 'string' || target === ''))
    throw new UsageError('kill-broker takes a broker name (a, b)');
  return {
    action,
    target: typeof target === 'string' ? target : undefined,
    seconds: pauseSeconds(body.seconds),
  };
}

/** What a chaos command acts through: the member registry, the platform processes, the SP nodes. */
export interface ChaosContext {
  pool: pg.Pool;
  supervisor: Supervisor;
  spNodes: readonly { id: string; statusPort: number; statusHost?: string }[];
  clock: Clock;
  /** Where pids and start times are read and signals sent. @default linuxProcessTable */
  table?: ProcessTable;
}

async function pickMember(pool: pg.Pool, table: ProcessTable, id: string | undefined): Promise<MemberRow> {
  const members = (await liveMembers(pool)).filter((m) => liveHandle(m, table));
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
  table: ProcessTable,
  id: string | undefined,
): Promise<{ member: MemberRow; handle: LocalHandle }> {
  const member = await pickMember(pool, table, id);
  const handle = liveHandle(member, table);
  if (!handle) throw new ChaosTargetError(`member ${member.memberId} is not running`);
  return { member, handle };
}

async function spNodeWithRole(nodes: ChaosContext['spNodes'], role: SpRole): Promise<string> {
  for (const node of nodes) {
    // Down or paused: not this one.
    if ((await spStatus(node))?.role === role) return node.id;
  }
  throw new ChaosTargetError(`no SP node is ${role.toLowerCase()} right now`);
}

/**
 * The chaos commands, run inside the supervisor (it owns the platform
 * processes and reads the member registry). Each returns one line saying
 * what it did.
 */
export async function runChaos({ action, target, seconds }: ChaosRequest, context: ChaosContext): Promise<string> {
  const table = context.table ?? linuxProcessTable;
  switch (action) {
    case 'kill-member': {
      const { member, handle } = await pickRunningMember(context.pool, table, target);
      if (!table.kill(-handle.pgid, 'SIGKILL')) throw new ChaosTargetError(`member ${member.memberId} is not running`);
      return `killed member ${member.memberId} (process group ${handle.pgid}, SIGKILL)`;
    }
    case 'kill-agent': {
      const member = await pickMember(context.pool, table, target);
      const handle = liveHandle(member, table);
      const agent = handle?.agent;
      // Pid AND start time, as for every other signal: a recorded agent that
      // exited may have left its pid to another process.
      if (!handle || !agent || processState(table, handle, agent) === 'gone' || !table.kill(agent.pid, 'SIGKILL')) {
        throw new ChaosTargetError(`member ${member.memberId} has no running agent`);
      }
      return `killed the agent of ${member.memberId} (pid ${agent.pid}); its instance still runs`;
    }
    case 'hang-member': {
      const { member, handle } = await pickRunningMember(context.pool, table, target);
      if (!table.kill(-handle.pgid, 'SIGSTOP')) throw new ChaosTargetError(`member ${member.memberId} is not running`);
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

/**
 * The control endpoint's `chaos` action: the body checked (a UsageError, so a
 * 400, for anything parseChaosRequest refuses), then run and logged.
 */
export function chaosHandler(context: ChaosContext, logger: Logger): ControlHandler {
  return async (body) => {
    const request = parseChaosRequest(body);
    const result = await runChaos(request, context);
    logger.warn(`chaos: ${result}`, { event: 'chaos.applied', chaos: request.action });
    return result;
  };
}
