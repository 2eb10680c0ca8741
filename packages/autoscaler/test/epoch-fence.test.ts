import { createPgPool, migrate } from '@faultline/core';
import { startPostgres, type TestPostgres } from '@faultline/test-support';
import type pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { PgRegistry } from '../src/index.js';

/*
 * The persisted epoch fence in real PostgreSQL. Issue 12: an agent's
 * InstanceStartedEvent with epoch MAX_SAFE_INTEGER raised it (GREATEST) for
 * good, so every real SP event was dropped as stale, across restarts. Decoding
 * now refuses such an envelope; the registry also never keeps an epoch above
 * the newest one any SP leader has held (the lease in the same database), and
 * a fence poisoned before this fix reads back as that epoch.
 */
describe('PgRegistry epoch fence', () => {
  let postgres: TestPostgres;
  let pool: pg.Pool;
  let registry: PgRegistry;
  const fence = async () => (await pool.query('SELECT newest_epoch FROM autoscaler_fence')).rows[0]?.newest_epoch;

  beforeAll(async () => {
    postgres = await startPostgres();
    pool = createPgPool({ connectionString: postgres.connectionString });
    await migrate(pool);
    registry = new PgRegistry(pool);
  });
  afterAll(async () => {
    await pool?.end();
    await postgres?.stop();
  });
  beforeEach(async () => {
    await pool.query('DELETE FROM autoscaler_fence; DELETE FROM sp_leader');
  });

  const leader = (epoch: number) =>
    pool.query(
      `INSERT INTO sp_leader (group_id, node_id, epoch, heartbeat_at) VALUES ('sp', 'sp-1', $1, clock_timestamp())
       ON CONFLICT (group_id) DO UPDATE SET epoch = EXCLUDED.epoch`,
      [epoch],
    );

  it('only ever raises the fence', async () => {
    expect(await registry.newestEpoch()).toBeUndefined();
    await registry.saveEpoch(5);
    await registry.saveEpoch(3);
    expect(await registry.newestEpoch()).toBe(5);
  });

  it('never keeps an epoch above the newest SP leader epoch in the lease table', async () => {
    await leader(7);
    await registry.saveEpoch(Number.MAX_SAFE_INTEGER);
    expect(await registry.newestEpoch()).toBe(7);
    expect(await fence()).toBe('7');
    // The next leader's epoch raises it as before.
    await leader(8);
    await registry.saveEpoch(8);
    expect(await registry.newestEpoch()).toBe(8);
  });

  it("follows the SP group's lease only: the autoscaler pair's own lease epoch is not an SP epoch", async () => {
    // Both pairs' leases live in sp_leader; max(epoch) over every group made the pair's (50) fence SP epoch 3.
    await leader(3);
    await pool.query(
      `INSERT INTO sp_leader (group_id, node_id, epoch, heartbeat_at) VALUES ('autoscaler', 'autoscaler-a', 50, clock_timestamp())`,
    );
    expect(await registry.leaderEpoch()).toBe(3);
    await registry.saveEpoch(50);
    expect(await registry.newestEpoch()).toBe(3);
  });

  it('follows the lease down after a database restore: the stored fence reads as the lower epoch', async () => {
    await leader(9);
    await registry.saveEpoch(9);
    await leader(2); // restored from a backup taken before the last acquires
    expect(await registry.newestEpoch()).toBe(2);
    await registry.saveEpoch(2);
    expect(await fence()).toBe('2');
  });

  it('reads a fence poisoned before the fix as the newest leader epoch, and the next write repairs it', async () => {
    await pool.query(`INSERT INTO autoscaler_fence (id, newest_epoch) VALUES (true, ${Number.MAX_SAFE_INTEGER})`);
    await leader(4);
    expect(await registry.newestEpoch()).toBe(4);
    await registry.saveEpoch(4);
    expect(await fence()).toBe('4');
  });
});
