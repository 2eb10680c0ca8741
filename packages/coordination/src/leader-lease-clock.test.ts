import { type Clock, systemClock } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LeaderLease, type LeaseEvent } from './leader-lease.js';
import type { LeaseStore } from './store.js';
import { MemoryLeaseStore, MemoryLeaseTables } from './testing/index.js';

function node(store: LeaseStore, nodeId: string, clock: Clock = systemClock) {
  const events: (LeaseEvent & { at: number })[] = [];
  const logger = createMemoryLogger();
  const lease: LeaderLease = new LeaderLease({
    store,
    groupId: 'sp',
    nodeId,
    clock,
    logger,
    describe: () => ({ role: lease.epoch ? 'ACTIVE' : 'PASSIVE', syncEndpoint: 's', thriftEndpoint: 't' }),
    onChange: (event) => events.push({ ...event, at: Date.now() }),
  });
  return { lease, events, logger };
}

/** Counts the renewals a store has in flight, and the most at once. */
function counting(store: MemoryLeaseStore) {
  const counts = { now: 0, most: 0, started: 0 };
  const renew = store.renew.bind(store);
  store.renew = async (...args: Parameters<MemoryLeaseStore['renew']>) => {
    counts.now += 1;
    counts.started += 1;
    counts.most = Math.max(counts.most, counts.now);
    try {
      return await renew(...args);
    } finally {
      counts.now -= 1;
    }
  };
  return counts;
}

async function closeAll(...leases: LeaderLease[]): Promise<void> {
  const closing = Promise.all(leases.map((lease) => lease.close()));
  await vi.advanceTimersByTimeAsync(5_000);
  await closing;
}

describe('LeaderLease renewals, clocks and takeovers (1 000 ms × 2, margin 300 ms)', () => {
  beforeEach(() => vi.useFakeTimers({ now: 0 }));
  afterEach(() => vi.useRealTimers());

  it('renews every interval / 8 without waiting, at most ⌈1 700 / 125⌉ = 14 in flight', async () => {
    const store = new MemoryLeaseStore(systemClock);
    const renewals = counting(store);
    const a = node(store, 'sp-1');
    a.lease.start();
    await vi.advanceTimersByTimeAsync(2_000); // read for a lease, then acquired: no renewal before
    expect(a.lease.epoch).toBe(1);
    expect(renewals.started).toBe(1);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(renewals.started).toBeGreaterThanOrEqual(79);
    expect(renewals.started).toBeLessThanOrEqual(81);
    expect(renewals.most).toBe(1);
    store.latencyMs = (statement) => (statement === 'renew' ? 1_500 : 0);
    await vi.advanceTimersByTimeAsync(20_000);
    expect(a.lease.epoch).toBe(1);
    expect(renewals.most).toBeGreaterThanOrEqual(12);
    expect(renewals.most).toBeLessThanOrEqual(14);
    store.latencyMs = (statement) => (statement === 'renew' ? 60_000 : 0); // hung: renewals pile up, boundedly
    await vi.advanceTimersByTimeAsync(10_000);
    expect(renewals.most).toBeLessThanOrEqual(14);
    await closeAll(a.lease);
  });

  it('the holder steps down when the database clock steps, and no node takes the lease for a lease', async () => {
    const tables = new MemoryLeaseTables();
    const a = node(new MemoryLeaseStore(systemClock, tables), 'sp-1');
    const b = node(new MemoryLeaseStore(systemClock, tables), 'sp-2');
    a.lease.start();
    await vi.advanceTimersByTimeAsync(500);
    b.lease.start();
    await vi.advanceTimersByTimeAsync(4_500);
    tables.stepDatabaseClock(1_000);
    await vi.advanceTimersByTimeAsync(200);
    expect(a.events.at(-1)).toMatchObject({ type: 'lost', epoch: 1, reason: expect.stringMatching(/database clock/) });
    expect(a.logger.records.find((r) => r.event === 'lease.clock_step')?.fields).toMatchObject({ epoch: 1 });
    await vi.advanceTimersByTimeAsync(1_700); // a lease after the step (5 000 + 2 000 − 200 − 5 000 …)
    expect([a.lease.epoch, b.lease.epoch]).toEqual([undefined, undefined]);
    await vi.advanceTimersByTimeAsync(3_000);
    const leaders = [a, b].filter((n) => n.lease.isValid());
    expect(leaders).toHaveLength(1);
    expect(leaders[0]?.events.find((e) => e.type === 'acquired' && e.epoch === 2)?.at).toBeGreaterThanOrEqual(7_000);
    await closeAll(a.lease, b.lease);
  });

  it('a backward step counts too', async () => {
    const tables = new MemoryLeaseTables();
    const a = node(new MemoryLeaseStore(systemClock, tables), 'sp-1');
    a.lease.start();
    await vi.advanceTimersByTimeAsync(3_000);
    tables.stepDatabaseClock(-800);
    await vi.advanceTimersByTimeAsync(200);
    expect(a.events.at(-1)).toMatchObject({ type: 'lost', reason: expect.stringMatching(/moved -8\d\d ms/) });
    await closeAll(a.lease);
  });

  it('an acquirer does not take a lease only a stepped database clock calls over (the holder cannot see the step)', async () => {
    const tables = new MemoryLeaseTables();
    const storeA = new MemoryLeaseStore(systemClock, tables);
    const a = node(storeA, 'sp-1');
    const b = node(new MemoryLeaseStore(systemClock, tables), 'sp-2');
    a.lease.start();
    await vi.advanceTimersByTimeAsync(300);
    b.lease.start();
    await vi.advanceTimersByTimeAsync(4_710); // sp-1 last renewed at 5 000
    storeA.unreachable = true;
    await vi.advanceTimersByTimeAsync(1_280);
    // Just before sp-2's attempt at 6 300, its first reading after the step: by the database sp-1's
    // lease ended at 5 500, by sp-2's own reckoning it ends at 7 000, and sp-1 acts until 6 700.
    tables.stepDatabaseClock(1_500);
    let both = 0;
    let takenInDatabaseAt: number | undefined;
    for (let t = 0; t < 10_000; t += 5) {
      await vi.advanceTimersByTimeAsync(5);
      if (a.lease.isValid() && b.lease.isValid()) both += 1;
      if (takenInDatabaseAt === undefined && tables.leaders.get('sp')?.epoch !== 1) takenInDatabaseAt = Date.now();
    }
    expect(both).toBe(0);
    expect(a.events.at(-1)).toMatchObject({ type: 'lost', at: 6_700 });
    // Not even taken in the database before sp-1 stopped acting: its own reckoning held sp-2 back.
    expect(takenInDatabaseAt).toBeGreaterThanOrEqual(6_700);
    const taken = b.events.find((e) => e.type === 'acquired');
    expect(taken?.at).toBeGreaterThanOrEqual(7_000);
    expect(b.logger.events()).toContain('lease.clock_step');
    await closeAll(a.lease, b.lease);
  });

  it('a node with no clock history reads for a lease before it takes one a stepped clock calls over', async () => {
    // Hostile review: sp-1 cut off right after a renewal, the database clock steps +1 s, sp-2 starts
    // fresh. With nothing to reckon from, sp-2 took the lease at 6 005 by the stepped clock alone
    // while sp-1 acted until 6 700.
    const tables = new MemoryLeaseTables();
    const storeA = new MemoryLeaseStore(systemClock, tables);
    const a = node(storeA, 'sp-1');
    a.lease.start();
    await vi.advanceTimersByTimeAsync(5_000); // sp-1 last renewed at 5 000
    storeA.unreachable = true;
    tables.stepDatabaseClock(1_000);
    const b = node(new MemoryLeaseStore(systemClock, tables), 'sp-2');
    b.lease.start();
    let both = 0;
    for (let t = 0; t < 10_000; t += 10) {
      await vi.advanceTimersByTimeAsync(10);
      if (a.lease.isValid() && b.lease.isValid()) both += 1;
    }
    expect(both, 'instants (10 ms apart) at which both held a valid lease').toBe(0);
    expect(a.events.at(-1)).toMatchObject({ type: 'lost', at: 6_700 });
    // A lease after its first reading (5 000), and it leads then.
    const taken = b.events.find((e) => e.type === 'acquired');
    expect(taken).toMatchObject({ epoch: 2 });
    expect(taken?.at).toBeGreaterThanOrEqual(7_000);
    expect(taken?.at).toBeLessThanOrEqual(7_010);
    expect(b.lease.isValid()).toBe(true);
    await closeAll(a.lease, b.lease);
  });

  it('a host whose monotonic clock slept through a suspend fences at once: the wall clock ran ahead', async () => {
    let asleepMs = 0;
    const suspendable: Clock = { ...systemClock, now: () => systemClock.now() + asleepMs };
    const a = node(new MemoryLeaseStore(systemClock), 'sp-1', suspendable);
    a.lease.start();
    await vi.advanceTimersByTimeAsync(3_000); // read for a lease, then held for a second
    expect(a.lease.isValid()).toBe(true);
    asleepMs = 10_000; // woke: no timer has run, the monotonic clock did not move
    expect(a.lease.isValid()).toBe(false);
    expect(a.events.at(-1)).toMatchObject({ type: 'lost', reason: expect.stringMatching(/wall clock ran/) });
    await closeAll(a.lease);
  });

  it('names the holder it took the lease from, and how long it had been silent', async () => {
    const tables = new MemoryLeaseTables();
    const storeA = new MemoryLeaseStore(systemClock, tables);
    const a = node(storeA, 'sp-1');
    const b = node(new MemoryLeaseStore(systemClock, tables), 'sp-2');
    a.lease.start();
    await vi.advanceTimersByTimeAsync(300);
    b.lease.start();
    await vi.advanceTimersByTimeAsync(2_700); // sp-1 last renewed at 3 000
    storeA.unreachable = true;
    await vi.advanceTimersByTimeAsync(3_000);
    const taken = b.events.find((e) => e.type === 'acquired');
    expect(taken).toMatchObject({ epoch: 2, previous: { nodeId: 'sp-1', epoch: 1 } });
    const silence = taken?.type === 'acquired' ? taken.previous?.silentForMs : undefined;
    expect(silence).toBeGreaterThanOrEqual(2_000);
    expect(silence).toBeLessThanOrEqual(2_010);
    await closeAll(a.lease, b.lease);
  });

  it('takes over from a dead holder while every statement takes 1.2 s, and keeps the lease', async () => {
    const tables = new MemoryLeaseTables();
    const storeA = new MemoryLeaseStore(systemClock, tables);
    const storeB = new MemoryLeaseStore(systemClock, tables);
    const a = node(storeA, 'sp-1');
    const b = node(storeB, 'sp-2');
    a.lease.start();
    await vi.advanceTimersByTimeAsync(300);
    b.lease.start();
    await vi.advanceTimersByTimeAsync(2_000);
    storeA.latencyMs = 1_200;
    storeB.latencyMs = 1_200;
    await vi.advanceTimersByTimeAsync(5_000);
    expect(a.lease.epoch).toBe(1);
    storeA.unreachable = true; // sp-1 dies
    await vi.advanceTimersByTimeAsync(30_000);
    // Renewals for the epoch it expected went out before its acquire came back: no lapse, no second epoch.
    expect(b.events.map((e) => [e.type, e.epoch])).toEqual([['acquired', 2]]);
    expect(b.lease.isValid()).toBe(true);
    await closeAll(a.lease, b.lease);
  });
});
