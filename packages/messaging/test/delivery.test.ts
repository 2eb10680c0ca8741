import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createMemoryLogger } from '@faultline/core/testing';
import { CLIENT_IDS } from '@faultline/protocol';
import { type BrokerKind, mosquittoAvailable, startBroker, type TestBroker } from '@faultline/test-support';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type Connector,
  createPublisher,
  createSubscriber,
  type MessagingStatus,
  type MqttConnection,
  mqttConnector,
  type PublisherOptions,
  type SubscriberOptions,
} from '../src/index.js';
import { numberedFault } from '../src/testing/index.js';
import { credentials, endpoints, waitFor } from './helpers.js';

/*
 * Issue "No fault is ever lost", item 4 (delivery), against real brokers on
 * loopback: the autoscaler's subscriber keeps its session across a restart,
 * publishers hold what they have the moment the broker says the autoscaler's
 * link died, and a stalled event loop is not a dead broker.
 */
const kinds: BrokerKind[] = mosquittoAvailable() ? ['aedes', 'mosquitto'] : ['aedes'];
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Blocks the event loop for `ms`, as a long GC pause or a big snapshot does. */
function busyLoop(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // spinning: no timer, no socket is served meanwhile
  }
}

describe.each(kinds)('delivery (%s)', (kind) => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => {});
  });

  const broker = async (): Promise<TestBroker> => {
    const b = await startBroker({ kind, name: 'a' });
    cleanups.push(() => b.stop());
    return b;
  };

  const autoscaler = (b: TestBroker, ids: string[], extra: Partial<SubscriberOptions> = {}) => {
    const statuses: MessagingStatus[] = [];
    const sub = createSubscriber({
      brokers: endpoints([b]),
      credentials: credentials('autoscaler'),
      role: 'autoscaler',
      clientId: CLIENT_IDS.autoscaler,
      topics: ['summarized-health-stats/#'],
      onEnvelope: (e) => void ids.push(e.id),
      pingIntervalMs: 200,
      resubscribeIntervalMs: 500,
      ...extra,
    });
    sub.onStatus((s) => statuses.push(s));
    cleanups.push(() => sub.close());
    sub.start();
    return { sub, statuses };
  };

  const spPublisher = async (b: TestBroker, extra: Partial<PublisherOptions> = {}) => {
    const statuses: MessagingStatus[] = [];
    const publisher = createPublisher({
      brokers: endpoints([b]),
      credentials: credentials('sp'),
      clientId: 'sp-1',
      outboxFile: path.join(mkdtempSync(path.join(os.tmpdir(), 'fl-msg-')), 'sp-1.outbox'),
      republishIntervalMs: 30_000,
      ...extra,
    });
    publisher.onStatus((s) => statuses.push(s));
    cleanups.push(() => publisher.close());
    await publisher.start();
    return { publisher, statuses };
  };

  it('persistent session: a restarted subscriber gets the QoS 1 envelope published while it was away', async () => {
    const b = await broker();
    const before: string[] = [];
    const first = autoscaler(b, before, { persistentSession: true });
    await waitFor(() => first.sub.links().a === 'up', 'the first subscriber up');
    await first.sub.close(); // the process goes; a new one starts below
    // Published while no autoscaler is connected: the broker acknowledges it and queues it for the session.
    const { publisher } = await spPublisher(b);
    await publisher.publish(numberedFault(1));
    await publisher.drained();
    const after: string[] = [];
    const second = autoscaler(b, after, { persistentSession: true });
    await waitFor(() => second.sub.links().a === 'up', 'the restarted subscriber up');
    await waitFor(() => after.includes('fault-1'), 'fault-1 at the restarted subscriber', 5_000);
    expect(after).toEqual(['fault-1']);
    expect(before).toEqual([]);
  });

  it("presence: once the autoscaler's link dies, the publisher holds what it has until the link's next subscription", async () => {
    const b = await broker();
    const links: MqttConnection[] = [];
    const connector: Connector = async (endpoint, options) => {
      const connection = await mqttConnector(endpoint, options);
      links.push(connection);
      return connection;
    };
    const ids: string[] = [];
    // A clean session: only the publisher's holding can save fault-2 here.
    const { sub } = autoscaler(b, ids, { connector, resubscribeIntervalMs: 2_000 });
    const logger = createMemoryLogger();
    const { publisher } = await spPublisher(b, { awaitSubscribers: [CLIENT_IDS.autoscaler], logger });
    await publisher.publish(numberedFault(1));
    await waitFor(() => ids.includes('fault-1'), 'fault-1 delivered');
    links.at(-1)?.close(); // the link dies (no DISCONNECT): the subscriber retries in 2 s
    // The broker's will tells the publisher, not the 3 s presence window of the last ping: waited for, since
    // fault-2 sent before it lands would reach a broker with nobody subscribed.
    await waitFor(() => logger.events().includes('publisher.subscriber_gone'), "the publisher told the link's end");
    expect(sub.links().a).toBe('down');
    await publisher.publish(numberedFault(2));
    await waitFor(() => ids.includes('fault-2'), 'fault-2 delivered after the link came back', 10_000);
    expect(ids).toEqual(['fault-1', 'fault-2']);
  });

  it('a stalled event loop (1.5 s) in the subscriber is no broker failure', async () => {
    const b = await broker();
    let stallNextPing = false;
    // The stall starts right after a ping is written, before its PUBACK can be read.
    const connector: Connector = async (endpoint, options) => {
      const connection = await mqttConnector(endpoint, options);
      return {
        ...connection,
        publish: (topic, payload, qos) => {
          const sent = connection.publish(topic, payload, qos);
          if (stallNextPing && topic.startsWith('ping/')) {
            stallNextPing = false;
            busyLoop(1_500);
          }
          return sent;
        },
      };
    };
    const ids: string[] = [];
    const { sub, statuses } = autoscaler(b, ids, { connector, pingIntervalMs: 1_000, resubscribeIntervalMs: 2_000 });
    await waitFor(() => sub.links().a === 'up', 'subscriber up');
    stallNextPing = true;
    await waitFor(() => !stallNextPing, 'the stall');
    const pingsAfterStall = sub.counters.pingsSent;
    await sleep(3_000);
    expect(statuses.filter((s) => s.type !== 'connected')).toEqual([]);
    expect(sub.links().a).toBe('up');
    // Pinging on: the stalled ping was acknowledged after all.
    expect(sub.counters.pingsSent).toBeGreaterThanOrEqual(pingsAfterStall + 2);
  });

  it('a stalled event loop (1.5 s) in the publisher fails no broker over', async () => {
    const b = await broker();
    let stallNextPublish = false;
    const connector: Connector = async (endpoint, options) => {
      const connection = await mqttConnector(endpoint, options);
      return {
        ...connection,
        publish: (topic, payload, qos) => {
          const sent = connection.publish(topic, payload, qos);
          if (stallNextPublish) {
            stallNextPublish = false;
            busyLoop(1_500);
          }
          return sent;
        },
      };
    };
    const { publisher, statuses } = await spPublisher(b, { connector, republishIntervalMs: 1_000 });
    await waitFor(() => publisher.broker === 'a', 'publisher connected');
    stallNextPublish = true;
    await publisher.publish(numberedFault(1));
    await publisher.drained();
    await sleep(2_500);
    expect(statuses.filter((s) => s.type !== 'connected')).toEqual([]);
    expect(publisher.counters).toMatchObject({ sent: 1, acked: 1, retried: 0, replayed: 0 });
  });
});
