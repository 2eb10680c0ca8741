import { createPgPool, migrate } from '@faultline/core';
import { startPostgres, type TestPostgres } from '@faultline/test-support';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgLeaseStore } from '../src/index.js';

describe('PgLeaseStore on a real PostgreSQL', () => {
  let db: TestPostgres;
  let pools: pg.Pool[];
  let store: PgLeaseStore;
  beforeAll(async () => {
    db = await startPostgres();
    pools = Array.from({ length: 4 }, () => createPgPool({ connectionString: db.connectionString }));
    await migrate(pools[0] as pg.Pool);
    store = new PgLeaseStore(pools[0] as pg.Pool);
  });
  afterAll(async () => {
    await Promise.all(pools.map((p) => p.end()));
    await db.stop();
  });

  it('lets exactly one of many concurrent acquirers win, at epoch 1', async () => {
    const stores = pools.map((p) => new PgLeaseStore(p));
    const results = await Promise.all(
      Array.from({ length: 16 }, (_, i) =>
        (stores[i % stores.length] as PgLeaseStore).tryAcquire('g1', `n${i}`, 2_000),
      ),
    );
    expect(results.filter((r) => r.acquired)).toEqual([{ acquired: true, epoch: 1 }]);
    for (const r of results.filter((x) => !x.acquired)) {
      expect(r.acquired === false && r.remainingMs).toBeGreaterThan(1_500);
    }
  });

  it('renews only with the right node and epoch, before expiry (database time)', async () => {
    expect(await store.tryAcquire('g2', 'a', 300)).toEqual({ acquired: true, epoch: 1 });
    expect(await store.renew('g2', 'a', 1, 300)).toBe(true);
    expect(await store.renew('g2', 'a', 2, 300)).toBe(false);
    expect(await store.renew('g2', 'b', 1, 300)).toBe(false);
    expect(await store.tryAcquire('g2', 'b', 300)).toMatchObject({ acquired: false });
    await new Promise((resolve) => setTimeout(resolve, 350));
    expect(await store.renew('g2', 'a', 1, 300)).toBe(false); // expired: no resurrection
    expect(await store.tryAcquire('g2', 'b', 300)).toEqual({ acquired: true, epoch: 2 });
    expect(await store.leader('g2', 300)).toEqual({ nodeId: 'b', epoch: 2, valid: true });
  });

  it('release lets the peer acquire at once', async () => {
    expect(await store.tryAcquire('g3', 'a', 60_000)).toEqual({ acquired: true, epoch: 1 });
    expect(await store.tryAcquire('g3', 'b', 60_000)).toMatchObject({
      acquired: false,
      remainingMs: expect.any(Number),
    });
    await store.release('g3', 'a', 1);
    expect(await store.tryAcquire('g3', 'b', 60_000)).toEqual({ acquired: true, epoch: 2 });
  });

  it('tracks membership with liveness by database time', async () => {
    await store.heartbeat('g4', {
      nodeId: 'a',
      role: 'ACTIVE',
      syncEndpoint: '127.0.0.1:1',
      thriftEndpoint: '127.0.0.1:2',
    });
    await store.heartbeat('g4', {
      nodeId: 'b',
      role: 'PASSIVE',
      syncEndpoint: '127.0.0.1:3',
      thriftEndpoint: '127.0.0.1:4',
    });
    await new Promise((resolve) => setTimeout(resolve, 250));
    await store.heartbeat('g4', {
      nodeId: 'b',
      role: 'PASSIVE',
      syncEndpoint: '127.0.0.1:3',
      thriftEndpoint: '127.0.0.1:4',
    });
    const members = await store.members('g4', 200);
    expect(members.map((m) => [m.nodeId, m.role, m.alive])).toEqual([
      ['a', 'ACTIVE', false],
      ['b', 'PASSIVE', true],
    ]);
    expect(members[0]?.silentForMs).toBeGreaterThanOrEqual(200);
  });
});
