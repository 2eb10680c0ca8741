import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createCepEngine } from '@faultline/cep';
import { PgLeaseStore } from '@faultline/coordination';
import { slowedLeaseStore } from '@faultline/coordination/testing';
import { createPgPool, migrate } from '@faultline/core';
import { createPublisher } from '@faultline/messaging';
import { watchAsAutoscaler } from '@faultline/messaging/testing';
import { CLIENT_IDS, type Envelope } from '@faultline/protocol';
import {
  brokerEndpoints,
  freePort,
  startBroker,
  startPostgres,
  TEST_CREDENTIALS,
  type TestBroker,
  type TestPostgres,
} from '@faultline/test-support';
import type pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createSpNode } from '../src/node.js';
import { FailoverClient, stat, waitFor } from './client.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/*
 * Issue "Robust under strain", item 1, on a real node, a real PostgreSQL and
 * a real broker: with lease statements taking a second, the lease used to
 * change hands every 2–4 s and every activation pushed each member's
 * deadline a whole fault timeout away, so a silent member was never faulted.
 */
describe('an SP node whose database answers slowly', () => {
  let db: TestPostgres;
  let pool: pg.Pool;
  let broker: TestBroker;
  const cleanups: (() => Promise<unknown>)[] = [];
  beforeAll(async () => {
    db = await startPostgres();
    pool = createPgPool({ connectionString: db.connectionString });
    await migrate(pool);
    broker = await startBroker({ kind: 'aedes', name: 'a' });
  });
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => {});
  });
  afterAll(async () => {
    await broker?.stop();
    await pool?.end();
    await db?.stop();
  });

  /** One node with the CEP monitor publishing to the broker, and the autoscaler's view of its faults. */
  async function start(groupId: string, faultTimeoutMs: number) {
    const brokers = brokerEndpoints([broker]);
    const faults: { memberId: string; at: number; epoch: number | undefined }[] = [];
    const autoscaler = watchAsAutoscaler({
      brokers,
      credentials: TEST_CREDENTIALS.autoscaler,
      topics: ['summarized-health-stats/MemberFaultEvent'],
      onEnvelope: (envelope: Envelope) => {
        if (envelope.type === 'MemberFaultEvent')
          faults.push({ memberId: envelope.data.memberId, at: Date.now(), epoch: envelope.epoch });
      },
    });
    cleanups.push(() => autoscaler.close());
    const publisher = createPublisher({
      brokers,
      credentials: TEST_CREDENTIALS.sp,
      clientId: 'sp-1',
      outboxFile: path.join(mkdtempSync(path.join(os.tmpdir(), 'fl-sp-strain-')), 'sp-1.outbox'),
      republishIntervalMs: 1_000,
      awaitSubscribers: [CLIENT_IDS.autoscaler],
    });
    cleanups.push(() => publisher.close());
    await publisher.start();
    const store = slowedLeaseStore(new PgLeaseStore(pool));
    const memberKey = randomBytes(32);
    const thriftPort = await freePort();
    const node = createSpNode({
      nodeId: 'sp-1',
      groupId,
      store,
      thrift: { host: '127.0.0.1', port: thriftPort },
      sync: { host: '127.0.0.1', port: 0 },
      syncKey: randomBytes(32),
      memberKey,
      engine: createCepEngine({ source: 'sp-1', faultTimeoutMs, summaryIntervalMs: 1_000, windowMs: 10_000 }),
      sink: publisher,
    });
    cleanups.push(() => node.close());
    await node.start();
    await waitFor(() => node.role === 'ACTIVE', 'sp-1 active');
    const client = new FailoverClient(memberKey, [thriftPort], 5_000);
    cleanups.push(async () => client.close());
    /** Agents of `alive` report every 300 ms; `silent` reports too until `silence()`, and returns its last ack time. */
    let sequence = 0;
    let silentStopped = false;
    let lastSilentAck = 0;
    let reporting = true;
    const agents = (async () => {
      while (reporting) {
        sequence += 1;
        await client.send({ agentId: 'alive', sequence, stats: [stat('alive', sequence)] }, 60_000);
        if (!silentStopped) {
          await client.send({ agentId: 'silent', sequence, stats: [stat('silent', sequence)] }, 60_000);
          lastSilentAck = Date.now();
        }
        await sleep(300);
      }
    })();
    cleanups.push(async () => {
      reporting = false;
      await agents.catch(() => {});
    });
    const silence = async () => {
      await waitFor(() => lastSilentAck > 0, 'the silent member’s first stat');
      silentStopped = true;
      await sleep(400); // a send in progress finishes
      return lastSilentAck;
    };
    /** The node's role and epoch over time, polled every 25 ms. */
    const roles: { at: number; role: string; epoch: number | undefined }[] = [];
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const { role, epoch } = node.status();
        const last = roles.at(-1);
        if (!last || last.role !== role || last.epoch !== epoch) roles.push({ at: Date.now(), role, epoch });
        await sleep(25);
      }
    })();
    cleanups.push(async () => {
      watching = false;
      await watcher;
    });
    return { node, store, faults, silence, roles };
  }

  it('with every lease statement taking 1 s, still faults a silent member within 2 × the fault timeout', async () => {
    const faultTimeoutMs = 5_000;
    const { store, faults, silence, roles } = await start('strain-1', faultTimeoutMs);
    store.latencyMs = 1_000;
    await sleep(3_000);
    const silentSince = await silence();
    await waitFor(
      () => faults.some((f) => f.memberId === 'silent'),
      'the silent member’s fault',
      2 * faultTimeoutMs + 1_000,
    ).catch(() => undefined);
    const fault = faults.find((f) => f.memberId === 'silent');
    expect(fault, `a fault for the silent member (roles: ${JSON.stringify(roles)})`).toBeDefined();
    expect((fault?.at ?? Number.POSITIVE_INFINITY) - silentSince).toBeLessThanOrEqual(2 * faultTimeoutMs);
    expect(faults.filter((f) => f.memberId === 'alive')).toEqual([]);
    // The lease never changed hands: one epoch all along.
    expect(new Set(roles.map((r) => r.epoch).filter((e) => e !== undefined))).toEqual(new Set([1]));
  }, 60_000);

  it('the same node taking its lease back keeps its deadlines: a silent member is faulted on time plus the gap', async () => {
    const faultTimeoutMs = 8_000;
    const { store, faults, silence, roles } = await start('strain-2', faultTimeoutMs);
    await sleep(1_000);
    const silentSince = await silence();
    await sleep(2_000);
    store.latencyMs = 2_500; // longer than the lease tolerates: the node fences itself …
    await sleep(3_000);
    store.latencyMs = 0; // … and takes the lease back once the database answers again
    const back = await waitFor(
      () => roles.find((r) => r.role === 'ACTIVE' && (r.epoch ?? 0) > 1),
      'sp-1 active again under a new epoch',
    );
    const down = roles.find((r) => r.role !== 'ACTIVE' && r.at > silentSince);
    expect(down).toBeDefined();
    const gapMs = back.at - (down?.at ?? back.at);
    await waitFor(() => faults.some((f) => f.memberId === 'silent'), 'the silent member’s fault', 30_000).catch(
      () => undefined,
    );
    const fault = faults.find((f) => f.memberId === 'silent');
    expect(fault, `a fault for the silent member (roles: ${JSON.stringify(roles)})`).toBeDefined();
    // Its deadline as it was, plus the time the node could not be reached; not a fault timeout from the return.
    expect((fault?.at ?? Number.POSITIVE_INFINITY) - silentSince).toBeLessThanOrEqual(faultTimeoutMs + gapMs + 1_000);
    expect(fault?.epoch).toBe(back.epoch);
    expect(faults.filter((f) => f.memberId === 'alive')).toEqual([]);
  }, 60_000);
});
