import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CLIENT_IDS, encodePresenceAsk } from '@faultline/protocol';
import { type BrokerKind, mosquittoAvailable, startBrokerPair, type TestBroker } from '@faultline/test-support';
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { createPublisher, createSubscriber } from '../src/index.js';
import { numberedFault } from '../src/testing/index.js';
import { credentials, endpoints, waitFor } from './helpers.js';

/*
 * Presence without a ping cycle, on real brokers on loopback: a publisher that
 * (re)connects asks the awaited role to announce itself (`presence/<role>/<its
 * account>`), and the subscriber answers with a ping at once. The subscriber
 * pings only every 10 s here, so waiting for a regular ping would take seconds.
 */
const kinds: BrokerKind[] = mosquittoAvailable() ? ['aedes', 'mosquitto'] : ['aedes'];
const SLOW_PINGS = { pingIntervalMs: 10_000, resubscribeIntervalMs: 500 };
/** Far more than the few ms an ask and its answer take on loopback, far less than a ping cycle. */
const AT_ONCE_MS = 1_000;

describe.each(kinds)('presence on connect (%s)', (kind) => {
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

  /** Resolves with how long it took (ms) until `id` arrived. */
  const arrival = async (seen: Map<string, number>, id: string, since: number): Promise<number> => {
    await waitFor(() => seen.has(id), `${id} delivered`, 30_000);
    return (seen.get(id) as number) - since;
  };

  /** The autoscaler's subscriber on both brokers, subscribed. */
  const subscriber = async (brokers: TestBroker[], seen: Map<string, number>) => {
    const sub = createSubscriber({
      brokers: endpoints(brokers),
      credentials: credentials('autoscaler'),
      role: 'autoscaler',
      clientId: CLIENT_IDS.autoscaler,
      topics: ['summarized-health-stats/#'],
      onEnvelope: (envelope) => void seen.set(envelope.id, performance.now()),
      ...SLOW_PINGS,
    });
    cleanups.push(() => sub.close());
    sub.start();
    await waitFor(() => sub.links().a === 'up' && sub.links().b === 'up', 'subscriber on both brokers');
    return sub;
  };

  const publisher = (brokers: TestBroker[]) => {
    const pub = createPublisher({
      brokers: endpoints(brokers),
      credentials: credentials('sp'),
      clientId: 'sp-1',
      outboxFile: path.join(mkdtempSync(path.join(os.tmpdir(), 'fl-presence-')), 'sp-1.outbox'),
      awaitSubscribers: [CLIENT_IDS.autoscaler],
      presenceWindowMs: 30_000,
    });
    cleanups.push(() => pub.close());
    return pub;
  };

  it('a publisher that starts where the subscriber already is sends at once', async () => {
    const brokers = await pair();
    const seen = new Map<string, number>();
    const sub = await subscriber(brokers, seen);
    const pub = publisher(brokers);
    const startedAt = performance.now();
    await pub.start();
    await pub.publish(numberedFault(1));
    const first = await arrival(seen, 'fault-1', startedAt);
    expect(first, `first message ${Math.round(first)} ms after start`).toBeLessThan(AT_ONCE_MS);
    expect(sub.counters.delivered).toBe(1);
    console.log(`[${kind}] presence on connect: first message ${Math.round(first)} ms after the publisher started`);
  });

  it('kill -9 of its broker: the next message goes through the other one at once', async () => {
    const brokers = await pair();
    const seen = new Map<string, number>();
    const sub = await subscriber(brokers, seen);
    const pub = publisher(brokers);
    await pub.start();
    await pub.publish(numberedFault(1));
    await arrival(seen, 'fault-1', 0);

    const victim = brokers.find((b) => b.name === pub.broker) as TestBroker;
    const killedAt = performance.now();
    await victim.kill('SIGKILL');
    await pub.publish(numberedFault(2));
    const next = await arrival(seen, 'fault-2', killedAt);
    expect(pub.broker).not.toBe(victim.name);
    expect(next, `kill -9 → next message ${Math.round(next)} ms`).toBeLessThan(AT_ONCE_MS);
    expect(sub.counters.delivered).toBe(2);
    console.log(
      `[${kind}] presence on failover: kill -9 → next message ${Math.round(next)} ms (pings every ${SLOW_PINGS.pingIntervalMs} ms)`,
    );
  });

  it('a member flooding asks costs a bounded number of pings, and one asking under another name is never heard', async () => {
    const brokers = await pair();
    const seen = new Map<string, number>();
    const sub = await subscriber(brokers, seen);
    const [a] = brokers as [TestBroker, TestBroker];
    const connect = async () => {
      const client = await mqtt.connectAsync({
        host: a.host,
        port: a.port,
        protocolVersion: 4,
        reconnectPeriod: 0,
        ...credentials('agent'),
      });
      client.on('error', () => {});
      cleanups.push(() => client.endAsync(true));
      return client;
    };
    const agent = await connect();
    // Under another account's name: aedes closes the connection, Mosquitto acknowledges and drops the ask.
    const forger = await connect();
    await Promise.race([
      forger.publishAsync('presence/autoscaler/sp', encodePresenceAsk({ clientId: 'sp-1' }), { qos: 1 }),
      new Promise<void>((resolve) => forger.once('close', () => resolve())),
    ]);
    const before = { ...sub.counters };
    const startedAt = performance.now();
    const ask = encodePresenceAsk({ clientId: 'flood' });
    for (let i = 0; i < 5_000; i++) agent.publish('presence/autoscaler/agent', ask, { qos: 0 });
    // A QoS 1 marker after the flood: once the broker acknowledged it, it had routed every ask before it.
    await agent.publishAsync('presence/autoscaler/agent', ask, { qos: 1 });
    await waitFor(
      () => sub.counters.asks - before.asks === 5_001,
      `5 001 asks (have ${sub.counters.asks - before.asks})`,
    );
    const elapsedMs = performance.now() - startedAt;
    const answers = sub.counters.announcements - before.announcements;
    // The burst of 4, then one per 1 000 ms (a tenth of the 10 s ping interval), and one more due at the end.
    expect(answers).toBeGreaterThanOrEqual(1);
    expect(answers).toBeLessThanOrEqual(4 + Math.ceil(elapsedMs / 1_000) + 1);
    expect(sub.counters.asksThrottled - before.asksThrottled).toBeGreaterThan(4_900);
    expect(sub.counters.asksInvalid).toBe(0);
    expect(sub.links()).toEqual({ a: 'up', b: 'up' });
    console.log(
      `[${kind}] 5 001 asks from one member in ${Math.round(elapsedMs)} ms: ${answers} pings answered them (${sub.counters.asksThrottled - before.asksThrottled} throttled)`,
    );
  });
});
