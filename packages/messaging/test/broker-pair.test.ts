import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CLIENT_IDS } from '@faultline/protocol';
import { type BrokerKind, mosquittoAvailable, startBrokerPair, type TestBroker } from '@faultline/test-support';
import { afterEach, describe, expect, it } from 'vitest';
import { createPublisher, createSubscriber, type Subscriber } from '../src/index.js';
import { numberedFault } from '../src/testing/index.js';
import { credentials, endpoints, spawnPublisher, waitFor } from './helpers.js';

/*
 * The messaging acceptance of issue 3 against real brokers on loopback, run
 * as child processes and killed with real signals; the same tests for the
 * aedes pair and for two Mosquitto brokers.
 */
const kinds: BrokerKind[] = mosquittoAvailable() ? ['aedes', 'mosquitto'] : ['aedes'];
const FAST = { pingIntervalMs: 200, resubscribeIntervalMs: 500 };

describe.each(kinds)('broker pair (%s)', (kind) => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => {});
  });

  const pair = async (): Promise<[TestBroker, TestBroker]> => {
    const brokers = await startBrokerPair(kind);
    cleanups.push(
      () => brokers[0].stop(),
      () => brokers[1].stop(),
    );
    return brokers;
  };

  const subscriber = (brokers: TestBroker[], ids: string[]): Subscriber => {
    const sub = createSubscriber({
      brokers: endpoints(brokers),
      credentials: credentials('autoscaler'),
      role: 'autoscaler',
      clientId: CLIENT_IDS.autoscaler,
      topics: ['summarized-health-stats/#'],
      onEnvelope: (envelope) => void ids.push(envelope.id),
      ...FAST,
    });
    cleanups.push(() => sub.close());
    sub.start();
    return sub;
  };

  it('kill -9 broker a during a stream of 10 000: all arrive at the subscriber, each once', async () => {
    const brokers = await pair();
    const ids: string[] = [];
    const sub = subscriber(brokers, ids);
    await waitFor(() => sub.links().a === 'up' && sub.links().b === 'up', 'subscriber on both brokers');
    const publisher = createPublisher({
      brokers: endpoints(brokers),
      credentials: credentials('sp'),
      clientId: 'sp-1',
      outboxFile: path.join(mkdtempSync(path.join(os.tmpdir(), 'fl-msg-')), 'sp-1.outbox'),
      republishIntervalMs: 2_000,
      awaitSubscribers: [CLIENT_IDS.autoscaler],
    });
    cleanups.push(() => publisher.close());
    await publisher.start();
    let killedAt = 0;
    for (let start = 1; start <= 10_000; start += 500) {
      await Promise.all(Array.from({ length: 500 }, (_, i) => publisher.publish(numberedFault(start + i))));
      if (start === 3_001) {
        killedAt = performance.now();
        await brokers[0].kill('SIGKILL');
      }
    }
    await waitFor(() => publisher.broker === 'b', 'the publisher on broker b');
    await publisher.drained();
    const failoverMs = performance.now() - killedAt;
    await waitFor(() => ids.length >= 10_000, `10 000 envelopes (have ${ids.length})`, 60_000);
    expect(new Set(ids).size).toBe(10_000);
    expect(ids).toHaveLength(10_000);
    expect(sub.counters.delivered).toBe(10_000);
    expect(sub.links().b).toBe('up');
    console.log(
      `[${kind}] broker a killed: all 10 000 delivered once; kill → outbox drained on b in ${Math.round(failoverMs)} ms; duplicates filtered: ${sub.counters.duplicates}, resent: ${publisher.counters.retried}`,
    );
  });

  it('both brokers down past the republish interval, the publisher killed -9 in the outage: all arrive in order, none twice', async () => {
    const brokers = await pair();
    const ids: string[] = [];
    const sub = subscriber(brokers, ids);
    const outboxFile = path.join(mkdtempSync(path.join(os.tmpdir(), 'fl-msg-')), 'pub.outbox');
    const options = {
      brokers: endpoints(brokers),
      credentials: credentials('sp'),
      clientId: 'pub-1',
      outboxFile,
      republishIntervalMs: 1_000,
      awaitSubscribers: [CLIENT_IDS.autoscaler],
    };
    const first = spawnPublisher(options);
    cleanups.push(async () => first.child.kill('SIGKILL'));
    await first.waitForLine('started');
    first.send('publish 1 500');
    await first.waitForLine('drained');
    await waitFor(() => ids.length === 500, 'the first 500');

    await Promise.all(brokers.map((b) => b.kill('SIGKILL')));
    first.send('publish 501 1000');
    await first.waitForLine('durable 1000');
    first.child.kill('SIGKILL');
    await first.exited;
    await new Promise((resolve) => setTimeout(resolve, 1_500)); // longer than the republish interval

    const second = spawnPublisher(options);
    cleanups.push(async () => second.child.kill('SIGKILL'));
    await second.waitForLine('started');
    expect(second.lines).toContain(JSON.stringify({ status: { type: 'outbox-recovered', count: 500 } }));
    second.send('publish 1001 1500');
    await second.waitForLine('durable 1500');
    await Promise.all(brokers.map((b) => b.restart()));
    await second.waitForLine('drained', 30_000);
    await waitFor(() => ids.length >= 1_500, `1 500 envelopes (have ${ids.length})`);
    expect(ids).toEqual(Array.from({ length: 1_500 }, (_, i) => `fault-${i + 1}`));
    expect(sub.counters.delivered).toBe(1_500);
  });
});
