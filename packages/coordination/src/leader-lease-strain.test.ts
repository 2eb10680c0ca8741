import { type Clock, sleep, systemClock } from '@faultline/core';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LeaderLease, type LeaseEvent } from './leader-lease.js';
import type { LeaseStore } from './store.js';
import { MemoryLeaseStore, MemoryLeaseTables } from './testing/index.js';

/*
 * Issue "Robust under strain", items 1 and 2, on fake time. The latency and
 * the database clock are injected from here (a store wrapper, a shifted
 * clock as the store's "database time"), so these tests run unchanged
 * against any LeaseStore.
 */

/** Every statement of `store` takes `latency()` ms: it runs halfway, the caller hears of it at the end. */
function slowed(store: LeaseStore, latency: () => number): LeaseStore {
  const wrapped = {} as Record<string, unknown>;
  for (const method of ['tryAcquire', 'renew', 'release', 'heartbeat', 'members', 'leader'] as const) {
    wrapped[method] = async (...args: unknown[]) => {
      const ms = latency();
      await sleep(systemClock, ms / 2);
      const result = await (store[method] as (...a: unknown[]) => Promise<unknown>).apply(store, args);
      await sleep(systemClock, ms - ms / 2);
      return result;
    };
  }
  return wrapped as unknown as LeaseStore;
}

/** A deterministic source of numbers in [0, 1). */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
    return state / 2 ** 32;
  };
}

/** Closes every lease, running the (fake) time their releases take. */
async function closeAll(...leases: LeaderLease[]): Promise<void> {
  const closing = Promise.all(leases.map((lease) => lease.close()));
  await vi.advanceTimersByTimeAsync(5_000);
  await closing;
}

function node(store: LeaseStore, nodeId: string) {
  const events: (LeaseEvent & { at: number })[] = [];
  const lease: LeaderLease = new LeaderLease({
    store,
    groupId: 'sp',
    nodeId,
    clock: systemClock,
    describe: () => ({ role: lease.epoch ? 'ACTIVE' : 'PASSIVE', syncEndpoint: 's', thriftEndpoint: 't' }),
    onChange: (event) => events.push({ ...event, at: Date.now() }),
  });
  return { lease, events };
}

describe('LeaderLease under a slow database (1 000 ms × 2, margin 300 ms)', () => {
  beforeEach(() => vi.useFakeTimers({ now: 0 }));
  afterEach(() => vi.useRealTimers());

  it('keeps one leader under one epoch for 60 s while every statement takes 0.8–1.5 s', async () => {
    const tables = new MemoryLeaseTables();
    const random = seeded(7);
    let slow = false;
    const latency = () => (slow ? 800 + random() * 700 : 2);
    const a = node(slowed(new MemoryLeaseStore(systemClock, tables), latency), 'sp-1');
    const b = node(slowed(new MemoryLeaseStore(systemClock, tables), latency), 'sp-2');
    a.lease.start();
    await vi.advanceTimersByTimeAsync(100);
    b.lease.start();
    await vi.advanceTimersByTimeAsync(3_900); // read for a lease, acquired at 2 000, held for 2 s
    expect(a.lease.epoch).toBe(1);
    slow = true;
    for (let t = 0; t < 60_000; t += 50) {
      await vi.advanceTimersByTimeAsync(50);
      expect(a.lease.isValid(), `sp-1 valid at +${t + 50} ms of latency`).toBe(true);
      expect(b.lease.isValid()).toBe(false);
    }
    expect(a.events.map((e) => e.type)).toEqual(['acquired']);
    expect(b.events).toEqual([]);
    expect(tables.leaders.get('sp')).toMatchObject({ nodeId: 'sp-1', epoch: 1 });
    await closeAll(a.lease, b.lease);
  }, 60_000);

  it('settles on one leader under one epoch when the database is slow from the start', async () => {
    const tables = new MemoryLeaseTables();
    const random = seeded(11);
    const latency = () => 800 + random() * 700;
    const a = node(slowed(new MemoryLeaseStore(systemClock, tables), latency), 'sp-1');
    const b = node(slowed(new MemoryLeaseStore(systemClock, tables), latency), 'sp-2');
    a.lease.start();
    b.lease.start();
    await vi.advanceTimersByTimeAsync(15_000);
    const leader = [a, b].find((n) => n.lease.isValid());
    expect(leader).toBeDefined();
    const epoch = leader?.lease.epoch;
    const eventsBefore = a.events.length + b.events.length;
    for (let t = 0; t < 60_000; t += 50) {
      await vi.advanceTimersByTimeAsync(50);
      expect(leader?.lease.epoch, `epoch at +${t + 50} ms`).toBe(epoch);
    }
    expect(a.events.length + b.events.length).toBe(eventsBefore);
    expect(tables.leaders.get('sp')?.epoch).toBe(epoch);
    await closeAll(a.lease, b.lease);
  }, 60_000);
});

describe('LeaderLease when the database clock steps forward 1.5 s', () => {
  beforeEach(() => vi.useFakeTimers({ now: 0 }));
  afterEach(() => vi.useRealTimers());

  // The database host's clock: the test's wall clock plus a step the test makes.
  const databaseClock = () => {
    const state = { stepMs: 0 };
    const clock: Clock = { ...systemClock, now: () => systemClock.now() + state.stepMs };
    return { state, clock };
  };

  // Where the passive starts in the holder's second, when the step comes, and how slow the database is.
  const cases = [100, 300, 500, 700, 900].flatMap((passiveAt) =>
    [0, 250, 500, 750].flatMap((stepAfter) => [
      { passiveAt, stepAfter, latencyMs: 0 },
      { passiveAt, stepAfter, latencyMs: 200 },
    ]),
  );

  it.each(cases)(
    'never two holders valid at once (passive at +$passiveAt ms, step $stepAfter ms into a second, latency up to $latencyMs ms)',
    async ({ passiveAt, stepAfter, latencyMs }) => {
      const db = databaseClock();
      const tables = new MemoryLeaseTables();
      const random = seeded(passiveAt * 31 + stepAfter + latencyMs);
      const store = () => {
        const memory = new MemoryLeaseStore(db.clock, tables);
        return latencyMs === 0 ? memory : slowed(memory, () => random() * latencyMs);
      };
      const a = node(store(), 'sp-1');
      const b = node(store(), 'sp-2');
      a.lease.start();
      await vi.advanceTimersByTimeAsync(passiveAt);
      b.lease.start();
      await vi.advanceTimersByTimeAsync(5_000 - passiveAt + stepAfter);
      expect(a.lease.isValid()).toBe(true);
      db.state.stepMs = 1_500;
      let both = 0;
      for (let t = 0; t < 15_000; t += 10) {
        await vi.advanceTimersByTimeAsync(10);
        if (a.lease.isValid() && b.lease.isValid()) both += 1;
      }
      expect(both, 'instants (10 ms apart) at which both held a valid lease').toBe(0);
      // And the pair leads again once the clock is consistent.
      expect(a.lease.isValid() || b.lease.isValid()).toBe(true);
      await closeAll(a.lease, b.lease);
    },
    30_000,
  );
});
