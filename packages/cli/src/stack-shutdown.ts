import { type Clock, type Logger, sleep, type TimerHandle, withDefaults } from '@faultline/core';
import type { Supervisor } from './supervisor.js';

/** How long the members wait for a database that does not answer on the way down (PostgreSQL restarting). */
const MEMBERS_WAIT_MS = 15_000;
const MEMBERS_POLL_MS = 500;

export interface StackShutdownOptions<M> {
  clock: Clock;
  logger: Logger;
  supervisor: Pick<Supervisor, 'stop' | 'stopAll'>;
  /** The autoscaler nodes' service names. */
  autoscalers: readonly string[];
  /** The supervised PostgreSQL's service name: stopped last, once nothing uses it. */
  postgres: string;
  /** The members the registry lists as live; rejects while the database does not answer. Undefined: no registry yet. */
  readMembers: (() => Promise<M[]>) | undefined;
  terminateMembers: (members: M[]) => Promise<void>;
  /** The control endpoint (may not have started). */
  closeControl: () => Promise<void>;
  /** The supervisor's own pool (may not have started). */
  endPool: () => Promise<void>;
  /** How long a database that does not answer is waited for before the members are given up. @default 15_000 */
  membersWaitMs?: number;
  /** @default 500 */
  membersPollMs?: number;
}

/**
 * Reads the members to terminate, waiting up to `waitMs` for a database
 * that does not answer (PostgreSQL restarting after a crash): an empty
 * answer would leave every member running. Undefined, logged loudly
 * (`stack.members_unknown`), when it does not answer in time.
 */
export async function readMembersPatiently<M>(
  read: () => Promise<M[]>,
  options: { clock: Clock; logger: Logger; waitMs: number; pollMs: number },
): Promise<M[] | undefined> {
  const { clock, logger, waitMs, pollMs } = options;
  const deadline = clock.monotonicNow() + waitMs;
  let lastError: unknown;
  for (let attempt = 0; ; attempt++) {
    const remainingMs = Math.max(deadline - clock.monotonicNow(), 1);
    // One read that hangs (a connection to a server that does not answer) must not outlast the wait either.
    let timer: TimerHandle | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = clock.setTimeout(() => reject(new Error(`no answer within ${remainingMs} ms`)), remainingMs);
    });
    try {
      return await Promise.race([read(), timedOut]);
    } catch (error) {
      lastError = error;
    } finally {
      clock.clearTimeout(timer);
    }
    if (attempt === 0) {
      logger.warn('the database does not answer: waiting for it to list the members to terminate', {
        event: 'stack.members_waiting',
        waitMs,
      });
    }
    if (clock.monotonicNow() + pollMs >= deadline) break;
    await sleep(clock, pollMs);
  }
  logger.error('the database did not answer: members may be left running; `faultline stack up` adopts them', {
    event: 'stack.members_unknown',
    waitMs,
    error: lastError,
  });
  return undefined;
}

/**
 * The stack's way down, in order: both autoscaler nodes together (one
 * stopped before the other would let the standby take the lease and replace
 * the members being terminated), the members while the database still lists
 * them, the other services, the control endpoint and the pool, PostgreSQL
 * last. A step that fails is logged (`stack.stop_step_failed`) and the next
 * one runs: this never rejects, so the supervisor always reaches its end.
 */
export async function stopStack<M>(input: StackShutdownOptions<M>): Promise<void> {
  const options = withDefaults({ membersWaitMs: MEMBERS_WAIT_MS, membersPollMs: MEMBERS_POLL_MS }, input);
  const { clock, logger, supervisor, readMembers } = options;
  const step = async (name: string, act: () => Promise<unknown>) => {
    try {
      await act();
    } catch (error) {
      logger.error('a step of the stack’s stop failed: going on with the next', {
        event: 'stack.stop_step_failed',
        step: name,
        error,
      });
    }
  };
  await step('autoscalers', () => Promise.all(options.autoscalers.map((id) => supervisor.stop(id))));
  if (readMembers) {
    await step('members', async () => {
      const members = await readMembersPatiently(readMembers, {
        clock,
        logger,
        waitMs: options.membersWaitMs,
        pollMs: options.membersPollMs,
      });
      if (members) await options.terminateMembers(members);
    });
  }
  await step('services', () => supervisor.stopAll({ keep: [options.postgres] }));
  await step('control', options.closeControl);
  await step('pool', options.endPool);
  // PostgreSQL last, once nothing uses it (a no-op with database.url).
  await step('postgres', () => supervisor.stopAll());
}
