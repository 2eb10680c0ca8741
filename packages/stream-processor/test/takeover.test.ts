import { MemoryLeaseStore, MemoryLeaseTables } from '@faultline/coordination';
import { systemClock } from '@faultline/core';
import { type ActivateOptions, createSpNode, type SpNode, StatLedger } from '@faultline/stream-processor';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from './client.js';

/** A ledger that records what each activation was told. */
class RecordingLedger extends StatLedger {
  readonly activations: { at: number; options: ActivateOptions | undefined }[] = [];
  override activate(epoch: number, options?: ActivateOptions): void {
    this.activations.push({ at: Date.now(), options });
    super.activate(epoch);
  }
}

const HEARTBEAT_MS = 200;
const LEASE_MS = HEARTBEAT_MS * 2;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

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
      engine,
    });
    nodes.push(n);
    await n.start();
    return { n, store, engine };
  };

  it('a lone node: since it started; a follower: since its link closed, not since it started', async () => {
    const tables = new MemoryLeaseTables();
    const startedA = Date.now();
    const a = await node('sp-1', tables);
    await waitFor(() => a.n.role === 'ACTIVE', 'sp-1 active');
    const first = a.engine.activations[0]?.options?.unverifiedAfter ?? 0;
    expect(first).toBeGreaterThanOrEqual(startedA + LEASE_MS);
    expect(first).toBeLessThanOrEqual((a.engine.activations[0]?.at ?? 0) + LEASE_MS);

    const b = await node('sp-2', tables);
    await waitFor(() => b.n.status().following?.nodeId === 'sp-1', 'sp-2 following sp-1');
    await sleep(1_000); // it follows for a while: its start is long past
    const cutAt = Date.now();
    a.store.unreachable = true; // sp-1 loses the database, steps down and drops the link
    await waitFor(() => b.n.role === 'ACTIVE', 'sp-2 took over');
    const takeover = b.engine.activations[0];
    const unverifiedAfter = takeover?.options?.unverifiedAfter ?? 0;
    // The link closed after the cut and before the takeover; one lease on top.
    expect(unverifiedAfter).toBeGreaterThanOrEqual(cutAt + LEASE_MS);
    expect(unverifiedAfter).toBeLessThanOrEqual((takeover?.at ?? 0) + LEASE_MS);

    // sp-1 returns as passive, is linked from a snapshot, and takes over in turn.
    a.store.unreachable = false;
    await waitFor(() => a.n.status().following?.nodeId === 'sp-2', 'sp-1 following sp-2');
    await sleep(500);
    const cut2At = Date.now();
    b.store.unreachable = true;
    await waitFor(() => a.engine.activations.length === 2, 'sp-1 active again');
    expect(a.engine.activations[1]?.options?.unverifiedAfter).toBeGreaterThanOrEqual(cut2At + LEASE_MS);
  }, 30_000);
});
