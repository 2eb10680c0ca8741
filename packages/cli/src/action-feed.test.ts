import type { ActionEntry } from '@faultline/autoscaler';
import { systemClock } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ActionFeed } from './action-feed.js';

const action = (id: number): ActionEntry => ({
  id,
  at: 1_000 + id,
  action: 'MemberRemoved',
  clusterId: 'php',
  memberId: `php-${String(id).padStart(6, '0')}`,
  reason: 'r',
  epoch: null,
  fault: null,
});

/**
 * An action table whose rows become visible when they commit, which need not
 * be in id order (two writers, a slow transaction); reads fail while `down`.
 */
function table(committed: number[] = []) {
  const rows = new Set(committed);
  const state = { down: false };
  const visible = () => [...rows].sort((a, b) => a - b).map(action);
  return {
    state,
    commit: (...ids: number[]) => {
      for (const id of ids) rows.add(id);
    },
    readAfter: async (afterId: number, limit: number) => {
      if (state.down) throw new Error('connection refused');
      return visible()
        .filter((a) => a.id > afterId)
        .slice(0, limit);
    },
    readLatest: async (limit: number) => {
      if (state.down) throw new Error('connection refused');
      return visible().reverse().slice(0, limit);
    },
  };
}

describe('the action feed', () => {
  beforeEach(() => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] }));
  afterEach(() => vi.useRealTimers());

  const feedOf = (t: ReturnType<typeof table>, options: { backlog?: number; batch?: number } = {}) => {
    const logger = createMemoryLogger();
    const feed = new ActionFeed({
      ...t,
      clock: systemClock,
      logger,
      pollIntervalMs: 1_000,
      gapWaitMs: 10_000,
      ...options,
    });
    const got: number[] = [];
    feed.subscribe((actions) => got.push(...actions.map((a) => a.id)));
    return { feed, got, logger };
  };

  it('starts from the newest actions as history, then hands each new action to its listeners once', async () => {
    const t = table([1, 2, 3]);
    const { feed, got } = feedOf(t, { backlog: 2 });
    feed.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(got).toEqual([]);
    expect(feed.since().map((a) => a.id)).toEqual([2, 3]);
    t.commit(4, 5);
    await vi.advanceTimersByTimeAsync(1_000);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(got).toEqual([4, 5]);
    expect(feed.since(3).map((a) => a.id)).toEqual([4, 5]);
    expect(feed.since().map((a) => a.id)).toEqual([4, 5]);
    await feed.close();
  });

  it('delivers an action that commits after one with a higher id, within the wait for the hole', async () => {
    const t = table([1]);
    const { feed, got } = feedOf(t);
    await feed.poll();
    t.commit(3);
    await feed.poll();
    expect(got).toEqual([3]);
    await vi.advanceTimersByTimeAsync(9_000);
    t.commit(2, 4);
    await feed.poll();
    await feed.poll();
    expect(got).toEqual([3, 2, 4]);
    expect(feed.counts.holesGivenUp).toBe(0);
  });

  it('gives a hole up after the wait (a rolled back insert), and goes on past it', async () => {
    const t = table([1]);
    const { feed, got } = feedOf(t);
    await feed.poll();
    t.commit(3);
    await feed.poll();
    await vi.advanceTimersByTimeAsync(10_000);
    await feed.poll();
    expect(feed.counts.holesGivenUp).toBe(1);
    t.commit(4);
    await feed.poll();
    expect(got).toEqual([3, 4]);
    // Ids below the floor stay delivered once, however many polls follow.
    for (let i = 0; i < 3; i += 1) await feed.poll();
    expect(got).toEqual([3, 4]);
  });

  it('reads past a burst larger than one batch over several polls, in order', async () => {
    const t = table([1]);
    const { feed, got } = feedOf(t, { batch: 3 });
    await feed.poll();
    t.commit(...Array.from({ length: 8 }, (_, i) => i + 2));
    for (let i = 0; i < 3; i += 1) await feed.poll();
    expect(got).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('logs a registry it cannot read once per outage, counts each failure, and catches up after', async () => {
    const t = table([1]);
    const { feed, got, logger } = feedOf(t);
    feed.start();
    await vi.advanceTimersByTimeAsync(0);
    t.state.down = true;
    t.commit(2);
    await vi.advanceTimersByTimeAsync(3_000);
    expect(feed.counts.readErrors).toBe(3);
    expect(logger.events().filter((e) => e === 'console.feed_failed')).toHaveLength(1);
    t.state.down = false;
    await vi.advanceTimersByTimeAsync(1_000);
    expect(got).toEqual([2]);
    expect(logger.events()).toContain('console.feed_resumed');
    await feed.close();
  });

  it('keeps delivering to the other listeners when one throws', async () => {
    const t = table([1]);
    const { feed, got, logger } = feedOf(t);
    feed.subscribe(() => {
      throw new Error('boom');
    });
    await feed.poll();
    t.commit(2);
    await feed.poll();
    expect(got).toEqual([2]);
    expect(logger.events()).toContain('console.feed_listener_failed');
  });
});
