import { systemClock } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type StackShutdownOptions, stopStack } from './stack-shutdown.js';

/*
 * The stack's way down (stack-shutdown.ts) on fake time, with a supervisor
 * and a registry the test drives: what is stopped, in which order, and what
 * a database that does not answer costs.
 */

function setup(overrides: Partial<StackShutdownOptions<string>> = {}) {
  const log = createMemoryLogger();
  const steps: string[] = [];
  const pending = new Map<string, () => void>();
  const supervisor = {
    // Each autoscaler node takes a while to stop: the test sees which are stopping at once.
    stop: (name: string) =>
      new Promise<void>((resolve) => {
        steps.push(`stop ${name}`);
        pending.set(name, () => {
          steps.push(`stopped ${name}`);
          resolve();
        });
        setTimeout(() => pending.get(name)?.(), 1_000);
      }),
    stopAll: async (options: { keep?: readonly string[] } = {}) => {
      steps.push(options.keep ? `stopAll but ${options.keep.join()}` : 'stopAll');
    },
  };
  const terminated: string[][] = [];
  const options: StackShutdownOptions<string> = {
    clock: systemClock,
    logger: log,
    supervisor,
    autoscalers: ['autoscaler-a', 'autoscaler-b'],
    postgres: 'postgres',
    readMembers: async () => ['m1', 'm2'],
    terminateMembers: async (members) => {
      steps.push('terminate');
      terminated.push(members);
    },
    closeControl: async () => {
      steps.push('control');
    },
    endPool: async () => {
      steps.push('pool');
    },
    ...overrides,
  };
  return { log, steps, terminated, options };
}

describe('stopStack', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('stops both autoscaler nodes together, then the members, the services, control, pool, PostgreSQL last', async () => {
    const { steps, terminated, options } = setup();
    const done = stopStack(options);
    await vi.advanceTimersByTimeAsync(2_000);
    await done;
    // Both stopping before either has stopped: the standby never holds the lease alone meanwhile.
    expect(steps.slice(0, 2)).toEqual(['stop autoscaler-a', 'stop autoscaler-b']);
    expect(steps.slice(4)).toEqual(['terminate', 'stopAll but postgres', 'control', 'pool', 'stopAll']);
    expect(terminated).toEqual([['m1', 'm2']]);
  });

  it('waits for a database that does not answer (PostgreSQL restarting) before reading the members', async () => {
    let refusals = 8; // 4 s of a restarting PostgreSQL
    const { log, terminated, options } = setup({
      readMembers: async () => {
        if (refusals-- > 0) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
        return ['m1'];
      },
    });
    const done = stopStack(options);
    await vi.advanceTimersByTimeAsync(10_000);
    await done;
    expect(terminated).toEqual([['m1']]);
    expect(log.events()).toContain('stack.members_waiting');
    expect(log.events()).not.toContain('stack.members_unknown');
  });

  it('gives up after 15 s, saying loudly that members may be left, and stops the rest', async () => {
    const { log, steps, terminated, options } = setup({
      // A read that hangs is bounded too.
      readMembers: () => new Promise<string[]>(() => {}),
    });
    const done = stopStack(options);
    await vi.advanceTimersByTimeAsync(1_000 + 14_000);
    expect(log.events()).not.toContain('stack.members_unknown');
    await vi.advanceTimersByTimeAsync(1_100);
    await done;
    expect(terminated).toEqual([]);
    expect(log.records.find((r) => r.event === 'stack.members_unknown')).toMatchObject({ level: 'error' });
    expect(steps.slice(-4)).toEqual(['stopAll but postgres', 'control', 'pool', 'stopAll']);
  });

  it('never rejects: a step that throws is logged and the next one runs, PostgreSQL stopped all the same', async () => {
    const boom = (what: string) => async () => {
      throw new Error(`${what} failed`);
    };
    const { log, steps, options } = setup({
      terminateMembers: boom('terminate'),
      closeControl: boom('control'),
      endPool: boom('pool'),
    });
    const done = stopStack(options);
    await vi.advanceTimersByTimeAsync(2_000);
    await expect(done).resolves.toBeUndefined();
    expect(log.records.filter((r) => r.event === 'stack.stop_step_failed').map((r) => r.fields.step)).toEqual([
      'members',
      'control',
      'pool',
    ]);
    expect(steps.at(-1)).toBe('stopAll');
  });
});
