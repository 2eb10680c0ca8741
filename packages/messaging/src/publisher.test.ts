import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { type Clock, systemClock } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import { CLIENT_IDS, decodeEnvelope, decodePing, decodePresenceAsk, encodePing } from '@faultline/protocol';
import { memberSummary } from '@faultline/protocol/testing';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Connector, MqttConnection } from './connection.js';
import type { MessagingStatus } from './messaging-status.js';
import { createPublisher } from './publisher.js';
import type { PublisherOptions } from './publisher-options.js';
import { createSubscriber } from './subscriber.js';
import { FAKE_BROKER_PAIR, FakeBrokers, numberedFault } from './testing/index.js';

function setup(brokers: FakeBrokers, extra: Partial<PublisherOptions> = {}) {
  const statuses: MessagingStatus[] = [];
  const publisher = createPublisher({
    brokers: FAKE_BROKER_PAIR,
    credentials: { username: 'u', password: 'p' },
    clientId: 'sp-1',
    outboxFile: path.join(mkdtempSync(path.join(os.tmpdir(), 'faultline-pub-')), 'sp-1.outbox'),
    clock: systemClock,
    connector: brokers.connector,
    ...extra,
  });
  publisher.onStatus((s) => statuses.push(s));
  return { publisher, statuses };
}

/** A fake broker pair, both down (an outage from the start). */
function brokersDown(): FakeBrokers {
  const brokers = new FakeBrokers();
  brokers.set('a', 'down');
  brokers.set('b', 'down');
  return brokers;
}

/** The envelopes published on broker `name`, pings and presence asks left out. */
const ids = (brokers: FakeBrokers, name: string) =>
  brokers
    .messages(name)
    .filter((m) => !m.topic.startsWith('ping/') && !m.topic.startsWith('presence/'))
    .map((m) => {
      const r = decodeEnvelope(m.payload);
      return r.ok ? r.value.id : 'invalid';
    });

// Real file I/O (the outbox) interleaves with fake time: let it settle.
async function settle(ms = 0) {
  for (let i = 0; i < 5; i++) {
    await vi.advanceTimersByTimeAsync(ms / 5);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe('resilient publisher', () => {
  beforeEach(() =>
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date', 'performance'] }),
  );
  afterEach(() => vi.useRealTimers());

  it('sends QoS 1 and empties the outbox on PUBACK', async () => {
    const brokers = new FakeBrokers();
    const { publisher } = setup(brokers);
    await publisher.start();
    await settle();
    for (let i = 1; i <= 3; i++) await publisher.publish(numberedFault(i));
    await publisher.drained();
    expect(ids(brokers, 'a')).toEqual(['fault-1', 'fault-2', 'fault-3']);
    expect(publisher.counters).toMatchObject({ published: 3, sent: 3, acked: 3, retried: 0 });
    expect(publisher.pending).toBe(0);
    await publisher.close();
  });

  it('a fact published again under its id while its copy waits is not written again; its callback goes with that copy', async () => {
    const brokers = brokersDown();
    const { publisher } = setup(brokers);
    await publisher.start();
    await settle();
    // Both brokers away: the SP re-announces the same fault at every tick, with the id of its first emission.
    const acked: number[] = [];
    for (let tick = 0; tick < 100; tick++)
      await publisher.publish(numberedFault(1), { onAcked: () => acked.push(tick) });
    await publisher.publish(numberedFault(2));
    expect(publisher.pending).toBe(2);
    expect(publisher.counters).toMatchObject({ published: 2, repeatsWaiting: 99 });
    brokers.set('a', 'up');
    await settle(60_000);
    await publisher.drained();
    expect(ids(brokers, 'a')).toEqual(['fault-1', 'fault-2']);
    // The first copy's callback and those of the first 8 repeats; the others said nothing new.
    expect(acked).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    // Once acknowledged, the same id is a new write (a re-announce meant for a broker that lost it).
    await publisher.publish(numberedFault(1));
    await publisher.drained();
    expect(ids(brokers, 'a')).toEqual(['fault-1', 'fault-2', 'fault-1']);
    expect(publisher.counters).toMatchObject({ published: 3, repeatsWaiting: 99 });
    await publisher.close();
  });

  it('a restarted publisher knows the facts its outbox kept: a repeat of one is not written again', async () => {
    const brokers = brokersDown();
    const outboxFile = path.join(mkdtempSync(path.join(os.tmpdir(), 'faultline-pub-')), 'sp-1.outbox');
    const first = setup(brokers, { outboxFile }).publisher;
    await first.start();
    await settle();
    await first.publish(numberedFault(1));
    await first.close();
    // The node restarts, still without a broker, and re-announces the fault.
    const second = setup(brokers, { outboxFile }).publisher;
    await second.start();
    await settle();
    await second.publish(numberedFault(1));
    expect(second.pending).toBe(1);
    expect(second.counters).toMatchObject({ published: 0, repeatsWaiting: 1 });
    await second.close();
  });

  it('fails over to broker b at once when a dies, resending what a had not acked', async () => {
    const brokers = new FakeBrokers();
    const { publisher, statuses } = setup(brokers);
    await publisher.start();
    await settle();
    await publisher.publish(numberedFault(1));
    await publisher.drained();
    brokers.set('a', 'hung');
    await publisher.publish(numberedFault(2)); // written to a, never acked
    brokers.set('a', 'down'); // a crashes
    await settle();
    expect(publisher.broker).toBe('b');
    await publisher.publish(numberedFault(3));
    await publisher.drained();
    // fault-1 was acknowledged by a, which may not have delivered it before it died: replayed too, behind
    // what was pending and what came since (a fresh fault is not held up by seconds of resends).
    expect(ids(brokers, 'b')).toEqual(['fault-2', 'fault-1', 'fault-3']);
    expect(statuses).toContainEqual({ type: 'republished', broker: 'b', count: 2 });
    expect(publisher.counters).toMatchObject({ retried: 1, replayed: 1 });
    await publisher.close();
  });

  it('after a failover sends what is pending before it replays what the lost broker acknowledged', async () => {
    const brokers = new FakeBrokers();
    const { publisher } = setup(brokers);
    await publisher.start();
    await settle();
    for (let i = 1; i <= 3; i++) await publisher.publish(numberedFault(i));
    await publisher.drained();
    brokers.set('b', 'down');
    brokers.set('a', 'down');
    await settle();
    await publisher.publish(numberedFault(4)); // a fault declared while no broker was there
    brokers.set('b', 'up');
    await settle(60_000);
    await publisher.drained();
    expect(ids(brokers, 'b')).toEqual(['fault-4', 'fault-1', 'fault-2', 'fault-3']);
    expect(publisher.counters).toMatchObject({ replayed: 3 });
    await publisher.close();
  });

  it('keeps messages while both brokers are down and republishes after exactly 60 s, in order', async () => {
    const brokers = brokersDown();
    const { publisher, statuses } = setup(brokers);
    await publisher.start();
    await settle();
    expect(statuses.at(-1)).toMatchObject({ type: 'reconnect-failed', retryInMs: 60_000 });
    for (let i = 1; i <= 5; i++) await publisher.publish(numberedFault(i));
    brokers.set('a', 'up');
    await settle(59_990);
    expect(brokers.messages('a')).toHaveLength(0);
    await settle(10); // t = 60 000
    await publisher.drained();
    expect(ids(brokers, 'a')).toEqual(['fault-1', 'fault-2', 'fault-3', 'fault-4', 'fault-5']);
    expect(statuses).toContainEqual({ type: 'republished', broker: 'a', count: 5 });
    await publisher.close();
  });

  it('fails over from a broker that keeps a message unacknowledged for a whole interval', async () => {
    const brokers = new FakeBrokers();
    const { publisher, statuses } = setup(brokers);
    await publisher.start();
    await settle();
    brokers.set('a', 'hung');
    await publisher.publish(numberedFault(1));
    await settle(59_000);
    expect(publisher.broker).toBe('a');
    await settle(1_005); // the tick at 60 000, and its verdict one turn of the loop later
    await publisher.drained();
    expect(statuses).toContainEqual(
      expect.objectContaining({ type: 'broker-down', broker: 'a', reason: 'no PUBACK within 60000 ms' }),
    );
    expect(ids(brokers, 'b')).toEqual(['fault-1']);
    await publisher.close();
  });

  it('a restarted publisher republishes what its outbox still holds (the kill -9 case is an integration test)', async () => {
    const brokers = brokersDown();
    const outboxFile = path.join(mkdtempSync(path.join(os.tmpdir(), 'faultline-pub-')), 'sp-1.outbox');
    const first = setup(brokers, { outboxFile });
    await first.publisher.start();
    await settle();
    for (let i = 1; i <= 4; i++) await first.publisher.publish(numberedFault(i));
    await first.publisher.close(); // stopping never drops what is pending
    brokers.set('b', 'up');
    const second = setup(brokers, { outboxFile });
    await second.publisher.start();
    await settle();
    await second.publisher.drained();
    expect(second.statuses[0]).toEqual({ type: 'outbox-recovered', count: 4 });
    expect(ids(brokers, 'b')).toEqual(['fault-1', 'fault-2', 'fault-3', 'fault-4']);
    await second.publisher.close();
  });

  it('refuses an invalid envelope with a counter, keeping the outbox clean', async () => {
    const brokers = new FakeBrokers();
    const { publisher } = setup(brokers);
    await publisher.start();
    const bad = { ...numberedFault(1), data: { reason: 'bored' } } as never;
    await expect(publisher.publish(bad)).rejects.toMatchObject({ code: 'FL_ERR_ENVELOPE_INVALID' });
    expect(publisher.counters.droppedInvalid).toBe(1);
    expect(publisher.pending).toBe(0);
    await publisher.close();
  });

  it('refuses an envelope over maxMessageBytes (every subscriber would drop it) with a counter and a log line', async () => {
    const brokers = new FakeBrokers();
    const logger = createMemoryLogger();
    const { publisher } = setup(brokers, { maxMessageBytes: 4_096, logger });
    await publisher.start();
    await settle();
    const members = Array.from({ length: 100 }, (_, i) => ({ memberId: `${'m'.repeat(40)}-${i}`, value: i }));
    const big = memberSummary(members, 1);
    await expect(publisher.publish(big)).rejects.toMatchObject({ code: 'FL_ERR_ENVELOPE_TOO_LARGE' });
    expect(publisher.counters).toMatchObject({ published: 0, droppedOversized: 1, droppedInvalid: 0 });
    expect(publisher.pending).toBe(0);
    expect(logger.records.filter((r) => r.event === 'publisher.envelope_too_large')).toEqual([
      expect.objectContaining({
        level: 'error',
        fields: expect.objectContaining({ id: big.id, type: big.type, maxMessageBytes: 4_096 }),
      }),
    ]);
    // What fits is published as ever.
    await publisher.publish(numberedFault(1));
    await publisher.drained();
    expect(ids(brokers, 'a')).toEqual(['fault-1']);
    await publisher.close();
  });

  it('refuses an empty broker list, and a publish before start()', async () => {
    expect(() => setup(new FakeBrokers(), { brokers: [] })).toThrow(
      expect.objectContaining({ code: 'FL_ERR_CONFIG_INVALID', issues: [expect.objectContaining({ key: 'brokers' })] }),
    );
    const { publisher } = setup(new FakeBrokers());
    await expect(publisher.publish(numberedFault(1))).rejects.toMatchObject({ code: 'FL_ERR_NOT_STARTED' });
    expect(publisher.counters.published).toBe(0);
  });

  describe('awaiting subscribers (a restarted broker keeps no subscriptions)', () => {
    const subscriberOn = (brokers: FakeBrokers, names: string[], received: string[]) =>
      createSubscriber({
        brokers: names.map((name, i) => ({ name, host: 'h', port: i })),
        credentials: { username: 'u', password: 'p' },
        role: 'autoscaler',
        clientId: CLIENT_IDS.autoscaler,
        topics: ['summarized-health-stats/#'],
        onEnvelope: (e) => void received.push(e.id),
        clock: systemClock,
        connector: brokers.connector,
      });

    it('holds messages until the subscriber pings on that broker, then sends them in order', async () => {
      const brokers = new FakeBrokers();
      const { publisher } = setup(brokers, { awaitSubscribers: [CLIENT_IDS.autoscaler] });
      await publisher.start();
      await settle();
      await publisher.publish(numberedFault(1));
      await publisher.publish(numberedFault(2));
      await settle(5_000);
      expect(ids(brokers, 'a')).toEqual([]);
      const received: string[] = [];
      const subscriber = subscriberOn(brokers, ['a', 'b'], received);
      subscriber.start();
      await settle(1_000); // its first ping
      await publisher.drained();
      expect(received).toEqual(['fault-1', 'fault-2']);
      await subscriber.close();
      await publisher.close();
    });

    it('connecting to a broker where the subscriber is already subscribed, sends within ms, not at its next ping', async () => {
      const brokers = new FakeBrokers();
      const received: string[] = [];
      const subscriber = subscriberOn(brokers, ['a', 'b'], received);
      subscriber.start();
      await settle(1_500); // subscribed on both, pinged at 1 000: its next ping is due at 2 000
      const { publisher } = setup(brokers, { awaitSubscribers: [CLIENT_IDS.autoscaler] });
      await publisher.start();
      await publisher.publish(numberedFault(1));
      await settle(10);
      expect(received).toEqual(['fault-1']);
      await subscriber.close();
      await publisher.close();
    });

    it('after its broker dies, sends through the other at once: no waiting for the ping cycle there', async () => {
      const brokers = new FakeBrokers();
      const received: string[] = [];
      const subscriber = subscriberOn(brokers, ['a', 'b'], received);
      subscriber.start();
      await settle(1_500);
      const { publisher } = setup(brokers, { awaitSubscribers: [CLIENT_IDS.autoscaler] });
      await publisher.start();
      await publisher.publish(numberedFault(1));
      await settle(1_000); // t = 2 500: whatever way it learnt, the subscriber is present on a
      expect(received).toEqual(['fault-1']);
      brokers.kill('a'); // a crash: the next ping of b's link is due at 3 000
      await publisher.publish(numberedFault(2));
      await settle(10);
      expect(publisher.broker).toBe('b');
      expect(received).toEqual(['fault-1', 'fault-2']);
      await subscriber.close();
      await publisher.close();
    });

    it('asks the awaited role on each (re)connection, under its own account, at QoS 0, once it watches the pings', async () => {
      const brokers = new FakeBrokers();
      const calls: string[] = [];
      const recording: Connector = async (endpoint, options) => {
        const connection = await brokers.connector(endpoint, options);
        return {
          ...connection,
          endpoint,
          publish: (topic, payload, qos) => {
            calls.push(`${endpoint.name} publish ${topic} qos ${qos}`);
            return connection.publish(topic, payload, qos);
          },
          subscribe: (filters) => {
            calls.push(`${endpoint.name} subscribe ${filters.join(',')}`);
            return connection.subscribe(filters);
          },
          onMessage: (listener) => connection.onMessage(listener),
          onClose: (listener) => connection.onClose(listener),
          close: () => connection.close(),
        };
      };
      const { publisher } = setup(brokers, {
        awaitSubscribers: [CLIENT_IDS.autoscaler],
        connector: recording,
        credentials: { username: 'sp-account', password: 'p' },
      });
      await publisher.start();
      await settle();
      brokers.kill('a');
      await settle();
      expect(calls).toEqual([
        'a subscribe ping/autoscaler',
        'a publish presence/autoscaler/sp-account qos 0',
        'b subscribe ping/autoscaler',
        'b publish presence/autoscaler/sp-account qos 0',
      ]);
      expect(decodePresenceAsk(brokers.messages('b')[0]?.payload as Buffer)).toEqual({ clientId: 'sp-1' });
      expect(publisher.counters.asksSent).toBe(2);
      await publisher.close();
    });

    it('stops asking a broker that closes the connection right after each ask (an older aedes ACL), and settles there', async () => {
      const brokers = new FakeBrokers();
      // Refuses the ask as an aedes without the presence ACL does: it closes the connection.
      const closesOnAsk: Connector = async (endpoint, options) => {
        const connection = await brokers.connector(endpoint, options);
        return {
          ...connection,
          endpoint,
          publish: (topic, payload, qos) => {
            if (topic.startsWith('presence/')) queueMicrotask(() => brokers.drop(connection));
            return connection.publish(topic, payload, qos);
          },
          subscribe: (filters) => connection.subscribe(filters),
          onMessage: (listener) => connection.onMessage(listener),
          onClose: (listener) => connection.onClose(listener),
          close: () => connection.close(),
        };
      };
      const logger = createMemoryLogger();
      const { publisher } = setup(brokers, {
        awaitSubscribers: [CLIENT_IDS.autoscaler],
        connector: closesOnAsk,
        logger,
      });
      await publisher.start();
      await settle();
      // a, b, a, b: twice each in a row, then no more asks; it stays on a.
      expect([brokers.connects.get('a'), brokers.connects.get('b')]).toEqual([3, 2]);
      expect(publisher.broker).toBe('a');
      expect(publisher.counters.asksSent).toBe(4);
      expect(logger.records.filter((r) => r.event === 'publisher.asks_suspended').map((r) => r.fields.broker)).toEqual([
        'a',
        'b',
      ]);
      // Its subscribers are seen by their pings, as before asks.
      await publisher.publish(numberedFault(1));
      brokers.inject('a', 'ping/autoscaler', encodePing({ clientId: 'autoscaler', seq: 1, sub: 's1' }));
      await settle();
      await publisher.drained();
      expect(ids(brokers, 'a')).toEqual(['fault-1']);
      // Ten minutes on, it tries again (the broker may have been upgraded meanwhile).
      await settle(10 * 60_000);
      const asked = publisher.counters.asksSent;
      brokers.kill('a');
      await settle();
      expect(publisher.counters.asksSent).toBeGreaterThan(asked);
      await publisher.close();
    });

    it("counts a subscriber present only from pings on its role's topic, never from a ping that claims its name", async () => {
      // Issue 12: an agent that wrote `clientId: 'autoscaler'` into a ping made the SP send into a broker without the autoscaler.
      const brokers = new FakeBrokers();
      const { publisher } = setup(brokers, { awaitSubscribers: [CLIENT_IDS.autoscaler] });
      await publisher.start();
      await settle();
      await publisher.publish(numberedFault(1));
      for (let seq = 1; seq <= 5; seq++) {
        const claim = encodePing({ clientId: CLIENT_IDS.autoscaler, seq });
        brokers.inject('a', 'ping', claim);
        brokers.inject('a', 'ping/agent', claim);
        brokers.inject('a', 'ping/observer', claim);
        await settle(1_000);
      }
      expect(ids(brokers, 'a')).toEqual([]);
      expect(publisher.pending).toBe(1);
      // The autoscaler's own ping, on ping/autoscaler (which only its account may publish), counts.
      brokers.inject('a', 'ping/autoscaler', encodePing({ clientId: 'anything', seq: 1 }));
      await settle();
      await publisher.drained();
      expect(ids(brokers, 'a')).toEqual(['fault-1']);
      await publisher.close();
    });

    it('refuses to await a name that is not a service role', () => {
      expect(() => setup(new FakeBrokers(), { awaitSubscribers: ['autoscaler', 'autoscaler-1'] })).toThrow(
        expect.objectContaining({
          code: 'FL_ERR_CONFIG_INVALID',
          issues: [expect.objectContaining({ key: 'awaitSubscribers' })],
        }),
      );
    });

    it('fails over to the broker where the subscriber is, after one republish interval', async () => {
      const brokers = new FakeBrokers();
      const received: string[] = [];
      const subscriber = subscriberOn(brokers, ['b'], received);
      subscriber.start();
      const { publisher, statuses } = setup(brokers, { awaitSubscribers: [CLIENT_IDS.autoscaler] });
      await publisher.start();
      await settle();
      expect(publisher.broker).toBe('a');
      await publisher.publish(numberedFault(7));
      await settle(60_000);
      await settle(2_000); // the subscriber's next ping, now seen on b
      await publisher.drained();
      expect(statuses).toContainEqual(expect.objectContaining({ type: 'broker-down', broker: 'a' }));
      expect(publisher.broker).toBe('b');
      expect(received).toEqual(['fault-7']);
      await subscriber.close();
      await publisher.close();
    });
  });
});

describe('resilient publisher: acknowledged, and judged on time it had', () => {
  beforeEach(() =>
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date', 'performance'] }),
  );
  afterEach(() => vi.useRealTimers());

  /** One broker whose PUBACKs the test delivers, by hand. */
  const manualBroker = () => {
    const acks: (() => void)[] = [];
    const connector: Connector = async (endpoint) => {
      const connection: MqttConnection = {
        endpoint,
        publish: () => new Promise<void>((resolve) => acks.push(resolve)),
        subscribe: async () => {},
        onMessage: () => {},
        onClose: () => {},
        close: () => {},
      };
      return connection;
    };
    const ackAll = () => {
      for (const ack of acks.splice(0)) ack();
    };
    return { connector, ackAll };
  };
  const stallingClock = () => {
    let stalled = 0;
    const clock: Clock = { ...systemClock, monotonicNow: () => systemClock.monotonicNow() + stalled };
    const stall = (ms: number): void => {
      stalled += ms;
    };
    return { clock, stall };
  };

  it('onAcked fires on the PUBACK, not when publish() resolves (durable)', async () => {
    const brokers = new FakeBrokers();
    const { publisher } = setup(brokers, { awaitSubscribers: [CLIENT_IDS.autoscaler] });
    await publisher.start();
    await settle();
    const acked: string[] = [];
    await publisher.publish(numberedFault(1), { onAcked: () => acked.push('fault-1') });
    await publisher.publish(numberedFault(2)); // no callback: as ever
    await settle(5_000);
    expect(acked).toEqual([]); // durable, held: nobody to send it to
    brokers.inject('a', 'ping/autoscaler', encodePing({ clientId: 'autoscaler', seq: 1, sub: 's1' }));
    await settle();
    await publisher.drained();
    expect(acked).toEqual(['fault-1']);
    await publisher.close();
  });

  it('a tick that comes late after a stall fails no broker over for a PUBACK that waited unread', async () => {
    const { connector, ackAll } = manualBroker();
    const { clock, stall } = stallingClock();
    const { publisher, statuses } = setup(new FakeBrokers(), { connector, clock });
    await publisher.start();
    await settle();
    await publisher.publish(numberedFault(1));
    await settle(30_000);
    stall(45_000); // the PUBACK arrives while the process is frozen 45 s
    await vi.advanceTimersToNextTimerAsync(); // the tick due at 60 000: 105 s after the last one
    ackAll(); // the socket is read
    await settle();
    await publisher.drained();
    expect(statuses.filter((s) => s.type === 'broker-down')).toEqual([]);
    expect(publisher.broker).toBe('a');
    await publisher.close();
  });

  it('a PUBACK read right after an on-time tick counts: the verdict comes one turn of the loop later', async () => {
    const { connector, ackAll } = manualBroker();
    const { publisher, statuses } = setup(new FakeBrokers(), { connector });
    await publisher.start();
    await settle();
    await publisher.publish(numberedFault(1));
    await vi.advanceTimersToNextTimerAsync(); // t=60 000: the message has waited a whole interval
    ackAll(); // but its PUBACK was in the socket, read before the next timer
    await settle(10);
    await publisher.drained();
    expect(statuses.filter((s) => s.type === 'broker-down')).toEqual([]);
    await publisher.close();
  });

  describe("a subscriber's subscriptions (pings carry them, its Last Will ends them)", () => {
    const autoscalerOn = (brokers: FakeBrokers, received: string[]) =>
      createSubscriber({
        brokers: [{ name: 'a', host: 'h', port: 1 }],
        credentials: { username: 'u', password: 'p' },
        role: 'autoscaler',
        clientId: CLIENT_IDS.autoscaler,
        topics: ['summarized-health-stats/#'],
        onEnvelope: (e) => void received.push(e.id),
        clock: systemClock,
        connector: brokers.connector,
        resubscribeIntervalMs: 5_000,
      });

    it('holds messages from the moment the broker says the link died until a ping of its next subscription', async () => {
      const brokers = new FakeBrokers();
      const received: string[] = [];
      const subscriber = autoscalerOn(brokers, received);
      subscriber.start();
      const logger = createMemoryLogger();
      const { publisher } = setup(brokers, { awaitSubscribers: [CLIENT_IDS.autoscaler], logger });
      await publisher.start();
      await settle(1_000);
      await publisher.publish(numberedFault(1));
      await publisher.drained();
      expect(received).toEqual(['fault-1']);
      const [link] = brokers
        .open('a')
        .filter((c) => (c as unknown as { filters: string[] }).filters.includes('summarized-health-stats/#'));
      const firstSub = pingSubs(brokers)[0];
      brokers.drop(link as MqttConnection); // the broker publishes its will
      await settle();
      expect(logger.events()).toContain('publisher.subscriber_gone');
      await publisher.publish(numberedFault(2)); // within the presence window: held, not sent into the void
      // A late copy of a ping of the ended subscription does not bring it back.
      brokers.inject('a', 'ping/autoscaler', encodePing({ clientId: 'autoscaler', seq: 99, sub: firstSub as string }));
      await settle(1_000);
      expect(faultsOn(brokers)).toEqual(['fault-1']);
      expect(publisher.pending).toBe(1);
      await settle(5_000); // the link resubscribes and pings under a new subscription
      await publisher.drained();
      expect(received).toEqual(['fault-1', 'fault-2']);
      expect(new Set(pingSubs(brokers)).size).toBe(2);
      await subscriber.close();
      await publisher.close();
    });

    it('drops a malformed ping or will with a counter and a log line, and keeps working', async () => {
      const brokers = new FakeBrokers();
      const logger = createMemoryLogger();
      const { publisher } = setup(brokers, { awaitSubscribers: [CLIENT_IDS.autoscaler], logger });
      await publisher.start();
      await settle();
      await publisher.publish(numberedFault(1));
      for (const bad of [
        Buffer.from('{"clientId":"autoscaler","seq":1,"sub":"../../x"}'),
        Buffer.from('{"clientId":"autoscaler","seq":1,"gone":true}'),
        Buffer.from('{"clientId":"autoscaler","seq":1,"sub":"s1","gone":"yes"}'),
        Buffer.from('garbage'),
      ]) {
        brokers.inject('a', 'ping/autoscaler', bad);
      }
      await settle(1_000);
      expect(publisher.counters.pingsInvalid).toBe(4);
      expect(logger.records.filter((r) => r.event === 'publisher.ping_invalid')).toHaveLength(1);
      expect(publisher.pending).toBe(1);
      brokers.inject('a', 'ping/autoscaler', encodePing({ clientId: 'autoscaler', seq: 1 })); // an older client
      await settle();
      await publisher.drained();
      expect(ids(brokers, 'a')).toEqual(['fault-1']);
      await publisher.close();
    });
  });
});

/** The envelopes published on broker a, pings and presence asks left out. */
function faultsOn(brokers: FakeBrokers): string[] {
  return ids(brokers, 'a');
}

/** The subscriptions named by the pings on broker a, in order of first appearance. */
function pingSubs(brokers: FakeBrokers): string[] {
  const subs = brokers
    .messages('a')
    .filter((m) => m.topic === 'ping/autoscaler')
    .map((m) => decodePing(m.payload)?.sub ?? '');
  return [...new Set(subs)];
}

/*
 * Issue "Performance": a summary part lists 1 000 members; what waits for the
 * outbox's write (an fsync, milliseconds to seconds) is its bytes, not the
 * envelope, which a tick's hundreds of parts outlived into the old generation.
 */
describe('publisher memory', () => {
  it('a publish that cannot even be read is a rejection, counted, never a throw at the caller', async () => {
    const { publisher } = setup(new FakeBrokers());
    await publisher.start();
    let outcome: Promise<void> | undefined;
    expect(() => {
      outcome = publisher.publish(undefined as never);
    }).not.toThrow();
    await expect(outcome).rejects.toThrow();
    expect(publisher.counters.droppedInvalid).toBe(1);
    await publisher.close();
  });

  it('an envelope being written to the outbox is held by nothing but its caller', async () => {
    const brokers = new FakeBrokers();
    const { publisher } = setup(brokers);
    await publisher.start();
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    let durable: Promise<void> = Promise.resolve();
    const sent = (() => {
      const envelope = numberedFault(1);
      durable = publisher.publish(envelope);
      return new WeakRef(envelope);
    })();
    let written = false;
    void durable.then(() => {
      written = true;
    });
    await new Promise((resolve) => setImmediate(resolve)); // a WeakRef keeps its target through the turn it is made in
    gc();
    expect(written).toBe(false); // the write and its fsync are still under way
    expect(sent.deref()).toBeUndefined();
    await durable;
    expect(publisher.counters.published).toBe(1);
    await publisher.close();
  });
});
