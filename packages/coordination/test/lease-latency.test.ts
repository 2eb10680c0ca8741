import { createPgPool, migrate, systemClock } from '@faultline/core';
import { startPostgres, type TestPostgres } from '@faultline/test-support';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LeaderLease, type LeaseEvent, maxRenewalsInFlight, PgLeaseStore } from '../src/index.js';
import { slowedLeaseStore } from '../src/testing/index.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const DEFAULT_TIMINGS = { heartbeatIntervalMs: 1_000, heartbeatMaxRetry: 2, fencingMarginMs: 300 };

/*
 * Issue "Robust under strain": the lease pair on a real PostgreSQL (default
 * timings, 1 000 ms × 2, margin 300 ms) with every lease statement made slow.
 * FAULTLINE_LEASE_SWEEP=1 also steps the latency up until a new epoch appears
 * and prints the largest latency held (the README's figure).
 */
describe('the lease pair on a real PostgreSQL under statement latency', () => {
  let db: TestPostgres;
  const pools: pg.Pool[] = [];
  beforeAll(async () => {
    db = await startPostgres();
    for (let i = 0; i < 2; i++)
      pools.push(
        createPgPool({ connectionString: db.connectionString, max: maxRenewalsInFlight(DEFAULT_TIMINGS) + 4 }),
      );
    await migrate(pools[0] as pg.Pool);
  });
  afterAll(async () => {
    await Promise.all(pools.map((p) => p.end()));
    await db?.stop();
  });

  async function pair(groupId: string) {
    const events: (LeaseEvent & { nodeId: string; at: number })[] = [];
    const nodes = pools.map((pool, i) => {
      const nodeId = `n${i + 1}`;
      const store = slowedLeaseStore(new PgLeaseStore(pool));
      const lease: LeaderLease = new LeaderLease({
        store,
        groupId,
        nodeId,
        clock: systemClock,
        ...DEFAULT_TIMINGS,
        describe: () => ({ role: lease.epoch ? 'ACTIVE' : 'PASSIVE', syncEndpoint: '', thriftEndpoint: '' }),
        onChange: (event) => events.push({ ...event, nodeId, at: Date.now() }),
      });
      return { lease, store };
    });
    for (const n of nodes) n.lease.start();
    await sleep(2_500);
    const setLatency = (ms: number) => {
      for (const n of nodes) n.store.latencyMs = ms;
    };
    const close = () => Promise.all(nodes.map((n) => n.lease.close()));
    return { nodes, events, setLatency, close };
  }

  // 1.2 s: well past the 700 ms the lease used to take, with room for a loaded machine's timers.
  it('keeps one holder under one epoch while every statement takes 1.2 s', async () => {
    const { events, setLatency, close } = await pair('latency-check');
    expect(events.map((e) => [e.type, e.epoch])).toEqual([['acquired', 1]]);
    setLatency(1_200);
    await sleep(15_000);
    setLatency(0);
    expect(events.map((e) => [e.type, e.epoch, e.type === 'lost' ? e.reason : ''])).toEqual([['acquired', 1, '']]);
    await close();
  }, 60_000);

  it.runIf(process.env.FAULTLINE_LEASE_SWEEP === '1')(
    'sweep: the largest latency held without a new epoch',
    async () => {
      const holdMs = Number(process.env.FAULTLINE_LEASE_SWEEP_HOLD_MS ?? 20_000);
      const levels = [1_000, 1_200, 1_300, 1_400, 1_450, 1_500, 1_525, 1_550, 1_575, 1_600, 1_650, 1_700];
      let held = 0;
      for (const latencyMs of levels) {
        const { events, setLatency, close } = await pair(`sweep-${latencyMs}`);
        setLatency(latencyMs);
        await sleep(holdMs);
        setLatency(0);
        const changes = events.length - 1;
        process.stdout.write(`lease sweep: ${latencyMs} ms for ${holdMs} ms: ${changes} lease changes\n`);
        await close();
        if (changes > 0) break;
        held = latencyMs;
      }
      process.stdout.write(`lease sweep: largest latency held without a new epoch: ${held} ms\n`);
      expect(held).toBeGreaterThanOrEqual(1_400);
    },
    600_000,
  );
});
