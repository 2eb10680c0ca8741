import { type Clock, ConfigError, systemClock } from '@faultline/core';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LeaderLease, type LeaseEvent } from './leader-lease.js';
import { MemoryLeaseStore, MemoryLeaseTables } from './testing/index.js';

function node(store: MemoryLeaseStore, nodeId: string, clock: Clock = systemClock) {
  const events: (LeaseEvent & { at: number })[] = [];
  const lease = new LeaderLease({
    store,
    groupId: 'sp',
    nodeId,
    clock,
    describe: () => ({ role: lease.epoch ? 'ACTIVE' : 'PASSIVE', syncEndpoint: 's', thriftEndpoint: 't' }),
    onChange: (event) => events.push({ ...event, at: Date.now() }),
  });
  return { lease, events };
}

describe('LeaderLease (1 000 ms × 2, margin 300 ms)', () => {
  beforeEach(() => vi.useFakeTimers({ now: 0 }));
  afterEach(() => vi.useRealTimers());

  it('exactly one of two nodes acquires, and keeps the lease while it renews', async () => {
    const store = new MemoryLeaseStore(systemClock);
    const a = node(store, 'sp-1');
    const b = node(store, 'sp-2');
    a.lease.start();
    b.lease.start();
    // Neither takes the lease before it has read the database clock for a lease (db-clock.ts).
    await vi.advanceTimersByTimeAsync(1_999);
    expect([a.lease.epoch, b.lease.epoch]).toEqual([undefined, undefined]);
    await vi.advanceTimersByTimeAsync(1);
    expect(a.lease.epoch).toBe(1);
    expect(b.lease.epoch).toBeUndefined();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(a.lease.epoch).toBe(1);
    expect(b.events).toEqual([]);
    expect((await store.members('sp', 2_000)).map((m) => [m.nodeId, m.role, m.alive])).toEqual([
      ['sp-1', 'ACTIVE', true],
      ['sp-2', 'PASSIVE', true],
    ]);
  });

  it('a restarted holder comes back as passive: it leaves the lease its death left to the live peer', async () => {
    const tables = new MemoryLeaseTables();
    const dead = new MemoryLeaseStore(systemClock, tables);
    const a = node(dead, 'sp-1');
    // The passive's statements take 20 ms: its reckoning of database time lags by that, so it takes an
    // expired lease a little after the restarted node, whose statements are instant, may.
    const slow = new MemoryLeaseStore(systemClock, tables);
    slow.latencyMs = 20;
    const b = node(slow, 'sp-2');
    a.lease.start();
    await vi.advanceTimersByTimeAsync(0);
    b.lease.start();
    await vi.advanceTimersByTimeAsync(5_000); // sp-1 leads from 2 000, last renewed at 5 000
    dead.unreachable = true; // kill -9 of sp-1: it never renews again
    await vi.advanceTimersByTimeAsync(5);
    // Restarted at once: it has read for a lease at 7 005, as its old lease expires (7 000), and races the
    // passive for that lease; it must not win it.
    const again = node(new MemoryLeaseStore(systemClock, tables), 'sp-1');
    again.lease.start();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(b.lease.epoch).toBe(2);
    expect(again.lease.epoch).toBeUndefined();
    expect(again.events).toEqual([]);
  });

  it('a restarted holder with no live peer takes its own lease back', async () => {
    const tables = new MemoryLeaseTables();
    const dead = new MemoryLeaseStore(systemClock, tables);
    const a = node(dead, 'sp-1');
    a.lease.start();
    await vi.advanceTimersByTimeAsync(5_000);
    dead.unreachable = true;
    await vi.advanceTimersByTimeAsync(1_000);
    const again = node(new MemoryLeaseStore(systemClock, tables), 'sp-1');
    again.lease.start();
    await vi.advanceTimersByTimeAsync(5_000);
    expect(again.lease.epoch).toBe(2);
  });

  it('self-fences before the peer can acquire when renewals stop succeeding', async () => {
    const tables = new MemoryLeaseTables();
    const store = new MemoryLeaseStore(systemClock, tables);
    const a = node(store, 'sp-1');
    a.lease.start();
    await vi.advanceTimersByTimeAsync(5_000); // last successful renewal started at t=5000
    store.unreachable = true; // sp-1 is cut off from the database
    const b = node(new MemoryLeaseStore(systemClock, tables), 'sp-2');
    b.lease.start();
    await vi.advanceTimersByTimeAsync(1_699);
    expect(a.lease.epoch).toBe(1);
    await vi.advanceTimersByTimeAsync(1); // t=6700 = 5000 + 2000 − 300
    expect(a.lease.epoch).toBeUndefined();
    expect(a.events.at(-1)).toMatchObject({ type: 'lost', epoch: 1, at: 6_700 });
    expect(a.events.at(-1)?.type === 'lost' && a.events.at(-1)).toMatchObject({
      reason: expect.stringMatching(/self-fenced/),
    });
    await vi.advanceTimersByTimeAsync(2_000);
    const acquired = b.events.find((e) => e.type === 'acquired');
    expect(acquired).toMatchObject({ epoch: 2 });
    // After sp-1 stopped acting (6 700), and as soon as the lease expired (7 000), not at a later tick.
    expect(acquired?.at).toBeGreaterThanOrEqual(7_000);
    expect(acquired?.at).toBeLessThanOrEqual(7_010);
  });

  it('fences synchronously on use, before any overdue timer runs (a process pause)', async () => {
    const store = new MemoryLeaseStore(systemClock);
    let frozenFor = 0;
    const pausable: Clock = { ...systemClock, monotonicNow: () => systemClock.monotonicNow() + frozenFor };
    const a = node(store, 'sp-1', pausable);
    a.lease.start();
    await vi.advanceTimersByTimeAsync(2_000); // read for a lease, then acquired
    expect(a.lease.isValid()).toBe(true);
    frozenFor = 10_000; // woke from SIGSTOP: no timer has run yet
    expect(a.lease.isValid()).toBe(false);
    expect(a.lease.epoch).toBeUndefined();
    expect(a.events.at(-1)).toMatchObject({ type: 'lost', epoch: 1 });
  });

  it('steps down when a renewal is refused (another node took over)', async () => {
    const store = new MemoryLeaseStore(systemClock);
    const a = node(store, 'sp-1');
    a.lease.start();
    await vi.advanceTimersByTimeAsync(2_000); // read for a lease, then acquired
    expect(a.lease.epoch).toBe(1);
    await store.release('sp', 'sp-1', 1); // as if expired
    expect(await store.tryAcquire('sp', 'sp-2', 2_000)).toMatchObject({ acquired: true, epoch: 2 });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(a.events.at(-1)).toMatchObject({ type: 'lost', epoch: 1, reason: expect.stringMatching(/refused/) });
  });

  it('releases on close, so the peer takes over at its next heartbeat', async () => {
    const store = new MemoryLeaseStore(systemClock);
    const a = node(store, 'sp-1');
    const b = node(store, 'sp-2');
    a.lease.start();
    await vi.advanceTimersByTimeAsync(2_000); // read for a lease, then acquired
    b.lease.start();
    await vi.advanceTimersByTimeAsync(2_500); // sp-2 has read for a lease too: it may take over
    expect(a.lease.epoch).toBe(1);
    await a.lease.close();
    await a.lease.close();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(b.lease.epoch).toBe(2);
    expect(a.events.at(-1)).toMatchObject({ type: 'lost', reason: 'shutting down' });
  });

  it('refuses a margin as long as the lease, naming the option', () => {
    const attempt = () =>
      new LeaderLease({
        store: new MemoryLeaseStore(systemClock),
        groupId: 'g',
        nodeId: 'n',
        clock: systemClock,
        fencingMarginMs: 2_000,
        describe: () => ({ role: 'PASSIVE', syncEndpoint: '', thriftEndpoint: '' }),
        onChange: () => {},
      });
    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow(
      expect.objectContaining({
        code: 'FL_ERR_CONFIG_INVALID',
        issues: [expect.objectContaining({ key: 'fencingMarginMs' })],
      }),
    );
  });
});
