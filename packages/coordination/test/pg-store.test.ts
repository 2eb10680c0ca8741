import { createPgPool, migrate } from '@faultline/core';
import { startPostgres, type TestPostgres } from '@faultline/test-support';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLeasePool, maxRenewalsInFlight, PgLeaseStore } from '../src/index.js';

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
    expect(results.filter((r) => r.acquired)).toEqual([{ acquired: true, epoch: 1, dbNowMs: expect.any(Number) }]);
    for (const r of results.filter((x) => !x.acquired)) {
      expect(r.acquired === false && r.remainingMs).toBeGreaterThan(1_500);
    }
  });

  it('renews only with the right node and epoch, before expiry (database time)', async () => {
    expect(await store.tryAcquire('g2', 'a', 300)).toMatchObject({ acquired: true, epoch: 1 });
    expect(await store.renew('g2', 'a', 1, 300)).toMatchObject({ renewed: true });
    expect(await store.renew('g2', 'a', 2, 300)).toMatchObject({ renewed: false });
    expect(await store.renew('g2', 'b', 1, 300)).toMatchObject({ renewed: false });
    expect(await store.tryAcquire('g2', 'b', 300)).toMatchObject({ acquired: false });
    await new Promise((resolve) => setTimeout(resolve, 350));
    expect(await store.renew('g2', 'a', 1, 300)).toMatchObject({ renewed: false }); // expired: no resurrection
    expect(await store.tryAcquire('g2', 'b', 300)).toMatchObject({
      acquired: true,
      epoch: 2,
      previous: { nodeId: 'a', epoch: 1, silentForMs: expect.any(Number) },
    });
    expect(await store.leader('g2', 300)).toEqual({ nodeId: 'b', epoch: 2, valid: true });
  });

  it('a restarted node yields the lease it died holding to a live peer, and takes it back with none', async () => {
    const node = (nodeId: string) => ({ nodeId, role: 'PASSIVE' as const, syncEndpoint: 's', thriftEndpoint: 't' });
    expect(await store.tryAcquire('g10', 'a', 300)).toMatchObject({ acquired: true, epoch: 1 });
    await new Promise((resolve) => setTimeout(resolve, 350)); // a died: its lease expired
    await store.heartbeat('g10', node('b')); // b, the passive, is alive
    expect(await store.tryAcquire('g10', 'a', 300, { yieldOwnToPeer: true })).toMatchObject({ acquired: false });
    expect(await store.tryAcquire('g10', 'b', 300, { yieldOwnToPeer: true })).toMatchObject({
      acquired: true,
      epoch: 2,
    });
    await new Promise((resolve) => setTimeout(resolve, 350)); // b died too, and heartbeats no more
    expect(await store.tryAcquire('g10', 'b', 300, { yieldOwnToPeer: true })).toMatchObject({
      acquired: true,
      epoch: 3,
    });
  });

  it('release lets the peer acquire at once', async () => {
    expect(await store.tryAcquire('g3', 'a', 60_000)).toMatchObject({ acquired: true, epoch: 1 });
    expect(await store.tryAcquire('g3', 'b', 60_000)).toMatchObject({
      acquired: false,
      remainingMs: expect.any(Number),
    });
    await store.release('g3', 'a', 1);
    expect(await store.tryAcquire('g3', 'b', 60_000)).toMatchObject({ acquired: true, epoch: 2 });
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
  it('returns the database clock with every renew and acquire', async () => {
    const before = Date.now();
    const acquired = await store.tryAcquire('g5', 'a', 2_000);
    const renewed = await store.renew('g5', 'a', 1, 2_000);
    const after = Date.now();
    // The same host's clock: within the round trips (and a little rounding).
    for (const { dbNowMs } of [acquired, renewed]) {
      expect(dbNowMs).toBeGreaterThanOrEqual(before - 5);
      expect(dbNowMs).toBeLessThanOrEqual(after + 5);
    }
    expect(renewed.dbNowMs).toBeGreaterThanOrEqual(acquired.dbNowMs);
  });

  it('stays atomic under many renewals of the holder in flight while the peer keeps trying', async () => {
    const stores = pools.map((p) => new PgLeaseStore(p));
    const at = (i: number) => stores[i % stores.length] as PgLeaseStore;
    expect(await store.tryAcquire('g6', 'a', 2_000)).toMatchObject({ acquired: true, epoch: 1 });
    const round = await Promise.all([
      ...Array.from({ length: 24 }, (_, i) => at(i).renew('g6', 'a', 1, 2_000)),
      ...Array.from({ length: 8 }, (_, i) => at(i).tryAcquire('g6', 'b', 2_000)),
    ]);
    // Renewals never queue on the row lock: each one renewed, or found it busy (another renewal held it).
    expect(round.slice(0, 24).every((r) => 'renewed' in r && (r.renewed || r.busy === true))).toBe(true);
    expect(round.slice(0, 24).some((r) => 'renewed' in r && r.renewed)).toBe(true);
    expect(round.slice(24).every((r) => 'acquired' in r && !r.acquired)).toBe(true);
    await store.release('g6', 'a', 1);
    // The old term's late renewals race the peer's acquires: one acquire wins, no renewal resurrects epoch 1.
    const race = await Promise.all([
      ...Array.from({ length: 24 }, (_, i) => at(i).renew('g6', 'a', 1, 2_000)),
      ...Array.from({ length: 8 }, (_, i) => at(i).tryAcquire('g6', 'b', 2_000)),
    ]);
    expect(race.slice(0, 24).some((r) => 'renewed' in r && r.renewed)).toBe(false);
    expect(race.slice(24).filter((r) => 'acquired' in r && r.acquired)).toEqual([
      expect.objectContaining({
        acquired: true,
        epoch: 2,
        previous: expect.objectContaining({ nodeId: 'a', epoch: 1 }),
      }),
    ]);
    expect(await store.leader('g6', 2_000)).toEqual({ nodeId: 'b', epoch: 2, valid: true });
  });

  it('takes an expired lease only if it expired by the caller’s reckoning too; a read never takes one', async () => {
    expect(await store.tryAcquire('g7', 'a', 300, { readOnly: true })).toMatchObject({
      acquired: false,
      remainingMs: 0,
    });
    expect(await store.leader('g7', 300)).toBeUndefined();
    const first = await store.tryAcquire('g7', 'a', 300);
    expect(first).toMatchObject({ acquired: true, epoch: 1 });
    await new Promise((resolve) => setTimeout(resolve, 400));
    // Expired by the database's clock, not by a reckoning that says it is still the moment of the acquire.
    const early = await store.tryAcquire('g7', 'b', 300, { reckonedNowMs: first.dbNowMs });
    expect(early).toMatchObject({
      acquired: false,
      holder: { nodeId: 'a', epoch: 1, expiresAtMs: expect.any(Number) },
    });
    const expiresAtMs = early.acquired ? 0 : (early.holder?.expiresAtMs ?? 0);
    expect(expiresAtMs).toBeCloseTo(first.dbNowMs + 300, -1);
    expect(await store.tryAcquire('g7', 'b', 300, { readOnly: true })).toMatchObject({ acquired: false });
    expect(await store.tryAcquire('g7', 'b', 300, { reckonedNowMs: expiresAtMs })).toMatchObject({
      acquired: true,
      epoch: 2,
    });
  });

  it('a released holder’s silence comes from its membership row', async () => {
    await store.tryAcquire('g8', 'a', 60_000);
    await store.heartbeat('g8', { nodeId: 'a', role: 'ACTIVE', syncEndpoint: '', thriftEndpoint: '' });
    await new Promise((resolve) => setTimeout(resolve, 200));
    await store.release('g8', 'a', 1);
    const taken = await store.tryAcquire('g8', 'b', 60_000);
    expect(taken).toMatchObject({ acquired: true, epoch: 2, previous: { nodeId: 'a', epoch: 1 } });
    const silence = taken.acquired ? taken.previous?.silentForMs : undefined;
    expect(silence).toBeGreaterThanOrEqual(200);
    expect(silence).toBeLessThan(2_000);
  });

  it('a renewal never queues on the row lock: busy at once, neither renewed nor refused; an acquire behind it gives up at its timeout', async () => {
    await store.tryAcquire('g9', 'a', 60_000);
    const blocker = await (pools[3] as pg.Pool).connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query(`SELECT 1 FROM sp_leader WHERE group_id = 'g9' FOR UPDATE`);
      const started = Date.now();
      expect(await store.renew('g9', 'a', 1, 60_000, { timeoutMs: 300 })).toMatchObject({ renewed: false, busy: true });
      expect(Date.now() - started).toBeLessThan(250);
      // Another epoch is refused, not busy, locked or not.
      expect(await store.renew('g9', 'a', 7, 60_000)).toMatchObject({ renewed: false });
      expect((await store.renew('g9', 'a', 7, 60_000)).busy).toBeUndefined();
      await expect(store.tryAcquire('g9', 'b', 60_000, { timeoutMs: 300 })).rejects.toThrow(/timeout/i);
      expect(Date.now() - started).toBeLessThan(2_000);
    } finally {
      await blocker.query('ROLLBACK');
      blocker.release();
    }
    await new Promise((resolve) => setTimeout(resolve, 200)); // the abandoned acquire ends on the server
    expect(await store.renew('g9', 'a', 1, 60_000)).toMatchObject({ renewed: true });
  });

  it('the lease pool stops an abandoned statement on the server: it does not commit later', async () => {
    const pool = createLeasePool({
      connectionString: db.connectionString,
      heartbeatIntervalMs: 200,
      heartbeatMaxRetry: 2,
      fencingMarginMs: 100,
      extra: 1,
    });
    try {
      await pool.warm();
      expect(pool.totalCount).toBe(
        maxRenewalsInFlight({ heartbeatIntervalMs: 200, heartbeatMaxRetry: 2, fencingMarginMs: 100 }) + 1,
      );
      // statement_timeout = lease − margin = 300 ms, on the server.
      await expect(pool.query('SELECT pg_sleep(2)')).rejects.toMatchObject({ code: '57014' });
    } finally {
      await pool.end();
    }
  });
});
