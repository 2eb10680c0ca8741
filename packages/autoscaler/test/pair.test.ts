import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type LeaseStore, PgLeaseStore } from '@faultline/coordination';
import { createPgPool, migrate, systemClock } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import { FAKE_BROKER_PAIR, FakeBrokers } from '@faultline/messaging/testing';
import { startPostgres, type TestPostgres } from '@faultline/test-support';
import type pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  AutoscalerNode,
  createAutoscaler,
  type Fence,
  FencedError,
  fencedIaas,
  type MemberRecord,
  PgRegistry,
} from '../src/index.js';
import { clusterConfig, FakeIaas } from '../src/testing/index.js';
import { waitFor } from './helpers.js';

/**
 * A lease store cut off from the database while `frozen`: its calls hang,
 * and fail when it reconnects (`thaw()`), as statements on a lost connection do.
 */
function freezable(store: LeaseStore): LeaseStore & { frozen: boolean; thaw(): void } {
  const hung: (() => void)[] = [];
  const wrapped = {
    frozen: false,
    thaw() {
      wrapped.frozen = false;
      for (const fail of hung.splice(0)) fail();
    },
  } as LeaseStore & { frozen: boolean; thaw(): void };
  for (const method of ['tryAcquire', 'renew', 'release', 'heartbeat', 'members', 'leader'] as const) {
    (wrapped as unknown as Record<string, unknown>)[method] = (...args: unknown[]) =>
      wrapped.frozen
        ? new Promise((_, reject) => hung.push(() => reject(new Error('connection to the database lost'))))
        : (store[method] as (...a: unknown[]) => Promise<unknown>).apply(store, args);
  }
  return wrapped;
}

const member = (memberId: string): MemberRecord => ({
  memberId,
  clusterId: 'php',
  clusterInstanceId: 'php-1',
  networkPartitionId: 'np-1',
  partitionId: 'p-1',
  cartridgeType: 'php',
  state: 'Active',
  instance: null,
  reason: null,
  createdAt: 1,
  activatedAt: 2,
  terminatedAt: null,
});

/*
 * The autoscaler pair (README "The autoscaler pair") on real PostgreSQL: one
 * lease in `sp_leader` under its own group, every registry write fenced by it
 * in the database, and two nodes of which at most one acts.
 */
describe('autoscaler pair', () => {
  let postgres: TestPostgres;
  let pool: pg.Pool;
  const dirs: string[] = [];

  beforeAll(async () => {
    postgres = await startPostgres();
    pool = createPgPool({ connectionString: postgres.connectionString });
    await migrate(pool);
  });
  afterAll(async () => {
    await pool?.end();
    await postgres?.stop();
  });
  beforeEach(async () => {
    await pool.query(
      'DELETE FROM sp_leader; DELETE FROM sp_node; DELETE FROM autoscaler_member; DELETE FROM autoscaler_action; DELETE FROM autoscaler_fence; DELETE FROM autoscaler_cluster',
    );
  });
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  const lease = (group: string, node: string, epoch: number, age = '0 seconds') =>
    pool.query(
      `INSERT INTO sp_leader (group_id, node_id, epoch, heartbeat_at) VALUES ($1, $2, $3, clock_timestamp() - $4::interval)
       ON CONFLICT (group_id) DO UPDATE SET node_id = EXCLUDED.node_id, epoch = EXCLUDED.epoch, heartbeat_at = EXCLUDED.heartbeat_at`,
      [group, node, epoch, age],
    );
  const states = async () =>
    (await pool.query<{ member_id: string; state: string }>('SELECT member_id, state FROM autoscaler_member')).rows;

  it('fences every registry write in the database: a node writes only while it holds the lease', async () => {
    const held: Fence = { isValid: () => true, epoch: 4 };
    const registry = new PgRegistry(pool, {
      fence: { lease: held, groupId: 'autoscaler', nodeId: 'autoscaler-a', leaseMs: 2_000 },
    });
    await lease('autoscaler', 'autoscaler-a', 4);
    await registry.saveMember(member('php-aaaaaa'));
    expect(await states()).toEqual([{ member_id: 'php-aaaaaa', state: 'Active' }]);

    // The peer took the lease (epoch 5): the deposed node believes it still holds it; the database says no.
    await lease('autoscaler', 'autoscaler-b', 5);
    const write = registry.saveMember({ ...member('php-aaaaaa'), state: 'Terminating' });
    await expect(write).rejects.toBeInstanceOf(FencedError);
    await expect(registry.saveMember(member('php-bbbbbb'))).rejects.toMatchObject({ code: 'FL_ERR_FENCED' });
    await expect(registry.saveClusterState('php', { v: 1 })).rejects.toBeInstanceOf(FencedError);
    await expect(
      registry.recordAction({
        at: 1,
        action: 'MemberSpawnAction',
        clusterId: 'php',
        memberId: null,
        reason: 'x',
        epoch: null,
        fault: null,
        replaces: null,
      }),
    ).rejects.toBeInstanceOf(FencedError);
    // Its own lease row, but expired (database time): refused too.
    await lease('autoscaler', 'autoscaler-a', 4, '3 seconds');
    await expect(registry.saveMember(member('php-cccccc'))).rejects.toBeInstanceOf(FencedError);
    // A node whose own lease says it is not valid does not even ask.
    const lost = new PgRegistry(pool, {
      fence: { lease: { isValid: () => false, epoch: undefined }, groupId: 'autoscaler', nodeId: 'x', leaseMs: 2_000 },
    });
    await expect(lost.saveMember(member('php-dddddd'))).rejects.toBeInstanceOf(FencedError);
    expect(await states()).toEqual([{ member_id: 'php-aaaaaa', state: 'Active' }]);
  });

  it('two nodes, one acts; the acting one cut off during a member fault: the other acts within the lease, adopts, replaces the member once', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faultline-pair-'));
    dirs.push(dir);
    const brokers = new FakeBrokers();
    const iaas = new FakeIaas(); // one infrastructure, seen by both nodes
    // A lease of 1 s: a commit or event-loop stall of a loaded machine (a few hundred ms) fences neither node.
    const timings = { heartbeatIntervalMs: 500, heartbeatMaxRetry: 2, fencingMarginMs: 100 };
    const leaseMs = timings.heartbeatIntervalMs * timings.heartbeatMaxRetry;
    const makeNode = (nodeId: string, store: LeaseStore) => {
      const logger = createMemoryLogger();
      const node = new AutoscalerNode({
        nodeId,
        groupId: 'autoscaler',
        store,
        clock: systemClock,
        ...timings,
        healthPort: 0,
        logger,
        createAutoscaler: (fence) =>
          createAutoscaler({
            clusters: [clusterConfig({ min: 2, max: 4 })],
            iaas: fencedIaas(iaas, fence),
            registry: new PgRegistry(pool, { fence: { lease: fence, groupId: 'autoscaler', nodeId, leaseMs } }),
            brokers: FAKE_BROKER_PAIR,
            credentials: { username: 'autoscaler', password: 'x' },
            outboxFile: path.join(dir, `${nodeId}.outbox`),
            connector: brokers.connector,
            pingIntervalMs: 50,
            resubscribeIntervalMs: 200,
            monitorIntervalMs: 200,
            logger,
          }),
      });
      return { node, logger };
    };
    const storeA = freezable(new PgLeaseStore(pool));
    const a = makeNode('autoscaler-a', storeA);
    const b = makeNode('autoscaler-b', new PgLeaseStore(pool));
    // Never two acting at once: sampled every 5 ms throughout.
    let mostActive = 0;
    const sampler = setInterval(() => {
      const active = [a.node, b.node].filter((n) => n.role === 'ACTIVE').length;
      mostActive = Math.max(mostActive, active);
    }, 5);
    try {
      await a.node.start();
      await waitFor(() => a.node.role === 'ACTIVE', 'a acting');
      await b.node.start();
      await waitFor(() => iaas.running.length === 2, 'the two members of min 2');
      const recorded = async () =>
        (await pool.query('SELECT 1 FROM autoscaler_member WHERE instance IS NOT NULL')).rowCount === 2;
      await waitFor(recorded, 'both recorded with their instance');
      expect(b.node.role).toBe('PASSIVE');
      const health = await fetch(`http://127.0.0.1:${b.node.healthPort}/health`);
      expect(await health.json()).toEqual({
        node: 'autoscaler-b',
        role: 'PASSIVE',
        epoch: null,
        terms: 0,
        ready: true,
        reason: 'standing by',
      });
      // A probe routes to the acting node by /active, 200 on one node only.
      const code = async (node: AutoscalerNode, route: string) =>
        (await fetch(`http://127.0.0.1:${node.healthPort}${route}`)).status;
      expect([await code(a.node, '/active'), await code(b.node, '/active')]).toEqual([200, 503]);
      expect([await code(a.node, '/passive'), await code(b.node, '/passive')]).toEqual([503, 200]);
      expect([await code(a.node, '/readiness'), await code(b.node, '/readiness')]).toEqual([200, 200]);

      // A member dies, and at the same instant the acting node loses the database (as a kill -9 would leave it).
      const [victim] = iaas.running as [string];
      iaas.kill(victim);
      iaas.goneOnAdopt.add(victim);
      storeA.frozen = true;
      const cutAt = Date.now();
      await waitFor(() => b.node.role === 'ACTIVE', 'b acting', 10_000);
      const takeoverMs = Date.now() - cutAt;
      await waitFor(() => iaas.running.length === 2 && !iaas.running.includes(victim), 'the victim replaced', 10_000);
      // The lease plus one monitor interval or so, never two leases.
      expect(takeoverMs).toBeLessThan(2 * leaseMs + 1_000);
      expect(a.node.role).toBe('PASSIVE');
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      // Exactly one replacement: two spawns for min 2, one for the victim.
      expect(iaas.callsOf('spawn')).toHaveLength(3);
      expect(await code(b.node, '/active')).toBe(200);
      // The acting node's metrics: its own term's actions (the victim's replacement), its members.
      const metrics = await (await fetch(`http://127.0.0.1:${b.node.healthPort}/metrics`)).text();
      expect(metrics).toContain('faultline_autoscaler_role{role="ACTIVE"} 1\n');
      expect(metrics).toMatch(/^faultline_autoscaler_actions_total\{action="MemberSpawnAction",cluster="php"\} 1$/m);
      const members = [...metrics.matchAll(/^faultline_autoscaler_members\{cluster="php",state="\w+"\} (\d+)$/gm)];
      expect(members).toHaveLength(5); // one series per state
      expect(members.reduce((sum, m) => sum + Number(m[1]), 0)).toBe(2);
      expect(metrics).toContain('faultline_autoscaler_fault_storm_held{cluster="php"} 0\n');
      expect(metrics).toMatch(/^faultline_autoscaler_broker_link\{broker="a",state="up"\} 1$/m);
      expect(b.logger.records.some((r) => r.event === 'autoscaler.node_active')).toBe(true);
      expect(a.logger.records.some((r) => r.event === 'autoscaler.node_passive')).toBe(true);

      // A reaches the database again: it stays passive while B holds the lease.
      storeA.thaw();
      await new Promise((resolve) => setTimeout(resolve, 3 * leaseMs));
      expect([a.node.role, b.node.role]).toEqual(['PASSIVE', 'ACTIVE']);
      // B stops: it releases, A takes over at once and adopts the two members without spawning.
      await b.node.close();
      await waitFor(() => a.node.role === 'ACTIVE', 'a acting again', 5_000);
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      expect(iaas.callsOf('spawn')).toHaveLength(3);
      expect(iaas.running).toHaveLength(2);
      expect(mostActive).toBe(1);
      // A's counters span its two terms: the two spawns of its first are still counted in its second.
      const again = await (await fetch(`http://127.0.0.1:${a.node.healthPort}/metrics`)).text();
      expect(again).toMatch(/^faultline_autoscaler_actions_total\{action="MemberSpawnAction",cluster="php"\} 2$/m);
      expect(again).toContain('faultline_autoscaler_spawned_total{node="autoscaler-a"} 2\n');
      expect(again).toContain('faultline_autoscaler_terms_total 2\n');
    } finally {
      clearInterval(sampler);
      storeA.thaw();
      await a.node.close();
      await b.node.close();
    }
  });
});
