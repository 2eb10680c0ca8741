import { systemClock } from '@faultline/core';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MemoryLeaseStore, MemoryLeaseTables } from './index.js';

describe('MemoryLeaseStore', () => {
  beforeEach(() => vi.useFakeTimers({ now: 10_000 }));
  afterEach(() => vi.useRealTimers());

  it('runs a slow statement halfway through its round trip, and fails one past its timeout', async () => {
    const tables = new MemoryLeaseTables();
    const store = new MemoryLeaseStore(systemClock, tables);
    store.latencyMs = (statement) => (statement === 'renew' ? 2_000 : 400);
    const acquired = store.tryAcquire('g', 'a', 5_000);
    await vi.advanceTimersByTimeAsync(200);
    expect(tables.leaders.get('g')).toMatchObject({ nodeId: 'a', epoch: 1, at: 10_200 });
    await vi.advanceTimersByTimeAsync(200);
    expect(await acquired).toEqual({ acquired: true, epoch: 1, dbNowMs: 10_200 });
    const renewal = store.renew('g', 'a', 1, 5_000, { timeoutMs: 1_500 });
    const outcome = renewal.then(
      () => 'renewed',
      (error: Error) => error.message,
    );
    await vi.advanceTimersByTimeAsync(1_500);
    expect(await outcome).toMatch(/statement timeout/);
    // It ran anyway, as a statement the client gave up on may.
    expect(tables.leaders.get('g')?.at).toBe(11_400);
  });

  it('has a database clock of its own that a test can step', async () => {
    const tables = new MemoryLeaseTables();
    const store = new MemoryLeaseStore(systemClock, tables);
    await store.tryAcquire('g', 'a', 2_000);
    tables.stepDatabaseClock(1_500);
    // 600 ms later the lease is over by the database's stepped clock.
    vi.advanceTimersByTime(600);
    expect(await store.tryAcquire('g', 'b', 2_000)).toMatchObject({ acquired: true, epoch: 2, dbNowMs: 12_100 });
  });

  it('takes the lease only when expired by the caller’s reckoning too, and never when only reading', async () => {
    const tables = new MemoryLeaseTables();
    const store = new MemoryLeaseStore(systemClock, tables);
    expect(await store.tryAcquire('g', 'a', 2_000, { readOnly: true })).toEqual({
      acquired: false,
      remainingMs: 0,
      dbNowMs: 10_000,
    });
    await store.tryAcquire('g', 'a', 2_000);
    vi.advanceTimersByTime(2_500);
    expect(await store.tryAcquire('g', 'b', 2_000, { reckonedNowMs: 11_900 })).toMatchObject({
      acquired: false,
      holder: { nodeId: 'a', epoch: 1, expiresAtMs: 12_000 },
    });
    expect(await store.tryAcquire('g', 'b', 2_000, { readOnly: true })).toMatchObject({ acquired: false });
    expect(await store.tryAcquire('g', 'b', 2_000, { reckonedNowMs: 12_000 })).toEqual({
      acquired: true,
      epoch: 2,
      dbNowMs: 12_500,
      previous: { nodeId: 'a', epoch: 1, silentForMs: 2_500 },
    });
  });

  it('tells how long a holder that released was silent by its membership row', async () => {
    const tables = new MemoryLeaseTables();
    const store = new MemoryLeaseStore(systemClock, tables);
    await store.tryAcquire('g', 'a', 2_000);
    await store.heartbeat('g', { nodeId: 'a', role: 'ACTIVE', syncEndpoint: '', thriftEndpoint: '' });
    vi.advanceTimersByTime(700);
    await store.release('g', 'a', 1);
    vi.advanceTimersByTime(300);
    expect(await store.tryAcquire('g', 'b', 2_000)).toMatchObject({
      acquired: true,
      previous: { nodeId: 'a', epoch: 1, silentForMs: 1_000 },
    });
  });
});
