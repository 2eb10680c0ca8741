import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createMemoryLogger } from '@faultline/core/testing';
import { FAKE_BROKER_PAIR, FakeBrokers } from '@faultline/messaging/testing';
import { decodeEnvelope, encodeEnvelope, topicFor } from '@faultline/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { AUTOSCALER_TOPICS, createAutoscaler } from './autoscaler.js';
import { clusterConfig, events, FakeIaas, MemoryRegistry } from './testing/index.js';

/*
 * The wiring, on in-memory brokers and real (short) time: the subscriber is
 * `autoscaler` on both brokers, SP events reach the monitors, and the
 * decisions leave through the durable publisher on `autoscaler/` and
 * `topology/`. The rules themselves are tested on fake time elsewhere.
 */
const until = async (predicate: () => boolean, what: string) => {
  const deadline = Date.now() + 5_000;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
};

describe('createAutoscaler', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  const setup = () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faultline-autoscaler-'));
    dirs.push(dir);
    const brokers = new FakeBrokers();
    const iaas = new FakeIaas();
    const logger = createMemoryLogger();
    const autoscaler = createAutoscaler({
      clusters: [clusterConfig()],
      iaas,
      registry: new MemoryRegistry(),
      brokers: FAKE_BROKER_PAIR,
      credentials: { username: 'autoscaler', password: 'x' },
      outboxFile: path.join(dir, 'autoscaler.outbox'),
      pingIntervalMs: 50,
      resubscribeIntervalMs: 200,
      connector: brokers.connector,
      // The fault below hits a member that never activated, a failed start: its replacement backs off this long.
      backoffInitialMs: 50,
      logger,
    });
    const sent = (name: string) =>
      brokers
        .messages(name)
        .filter((m) => !m.topic.startsWith('ping/'))
        .map((m) => {
          const decoded = decodeEnvelope(m.payload, { topic: m.topic });
          return decoded.ok
            ? `${m.topic} ${(decoded.value.data as { memberId?: string }).memberId ?? ''}`.trim()
            : 'bad';
        });
    return { brokers, iaas, autoscaler, logger, sent };
  };

  it('subscribes as `autoscaler` on both brokers, acts on a MemberFault, publishes on autoscaler/ and topology/', async () => {
    const { brokers, iaas, autoscaler, sent } = setup();
    await autoscaler.start();
    await until(() => Object.values(autoscaler.status().brokers).every((s) => s === 'up'), 'both links up');
    await until(() => sent('a').length === 6, 'three spawns announced');
    // The SP's publisher waits for pings on `ping/autoscaler`, which only the autoscaler's account may publish.
    const pings = () => brokers.messages('b').filter((m) => m.topic.startsWith('ping'));
    await until(() => pings().length > 0, 'a ping on b');
    expect(new Set(pings().map((m) => m.topic))).toEqual(new Set(['ping/autoscaler']));
    expect(AUTOSCALER_TOPICS).toEqual(['summarized-health-stats/#', 'instance/status/#']);

    const [first] = iaas.running;
    const fault = events.fault(first as string, { epoch: 2 });
    // Through broker b alone, then a duplicate through a: one action.
    brokers.inject('b', topicFor('MemberFaultEvent'), encodeEnvelope(fault));
    brokers.inject('a', topicFor('MemberFaultEvent'), encodeEnvelope(fault));
    await until(() => sent('a').length === 10, 'the fault handled');
    expect(sent('a').slice(6)).toEqual([
      `autoscaler/MemberTerminateAction ${first}`,
      `topology/MemberTerminatedEvent ${first}`,
      `autoscaler/MemberSpawnAction ${iaas.running[2]}`,
      `topology/MemberCreatedEvent ${iaas.running[2]}`,
    ]);
    expect(autoscaler.counters).toMatchObject({ received: 1, faults: 1 });
    expect(autoscaler.status().outboxPending).toBe(0);

    await autoscaler.close();
    await autoscaler.close();
    expect(iaas.running).toHaveLength(3); // close terminates nothing
  });

  it('close before start is harmless', async () => {
    const { autoscaler } = setup();
    await autoscaler.close();
  });
});
