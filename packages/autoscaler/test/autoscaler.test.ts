import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { agentSettingsFrom, createLocalIaas, type LocalIaas, type MemberInstance } from '@faultline/cloud-controller';
import { createPgPool, migrate } from '@faultline/core';
import { createMemoryLogger, type LogRecord } from '@faultline/core/testing';
import type { Publisher, Subscriber } from '@faultline/messaging';
import { createEnvelope, type Envelope } from '@faultline/protocol';
import {
  startBrokerPair,
  startPostgres,
  type TestBroker,
  type TestPostgres,
  testRuntimeDir,
  testSecret,
} from '@faultline/test-support';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Autoscaler, autoscalerOptionsFrom, createAutoscaler, PgRegistry } from '../src/index.js';
import {
  assertBuilt,
  expectGroupsGone,
  groupOf,
  memberFault,
  pause,
  pgidOf,
  registryRows,
  startFakeSp,
  startObserver,
  testConfig,
  waitFor,
} from './helpers.js';

/*
 * Issue 7 acceptance, in-process: the autoscaler with REAL PostgreSQL, a REAL
 * aedes broker pair and the REAL local driver (members are processes of the
 * built workload and cartridge agent). The SP is not needed: the test
 * publishes the MemberFaults itself, with the `sp` role and an epoch.
 */
describe('autoscaler with real members, brokers and PostgreSQL', () => {
  let postgres: TestPostgres;
  let brokers: [TestBroker, TestBroker];
  let pool: pg.Pool;
  let iaas: LocalIaas;
  let autoscaler: Autoscaler;
  let sp: Publisher;
  let observer: Subscriber;
  const observed: Envelope[] = [];
  const logger = createMemoryLogger();
  const pgids = new Set<number>();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'faultline-autoscaler-it-'));
  // As root, members run as the member user, who must pass through every folder above their own.
  chmodSync(dir, 0o755);

  const decisions = (): LogRecord[] => logger.records.filter((r) => r.event === 'autoscaler.action');
  const decisionsOf = (memberId: string) =>
    decisions()
      .filter((r) => r.fields.memberId === memberId)
      .map((r) => r.fields.action);
  const activeMembers = async (): Promise<MemberInstance[]> => {
    const status = autoscaler.status().clusters.find((c) => c.clusterId === 'php');
    const active = new Set(status?.members.filter((m) => m.state === 'Active').map((m) => m.memberId));
    return (await iaas.list()).filter((m) => active.has(m.memberId));
  };
  const threeActive = () => waitFor(async () => (await activeMembers()).length === 3, 'three active members');

  beforeAll(async () => {
    assertBuilt();
    [postgres, brokers] = await Promise.all([startPostgres(), startBrokerPair('aedes')]);
    pool = createPgPool({ connectionString: postgres.connectionString });
    await migrate(pool);
    const config = await testConfig({ dir, databaseUrl: postgres.connectionString, brokers, cluster: {} });
    iaas = createLocalIaas({
      runDir: path.join(dir, 'run'),
      runtimeDir: testRuntimeDir(),
      logsDir: config.logging.dir,
      spawnTimeoutMs: 20_000,
      agent: agentSettingsFrom(config),
      memberKey: testSecret(config.security.memberKeyFile),
    });
    autoscaler = createAutoscaler(autoscalerOptionsFrom(config, { iaas, registry: new PgRegistry(pool), logger }));
    observer = startObserver(brokers, observed);
    observer.start();
    sp = startFakeSp(brokers, path.join(dir, 'sp-test.outbox'));
    await sp.start();
  });

  afterAll(async () => {
    await autoscaler?.close();
    if (iaas) {
      for (const member of await iaas.list()) {
        pgids.add(pgidOf(member));
        await iaas.terminate(member.memberId, { graceMs: 2_000 });
      }
      await iaas.close();
    }
    expectGroupsGone(pgids);
    await Promise.all([sp?.close(), observer?.close()]);
    await pool?.end();
    await Promise.all([...(brokers ?? []).map((b) => b.stop()), postgres?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('a min=3 cluster starts 3 real members, each Active and in the registry', async () => {
    await autoscaler.start();
    await threeActive();
    const members = await activeMembers();
    for (const member of members) {
      const pgid = pgidOf(member);
      pgids.add(pgid);
      expect(groupOf(pgid), `${member.memberId}: workload and agent`).toHaveLength(2);
    }
    // The registry is written behind the decisions (RegistryWriter): wait for the copy.
    await waitFor(
      async () => (await registryRows(pool)).filter((r) => r.state === 'Active').length === 3,
      'three Active rows in the registry',
    );
    const rows = await registryRows(pool);
    expect(rows.map((r) => [r.member_id, r.state]).sort()).toEqual(members.map((m) => [m.memberId, 'Active']).sort());
    expect(rows[0]?.instance).toMatchObject({ driver: 'local', handle: { pgid: expect.any(Number) } });
    expect(decisions().map((r) => r.fields.action)).toEqual([
      'MemberSpawnAction',
      'MemberSpawnAction',
      'MemberSpawnAction',
    ]);
    await waitFor(
      () => observed.filter((e) => e.type === 'MemberCreatedEvent').length === 3,
      'three MemberCreatedEvents on topology/',
    );
    expect(observed.filter((e) => e.type === 'MemberSpawnAction')).toHaveLength(3);
  });

  it('a MemberFault for a running member: terminate, remove, spawn — in that order in the log', async () => {
    await threeActive();
    const [victim] = await activeMembers();
    if (!victim) throw new Error('no member');
    const pgid = pgidOf(victim);
    const before = decisions().length;
    await sp.publish(memberFault(victim, 1));
    await waitFor(() => decisions().length >= before + 3, 'three decisions');
    const [terminate, removed, spawn] = decisions().slice(before);
    expect([terminate?.fields.action, removed?.fields.action, spawn?.fields.action]).toEqual([
      'MemberTerminateAction',
      'MemberRemoved',
      'MemberSpawnAction',
    ]);
    expect(terminate?.fields).toEqual({
      event: 'autoscaler.action',
      action: 'MemberTerminateAction',
      memberId: victim.memberId,
      clusterId: 'php',
      reason: 'MemberFault (timeout, silent 6000 ms); instance still running',
      epoch: 1,
    });
    expect(removed?.fields).toMatchObject({
      memberId: victim.memberId,
      reason: expect.stringMatching(/terminated in \d+ ms$/),
    });
    expect(spawn?.fields).toMatchObject({ reason: 'minimum rule: 2 < min 3', epoch: 1 });
    expectGroupsGone([pgid]);
    await waitFor(
      async () => (await registryRows(pool, `member_id = '${victim.memberId}'`))[0]?.state === 'Terminated',
      'the victim Terminated in the registry',
    );
    await waitFor(
      () =>
        observed.some((e) => e.type === 'MemberTerminateAction' && e.data.memberId === victim.memberId) &&
        observed.some((e) => e.type === 'MemberTerminatedEvent' && e.data.memberId === victim.memberId),
      'the action and the topology event on the brokers',
    );
    await threeActive();
  });

  it('a MemberFault for a dead member: remove, spawn — no terminate; its lingering agent is reaped', async () => {
    await threeActive();
    const [victim] = await activeMembers();
    if (!victim) throw new Error('no member');
    const pgid = pgidOf(victim);
    const handle = victim.handle as { workload: { pid: number } };
    process.kill(handle.workload.pid, 'SIGKILL');
    await waitFor(async () => !(await iaas.isRunning(victim.memberId)), 'the instance down');
    const before = decisions().length;
    await sp.publish(memberFault(victim, 1));
    await waitFor(() => decisions().length >= before + 2, 'two decisions');
    await pause(500);
    expect(
      decisions()
        .slice(before)
        .map((r) => `${r.fields.action} ${r.fields.memberId === victim.memberId}`),
    ).toEqual(['MemberRemoved true', 'MemberSpawnAction false']);
    expect(decisionsOf(victim.memberId)).not.toContain('MemberTerminateAction');
    expect(decisions()[before]?.fields.reason).toBe('MemberFault (timeout, silent 6000 ms); instance not running');
    await waitFor(() => groupOf(pgid).length === 0, 'the orphaned agent stopped');
    await threeActive();
  });

  it('the same MemberFault twice: one action', async () => {
    await threeActive();
    const [victim] = await activeMembers();
    if (!victim) throw new Error('no member');
    pgids.add(pgidOf(victim));
    const fault = memberFault(victim, 1);
    await sp.publish(fault);
    await sp.publish(fault);
    // And the same fact under another id (the other SP node): idempotent by state.
    await sp.publish(memberFault(victim, 1));
    await sp.drained();
    await waitFor(() => decisionsOf(victim.memberId).includes('MemberRemoved'), 'the member removed');
    await pause(1_000);
    expect(decisionsOf(victim.memberId)).toEqual(['MemberSpawnAction', 'MemberTerminateAction', 'MemberRemoved']);
    expect(autoscaler.counters.faultsIgnored).toBeGreaterThanOrEqual(1);
    await threeActive();
  });

  it('an SP event of an older epoch is dropped', async () => {
    await threeActive();
    const [victim] = await activeMembers();
    if (!victim) throw new Error('no member');
    const newer = createEnvelope(
      'AverageLoadAverageEvent',
      {
        clusterId: 'php',
        clusterInstanceId: 'php-1',
        networkPartitionId: 'np-1',
        value: 30,
        windowFrom: 0,
        windowTo: Date.now(),
      },
      { source: 'sp-test', epoch: 5 },
    );
    await sp.publish(newer);
    await waitFor(() => autoscaler.status().newestEpoch === 5, 'epoch 5 seen');
    await sp.publish(memberFault(victim, 4));
    await waitFor(() => autoscaler.counters.staleEpochDropped === 1, 'the stale fault dropped');
    await pause(500);
    expect(decisionsOf(victim.memberId)).toEqual(['MemberSpawnAction']);
    const { rows } = await pool.query<{ newest_epoch: string }>('SELECT newest_epoch FROM autoscaler_fence');
    expect(rows[0]?.newest_epoch).toBe('5');
  });

  it('status and the registry show the members and the last actions', async () => {
    const status = autoscaler.status();
    expect(status.brokers).toEqual({ a: 'up', b: 'up' });
    expect(status.clusters[0]?.members.filter((m) => m.state === 'Active')).toHaveLength(3);
    const { rows } = await pool.query<{ action: string }>('SELECT action FROM autoscaler_action ORDER BY id');
    expect(rows.map((r) => r.action)).toEqual(status.lastActions.map((a) => a.action));
    expect(rows.filter((r) => r.action === 'MemberTerminateAction')).toHaveLength(2);
    expect(rows.filter((r) => r.action === 'MemberRemoved')).toHaveLength(3);
    expect(rows.filter((r) => r.action === 'MemberSpawnAction')).toHaveLength(6);
  });
});
