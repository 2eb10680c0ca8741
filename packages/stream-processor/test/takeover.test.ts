import { randomBytes } from 'node:crypto';
import { MemoryLeaseStore, MemoryLeaseTables } from '@faultline/coordination/testing';
import { systemClock } from '@faultline/core';
import { type ActivateOptions, createSpNode, type SpNode, StatLedger } from '@faultline/stream-processor';
import { afterEach, describe, expect, it } from 'vitest';
import { FailoverClient, stat, waitFor } from './client.js';

/** A ledger that records what each activation was told. */
class RecordingLedger extends StatLedger {
  readonly activations: { at: number; options: ActivateOptions | undefined }[] = [];
  override activate(epoch: number, options?: ActivateOptions): void {
    this.activations.push({ at: Date.now(), options });
    super.activate(epoch);
  }
}

/** The pair's shared sync secret (both nodes hold the same, as from `security.syncKeyFile`). */
const SYNC_KEY = randomBytes(32);
const HEARTBEAT_MS = 200;
/** One lease (2 heartbeats) and one acquire attempt: what the node adds to the last word it heard. */
const TAKEOVER_MS = HEARTBEAT_MS * 3;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** The member key batches are signed with (as `security.memberKeyFile` would hold it). */
const MEMBER_KEY = randomBytes(32);

/*
 * Two in-process nodes over loopback, sharing in-memory lease tables (one
 * store each, so one can be cut off from "the database"): what a takeover
 * tells the engine about the time since which the node followed no active.
 */
describe('SP takeover: since when the node followed no active', () => {
  const nodes: SpNode[] = [];
  afterEach(async () => {
    await Promise.all(nodes.splice(0).map((n) => n.close()));
  });

  const node = async (nodeId: string, tables: MemoryLeaseTables) => {
    const store = new MemoryLeaseStore(systemClock, tables);
    const engine = new RecordingLedger();
    const n = createSpNode({
      nodeId,
      store,
      thrift: { host: '127.0.0.1', port: 0 },
      sync: { host: '127.0.0.1', port: 0 },
      heartbeatIntervalMs: HEARTBEAT_MS,
      heartbeatMaxRetry: 2,
      fencingMarginMs: 100,
      syncKey: SYNC_KEY,
      memberKey: MEMBER_KEY,
      engine,
    });
    nodes.push(n);
    await n.start();
    return { n, store, engine };
  };

  it('the engine learns when the node last heard from an active: its start, the last batch, the snapshot', async () => {
    const tables = new MemoryLeaseTables();
    const startedA = Date.now();
    const a = await node('sp-1', tables);
    await waitFor(() => a.n.role === 'ACTIVE', 'sp-1 active');
    // Alone from the start: the start is the last word of an active it has.
    const first = a.engine.activations[0];
    expect(first?.options?.unverifiedAfter).toBeGreaterThanOrEqual(startedA + TAKEOVER_MS);
    expect(first?.options?.unverifiedAfter).toBeLessThanOrEqual((first?.at ?? 0) + TAKEOVER_MS);

    const b = await node('sp-2', tables);
    await waitFor(() => b.n.status().following?.nodeId === 'sp-1', 'sp-2 following sp-1');
    // An agent streams into sp-1 for a while; every acknowledged batch is held by sp-2.
    const client = new FailoverClient(MEMBER_KEY, [a.n.status().thriftPort ?? 0]);
    let lastReplicatedSentAt = 0;
    for (let sequence = 1; sequence <= 15; sequence++) {
      const sentAt = Date.now();
      const ack = await client.send({ agentId: 'm-1', sequence, stats: [stat('m-1', sequence)] });
      if (ack.replicated) lastReplicatedSentAt = sentAt;
      await sleep(100);
    }
    client.close();
    expect(lastReplicatedSentAt).toBeGreaterThan(0);
    a.store.unreachable = true; // sp-1 loses the database and steps down
    await waitFor(() => b.n.role === 'ACTIVE', 'sp-2 took over');
    const takeover = b.engine.activations[0];
    // Heard last: the newest batch it held (not its start, not the link's opening).
    expect(takeover?.options?.unverifiedAfter).toBeGreaterThanOrEqual(lastReplicatedSentAt + TAKEOVER_MS);
    expect(takeover?.options?.unverifiedAfter).toBeLessThanOrEqual((takeover?.at ?? 0) + TAKEOVER_MS);

    // sp-1 returns as passive and is linked from a snapshot; then sp-2 goes, sp-1 takes over.
    const restoredAt = Date.now();
    a.store.unreachable = false;
    await waitFor(() => a.n.status().following?.nodeId === 'sp-2', 'sp-1 following sp-2');
    b.store.unreachable = true;
    await waitFor(() => a.engine.activations.length === 2, 'sp-1 active again');
    expect(a.engine.activations[1]?.options?.unverifiedAfter).toBeGreaterThanOrEqual(restoredAt + TAKEOVER_MS);
  }, 30_000);
});
