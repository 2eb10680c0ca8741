import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { systemClock } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import {
  CLIENT_IDS,
  createEnvelope,
  decodeEnvelope,
  type Envelope,
  encodeEnvelope,
  encodePing,
  topicOf,
} from '@faultline/protocol';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createPublisher } from './publisher.js';
import { supersededStream, supersededStreamOfPayload } from './publisher-streams.js';
import { SendQueue } from './send-queue.js';
import { FAKE_BROKER_PAIR, FakeBrokers, numberedFault, spLayout, spMemberFault, spTick } from './testing/index.js';

const layout = spLayout(2_500, 2);
const action = (type: 'MemberTerminateAction' | 'ScaleUpAction', n: number) =>
  createEnvelope(
    type,
    { clusterId: 'cluster-0', memberId: `m-${n}`, reason: 'fault' },
    { source: 'autoscaler-a', id: `${type}:${n}` },
  );

describe('supersededStream', () => {
  it('gives each summary of a tick a stream of its own, the same at the next tick', () => {
    const tick1 = spTick(layout, 15_000);
    const tick2 = spTick(layout, 30_000);
    const streams1 = tick1.map(supersededStream);
    expect(streams1).toSatisfy((s: unknown[]) => s.every((x) => typeof x === 'string'));
    // Nothing of one tick is coalesced with another of the same tick: parts, clusters, types all apart.
    expect(new Set(streams1).size).toBe(tick1.length);
    expect(tick2.map(supersededStream)).toEqual(streams1);
    expect(tick1.some((e) => 'part' in e.data && e.data.part > 0)).toBe(true);
  });

  it('keeps another cluster instance or network partition apart', () => {
    const [summary] = spTick(layout, 15_000) as [Envelope];
    const other = (patch: Record<string, string>) =>
      supersededStream({ ...summary, data: { ...summary.data, ...patch } } as Envelope);
    expect(other({ clusterInstanceId: 'cluster-0-2' })).not.toBe(supersededStream(summary));
    expect(other({ networkPartitionId: 'np-2' })).not.toBe(supersededStream(summary));
  });

  it('never coalesces a MemberFault, an instance status, a topology event or an autoscaler action', () => {
    const facts: Envelope[] = [
      spMemberFault(layout, 1, 15_000),
      numberedFault(2),
      createEnvelope('InstanceActivatedEvent', { ...memberOf(), memberId: 'm-1' }, { source: 'agent-m-1' }),
      createEnvelope(
        'MemberTerminatedEvent',
        { clusterId: 'c', networkPartitionId: 'np-1', partitionId: 'p-1', memberId: 'm-1' },
        { source: 'autoscaler-a' },
      ),
      action('MemberTerminateAction', 1),
      action('ScaleUpAction', 2),
      createEnvelope(
        'FaultStormHeld',
        { clusterId: 'c', faultedMemberIds: ['m-1', 'm-2', 'm-3'], clusterSize: 4, windowMs: 60_000 },
        { source: 'autoscaler-a' },
      ),
    ];
    expect(facts.map(supersededStream)).toEqual(facts.map(() => undefined));
  });

  it('reads the same stream from a payload (an older outbox), and none from garbage', () => {
    const [summary] = spTick(layout, 15_000) as [Envelope];
    expect(supersededStreamOfPayload(topicOf(summary), encodeEnvelope(summary))).toBe(supersededStream(summary));
    expect(supersededStreamOfPayload('summarized-health-stats/x', Buffer.from('{not json'))).toBeUndefined();
  });
});

function memberOf() {
  return { clusterId: 'c', clusterInstanceId: 'c-1', networkPartitionId: 'np-1', partitionId: 'p-1' };
}

describe('publisher with a bounded outbox', () => {
  beforeEach(() =>
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date', 'performance'] }),
  );
  afterEach(() => vi.useRealTimers());

  const setup = (brokers: FakeBrokers, outboxMaxBytes?: number) => {
    const logger = createMemoryLogger();
    const publisher = createPublisher({
      brokers: FAKE_BROKER_PAIR,
      credentials: { username: 'sp', password: 'p' },
      clientId: 'sp-1',
      outboxFile: path.join(mkdtempSync(path.join(os.tmpdir(), 'faultline-pub-')), 'sp-1.outbox'),
      clock: systemClock,
      connector: brokers.connector,
      ...(outboxMaxBytes === undefined ? {} : { outboxMaxBytes }),
      logger,
    });
    return { publisher, logger };
  };
  const sentIds = (brokers: FakeBrokers) =>
    brokers.messages('a').map((m) => {
      const decoded = decodeEnvelope(m.payload);
      return decoded.ok ? decoded.value.id : 'invalid';
    });

  it('sends only the newest summary of each stream after an outage, every fault, and no onAcked of a superseded one', async () => {
    const brokers = new FakeBrokers();
    brokers.set('a', 'down');
    brokers.set('b', 'down');
    const { publisher } = setup(brokers);
    await publisher.start();
    const acked: string[] = [];
    const small = spLayout(10, 1);
    const ticks = [1, 2, 3].map((t) => spTick(small, t * 15_000));
    for (const [t, tick] of ticks.entries()) {
      const fault = spMemberFault(small, t, t * 15_000);
      for (const e of [...tick, fault]) await publisher.publish(e, { onAcked: () => acked.push(e.id) });
    }
    const newest = (ticks[2] ?? []).map((e) => e.id);
    expect(publisher.pending).toBe(newest.length + 3);
    brokers.set('a', 'up');
    await vi.advanceTimersByTimeAsync(60_000);
    await publisher.drained();
    const faults = [0, 1, 2].map((t) => spMemberFault(small, t, t * 15_000).id);
    expect(new Set(sentIds(brokers))).toEqual(new Set([...newest, ...faults]));
    expect(new Set(acked)).toEqual(new Set([...newest, ...faults]));
    expect(publisher.counters.coalesced).toBe(2 * newest.length);
    await publisher.close();
  });

  it('publish() fails with FL_ERR_OUTBOX_FULL past the bound, counted and logged; the faults in it are kept', async () => {
    const brokers = new FakeBrokers();
    brokers.set('a', 'down');
    brokers.set('b', 'down');
    const faultBytes = encodeEnvelope(numberedFault(1)).length;
    // Room for about four faults; twice that for precious records.
    const { publisher, logger } = setup(brokers, 4 * (2 * faultBytes));
    await publisher.start();
    const outcomes: string[] = [];
    for (let n = 1; n <= 12; n++) {
      await publisher.publish(numberedFault(n)).then(
        () => outcomes.push('ok'),
        (error: { code: string }) => outcomes.push(error.code),
      );
    }
    expect(outcomes.filter((o) => o === 'ok').length).toBeGreaterThanOrEqual(8);
    expect(outcomes.at(-1)).toBe('FL_ERR_OUTBOX_FULL');
    expect(publisher.counters.refusedOverflow).toBe(outcomes.filter((o) => o !== 'ok').length);
    expect(publisher.counters.published).toBe(outcomes.filter((o) => o === 'ok').length);
    expect(logger.events()).toContain('outbox.full');
    brokers.set('a', 'up');
    await vi.advanceTimersByTimeAsync(60_000);
    await publisher.drained();
    expect(sentIds(brokers)).toHaveLength(publisher.counters.published);
    await publisher.close();
  });

  it('keeps a publish O(1) while thousands of acknowledged messages wait to be replayed', async () => {
    const brokers = new FakeBrokers();
    const publisher = createPublisher({
      brokers: FAKE_BROKER_PAIR,
      credentials: { username: 'sp', password: 'p' },
      clientId: 'sp-1',
      outboxFile: path.join(mkdtempSync(path.join(os.tmpdir(), 'faultline-pub-')), 'sp-1.outbox'),
      clock: systemClock,
      connector: brokers.connector,
      awaitSubscribers: [CLIENT_IDS.autoscaler],
    });
    await publisher.start();
    await vi.advanceTimersByTimeAsync(0);
    brokers.inject('a', 'ping/autoscaler', encodePing({ clientId: 'autoscaler', seq: 1 }));
    await Promise.all(Array.from({ length: 3_000 }, (_, n) => publisher.publish(numberedFault(n))));
    await publisher.drained();
    // a dies with what it acknowledged: replayed on b, where they wait for the autoscaler.
    brokers.set('a', 'down');
    await vi.advanceTimersByTimeAsync(0);
    expect(publisher.broker).toBe('b');
    expect(publisher.counters.replayed).toBe(3_000);
    const sweeps = vi.spyOn(SendQueue.prototype, 'reset');
    for (let n = 3_000; n < 3_200; n++) await publisher.publish(numberedFault(n));
    // Each sweep goes over all 3 000: one now and then, not one per publish.
    expect(sweeps.mock.calls.length).toBeLessThanOrEqual(1);
    sweeps.mockRestore();
    await publisher.close();
  });
});
