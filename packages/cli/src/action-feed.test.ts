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
  replaces: null,
});

/**
 * An action table whose rows become visible when they commit, which need not
 * be in id order (two writers, a slow transaction); reads fail while `down`.
 */
function table(committed: number[] = []) {
  const rows = new Set(committed);
  const state = {
    down: false,
    restore: (...ids: number[]) => {
      rows.clear();
      for (const id of ids) rows.add(id);
    },
  };
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
  beforeEach(() => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date', 'performance'] }));
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
    const resets: number[] = [];
    feed.subscribe((event) => {
      if (event.type === 'actions') got.push(...event.actions.map((a) => a.id));
      else resets.push(got.length);
    });
    return { feed, got, logger, resets };
  };

  it('starts from the newest actions as history, then hands each new action to its listeners once', async () => {
    const t = table([1, 2, 3]);
    const { feed, got } = feedOf(t, { backlog: 2 });
    let ready = false;
    void feed.ready().then(() => {
      ready = true;
    });
    feed.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(ready).toBe(true);
    expect(got).toEqual([2, 3]);
    expect(feed.since().map((a) => [a.id, a.seq])).toEqual([
      [2, 1],
      [3, 2],
    ]);
    t.commit(4, 5);
    await vi.advanceTimersByTimeAsync(1_000);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(got).toEqual([2, 3, 4, 5]);
    expect(feed.since(2).map((a) => a.id)).toEqual([4, 5]);
    expect(feed.since().map((a) => a.id)).toEqual([4, 5]);
    await feed.close();
  });

  it('numbers deliveries, so a page resuming after the last it saw also gets a late commit under a lower id', async () => {
    const t = table([1]);
    const { feed } = feedOf(t);
    await feed.poll();
    t.commit(3);
    await feed.poll();
    const seen = feed.since().at(-1)?.seq as number; // the page saw 3, then went away
    t.commit(2);
    await feed.poll();
    expect(feed.since(seen).map((a) => a.id)).toEqual([2]);
  });

  it('starts over when the table starts again below what it read (a database restored), and says so', async () => {
    const t = table([1, 2, 3, 4, 5]);
    const { feed, got, resets, logger } = feedOf(t);
    await feed.poll();
    t.state.restore(1, 2);
    for (let i = 0; i < 10; i += 1) await feed.poll();
    expect(resets).toHaveLength(1);
    expect(logger.events()).toContain('console.feed_reset');
    expect(feed.since()).toEqual([]);
    await feed.poll();
    t.commit(3);
    await feed.poll();
    // The history of the restored table, then what it records.
    expect(got.slice(resets[0])).toEqual([1, 2, 3]);
  });

  it('delivers an action that commits after one with a higher id, within the wait for the hole', async () => {
    const t = table([1]);
    const { feed, got } = feedOf(t);
    await feed.poll();
    got.length = 0; // the history
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
    got.length = 0; // the history
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

  it('reads past a burst larger than one batch over several polls, in order, also behind a hole', async () => {
    const t = table([1]);
    const { feed, got } = feedOf(t, { batch: 3 });
    await feed.poll();
    got.length = 0;
    t.commit(...Array.from({ length: 8 }, (_, i) => i + 2));
    for (let i = 0; i < 3; i += 1) await feed.poll();
    expect(got).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
    // A hole at 10, then a burst of 7 behind it: delivered without waiting for the hole.
    got.length = 0;
    t.commit(11, 12, 13, 14, 15, 16, 17);
    for (let i = 0; i < 4; i += 1) await feed.poll();
    expect(got).toEqual([11, 12, 13, 14, 15, 16, 17]);
  });

  it('logs a registry it cannot read once per outage, counts each failure, and catches up after', async () => {
    const t = table([1]);
    const { feed, got, logger } = feedOf(t);
    feed.start();
    await vi.advanceTimersByTimeAsync(0);
    got.length = 0; // the history
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
    got.length = 0; // the history
    t.commit(2);
    await feed.poll();
    expect(got).toEqual([2]);
    expect(logger.events()).toContain('console.feed_listener_failed');
  });
});
