import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { MemoryLeaseStore, MemoryLeaseTables } from '@faultline/coordination/testing';
import { systemClock } from '@faultline/core';
import { createPublisher, type Publisher } from '@faultline/messaging';
import { numberedFault, watchAsAutoscaler } from '@faultline/messaging/testing';
import { CLIENT_IDS, type Envelope } from '@faultline/protocol';
import { type OutputSink, type SpNode, StatLedger } from '@faultline/stream-processor';
import { brokerEndpoints, startBroker, TEST_CREDENTIALS, type TestBroker, waitFor } from '@faultline/test-support';
import { afterEach, describe, expect, it } from 'vitest';
import { createSpNode } from '../src/node.js';

const SYNC_KEY = randomBytes(32);
const MEMBER_KEY = randomBytes(32);
const HEARTBEAT_MS = 200;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** V8's own collector, on demand (the flag set at run time, read by a fresh context). */
function collectGarbage(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

/**
 * An engine whose outputs the test makes: on the active they go to the node's
 * sink; on the passive they are held until the active confirms them, which is
 * what the CEP's ledger does (`pendingOutputs`).
 */
class OutputEngine extends StatLedger {
  private listener: ((envelope: Envelope) => void) | undefined;
  private active = false;
  readonly pending = new Set<string>();

  override activate(epoch: number): void {
    this.active = true;
    super.activate(epoch);
  }
  override deactivate(): void {
    this.active = false;
    super.deactivate();
  }
  onOutput(listener: (envelope: Envelope) => void): void {
    this.listener = listener;
  }
  confirm(ids: readonly string[]): void {
    for (const id of ids) this.pending.delete(id);
  }
  produce(envelope: Envelope): void {
    if (this.active) this.listener?.(envelope);
    else this.pending.add(envelope.id);
  }
  override status(): Record<string, unknown> {
    return { ...super.status(), pendingOutputs: this.pending.size };
  }
}

/*
 * Issue "No fault is ever lost", item 4: the passive drops an output of the
 * active only once a broker acknowledged it. Durable in the active's outbox
 * is not enough: that outbox dies with the active.
 */
describe('SP outputs: confirmed to the passive on PUBACK, not on outbox append', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => {});
  });

  const node = async (nodeId: string, tables: MemoryLeaseTables, sink?: Publisher) => {
    const engine = new OutputEngine();
    const n: SpNode = createSpNode({
      nodeId,
      store: new MemoryLeaseStore(systemClock, tables),
      thrift: { host: '127.0.0.1', port: 0 },
      sync: { host: '127.0.0.1', port: 0 },
      heartbeatIntervalMs: HEARTBEAT_MS,
      heartbeatMaxRetry: 2,
      fencingMarginMs: 100,
      syncKey: SYNC_KEY,
      memberKey: MEMBER_KEY,
      engine,
      ...(sink ? { sink } : {}),
    });
    cleanups.push(() => n.close());
    await n.start();
    return { n, engine };
  };

  it('an output the broker has not acknowledged stays pending on the passive; the PUBACK confirms it', async () => {
    const broker: TestBroker = await startBroker({ kind: 'aedes', name: 'a' });
    cleanups.push(() => broker.stop());
    const brokers = brokerEndpoints([broker]);
    // The SP's publisher as main.ts builds it: it sends only while the autoscaler is subscribed.
    const publisher = createPublisher({
      brokers,
      credentials: TEST_CREDENTIALS.sp,
      clientId: 'sp-1',
      outboxFile: path.join(mkdtempSync(path.join(os.tmpdir(), 'fl-sp-out-')), 'sp-1.outbox'),
      republishIntervalMs: 30_000,
      awaitSubscribers: [CLIENT_IDS.autoscaler],
    });
    cleanups.push(() => publisher.close());
    await publisher.start();
    const tables = new MemoryLeaseTables();
    const active = await node('sp-1', tables, publisher);
    await waitFor(() => active.n.role === 'ACTIVE', 'sp-1 active');
    const passive = await node('sp-2', tables);
    await waitFor(() => passive.n.status().following?.nodeId === 'sp-1', 'sp-2 following sp-1');

    const fault = numberedFault(1);
    passive.engine.produce(fault); // both engines derive the same output; the passive holds it
    active.engine.produce(fault); // the active hands it to its publisher: durable, but no autoscaler yet
    await waitFor(() => publisher.pending === 1 && active.n.status().counters.outputsPublished === 1, 'durable');
    await sleep(1_000);
    expect(publisher.counters.acked).toBe(0);
    // Were the active to die now, the passive must still have it to publish.
    expect(passive.n.status().engine.pendingOutputs).toBe(1);

    const received: string[] = [];
    const autoscaler = watchAsAutoscaler({
      brokers,
      credentials: TEST_CREDENTIALS.autoscaler,
      topics: ['summarized-health-stats/#'],
      onEnvelope: (envelope) => void received.push(envelope.id),
    });
    cleanups.push(() => autoscaler.close());
    await waitFor(() => received.includes(fault.id), 'the fault at the autoscaler');
    await waitFor(() => passive.n.status().engine.pendingOutputs === 0, 'confirmed on the passive');
    expect(publisher.counters.acked).toBe(1);
  }, 30_000);

  /*
   * Issue "Performance": a summary part lists 1 000 members, and the node's
   * callbacks for its PUBACK held the whole envelope until the broker
   * acknowledged it: at 100 000 members a tick's parts lived for seconds and
   * were promoted whole, a full mark-compact of the active's heap every tick.
   */
  it('an output waiting for its PUBACK is not kept by the node: only its id is', async () => {
    const waiting: (() => void)[] = [];
    const sink: OutputSink = {
      publish: (_envelope, options) => {
        if (options?.onAcked) waiting.push(options.onAcked);
        return Promise.resolve();
      },
    };
    const tables = new MemoryLeaseTables();
    const active = await node('sp-1', tables, sink as Publisher);
    await waitFor(() => active.n.role === 'ACTIVE', 'sp-1 active');
    const gc = collectGarbage();
    // Made in a frame of its own: nothing of this test refers to it but the WeakRef.
    const sent = (() => {
      const envelope = numberedFault(7);
      active.engine.produce(envelope);
      return new WeakRef(envelope);
    })();
    expect(waiting).toHaveLength(1);
    await sleep(0);
    gc();
    expect(sent.deref()).toBeUndefined();
    waiting[0]?.(); // the PUBACK, late: the callback still confirms by id
    expect(active.n.status().counters.outputsPublished).toBe(1);
  }, 30_000);
});
