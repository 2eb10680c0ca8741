import { type Clock, type Logger, sleep } from '@faultline/core';
import { z } from 'zod';
import type { ProcessTable } from './proc-table.js';
import { describeIssues, intIn, issuesOf } from './validate.js';

/** One process, named so that a reused pid is not mistaken for it. */
export interface ProcessRef {
  pid: number;
  /** /proc/<pid>/stat field 22 when it was spawned. */
  startTime: number;
}

/** The local driver's `MemberInstance.handle`. */
export interface LocalHandle {
  /** The boot the start times count from. */
  bootId: string;
  /** The member's process group: the workload's pid (it is the group leader). */
  pgid: number;
  workload: ProcessRef;
  /** Null when the agent had already exited when the member was recorded. */
  agent: ProcessRef | null;
}

/** `stopped` is still running for the autoscaler: a hung (SIGSTOPped) instance is terminated, not forgotten. */
export type ProcessState = 'running' | 'stopped' | 'gone';

export function processState(table: ProcessTable, handle: LocalHandle, ref: ProcessRef | null): ProcessState {
  if (!ref || handle.bootId !== table.bootId()) return 'gone';
  const stat = table.stat(ref.pid);
  // Another start time: the pid was reused by another process after ours exited.
  if (!stat || stat.startTime !== ref.startTime) return 'gone';
  if (stat.state === 'Z' || stat.state === 'X') return 'gone';
  return stat.state === 'T' || stat.state === 't' ? 'stopped' : 'running';
}

/**
 * Whether the group `handle.pgid` is still this member's: one of its recorded
 * processes must still be alive. A group whose recorded processes are all gone
 * is never signalled, because its id may by now belong to someone else (Linux
 * frees a pgid once its last member exits).
 */
export function ownsGroup(table: ProcessTable, handle: LocalHandle): boolean {
  // Still in the group too, at every use: a recorded process that left it (setsid) vouches for nothing.
  const inGroup = (ref: Parameters<typeof processState>[2]) =>
    processState(table, handle, ref) !== 'gone' && table.stat(ref ? ref.pid : 0)?.pgid === handle.pgid;
  return inGroup(handle.workload) || inGroup(handle.agent);
}

const processRefSchema = z.looseObject(
  { pid: intIn(1, 2 ** 31 - 1), startTime: intIn(0, Number.MAX_SAFE_INTEGER) },
  { error: 'must be an object' },
);

/** A handle read back from the registry (external input). */
export const localHandleSchema = z
  .looseObject(
    {
      bootId: z.string({ error: 'must be a string' }).min(1, { error: 'must be a string' }),
      // pgid 1 would be init's group: never a member.
      pgid: intIn(2, 2 ** 31 - 1),
      workload: processRefSchema,
      agent: processRefSchema.nullable(),
    },
    { error: 'must be an object' },
  )
  .refine((handle) => handle.workload.pid === handle.pgid, {
    error: 'must be the workload pid (the group leader)',
    path: ['pgid'],
  });

/** Checks a handle read back from the registry; returns the problems found. */
export function checkLocalHandle(value: unknown): string[] {
  const parsed = localHandleSchema.safeParse(value);
  return parsed.success ? [] : describeIssues(issuesOf(parsed.error, 'handle'));
}

export type GroupStopOutcome = 'terminated' | 'killed' | 'already-gone' | 'stuck';

export interface StopGroupOptions {
  table: ProcessTable;
  clock: Clock;
  log: Logger;
  graceMs: number;
  /** How often the group is looked at while it stops. */
  pollMs: number;
  /** How long to wait for the kernel to reap the group after SIGKILL. */
  killWaitMs: number;
}

async function waitEmpty(options: StopGroupOptions, pgid: number, ms: number): Promise<boolean> {
  const deadline = options.clock.monotonicNow() + ms;
  for (;;) {
    if (options.table.groupMembers(pgid).length === 0) return true;
    if (options.clock.monotonicNow() >= deadline) return false;
    await sleep(options.clock, options.pollMs);
  }
}

/**
 * SIGTERM to the whole group, SIGKILL after the grace period (README "Members:
 * cloud controller, workload and cartridge agent").
 * SIGCONT follows SIGTERM because a stopped process (SIGSTOP, `chaos
 * hang-member`) keeps SIGTERM pending and would sit out the whole grace
 * period; resumed, it runs its handler and exits cleanly. SIGKILL needs no
 * such help: it ends stopped processes too.
 */
export async function stopGroup(handle: LocalHandle, options: StopGroupOptions): Promise<GroupStopOutcome> {
  const { table, log } = options;
  if (!ownsGroup(table, handle)) return 'already-gone';
  const pgid = handle.pgid;
  if (!table.kill(-pgid, 'SIGTERM')) return 'already-gone';
  table.kill(-pgid, 'SIGCONT');
  if (await waitEmpty(options, pgid, options.graceMs)) return 'terminated';
  log.warn('member did not stop within its grace period, killing it', {
    event: 'local_iaas.grace_expired',
    pgid,
    graceMs: options.graceMs,
  });
  if (!table.kill(-pgid, 'SIGKILL')) return 'killed';
  if (await waitEmpty(options, pgid, options.killWaitMs)) return 'killed';
  log.error('member processes remain after SIGKILL', {
    event: 'local_iaas.member_stuck',
    pgid,
    pids: table.groupMembers(pgid),
  });
  return 'stuck';
}
