import { systemClock } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import {
  createEnvelope,
  decodePing,
  type Envelope,
  encodeEnvelope,
  encodePresenceAsk,
  topicFor,
} from '@faultline/protocol';
import { testMember } from '@faultline/protocol/testing';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type Connector, type MqttConnection, persistentClientId, SubscribeRefusedError } from './connection.js';
import type { MessagingStatus } from './messaging-status.js';
import { createSubscriber } from './subscriber.js';
import { FAKE_BROKER_PAIR, FakeBrokers, numberedFault } from './testing/index.js';

const TOPIC = topicFor('MemberFaultEvent');

function setup(brokers = new FakeBrokers(), connector: Connector = brokers.connector) {
  const received: Envelope[] = [];
  const statuses: MessagingStatus[] = [];
  const logger = createMemoryLogger();
  const subscriber = createSubscriber({
    brokers: FAKE_BROKER_PAIR,
    credentials: { username: 'u', password: 'p' },
    role: 'autoscaler',
    clientId: 'test',
    topics: ['summarized-health-stats/#', 'instance/status/#'],
    onEnvelope: (envelope) => void received.push(envelope),
    clock: systemClock,
    logger,
    connector,
  });
  subscriber.onStatus((s) => statuses.push(s));
  subscriber.start();
  return { brokers, subscriber, received, statuses, logger };
}

describe('resilient subscriber', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('holds both brokers and delivers an envelope that arrives through both once', async () => {
    const { brokers, subscriber, received, statuses } = setup();
    await vi.advanceTimersByTimeAsync(0);
    expect(subscriber.links()).toEqual({ a: 'up', b: 'up' });
    expect(statuses).toEqual([
      { type: 'connected', broker: 'a' },
      { type: 'connected', broker: 'b' },
    ]);
    const payload = encodeEnvelope(numberedFault(1));
    brokers.inject('a', TOPIC, payload);
    brokers.inject('b', TOPIC, payload);
    expect(received.map((e) => e.id)).toEqual(['fault-1']);
    expect(subscriber.counters).toMatchObject({ received: 2, delivered: 1, duplicates: 1 });
  });

  it("announces itself on subscribing, then pings each broker every 1 s, on its role's own ping topic", async () => {
    const { brokers, subscriber } = setup();
    await vi.advanceTimersByTimeAsync(0);
    for (const name of ['a', 'b']) expect(brokers.messages(name).map((m) => m.topic)).toEqual(['ping/autoscaler']);
    await vi.advanceTimersByTimeAsync(3_000);
    for (const name of ['a', 'b']) {
      expect(brokers.messages(name).map((m) => m.topic)).toEqual(Array(4).fill('ping/autoscaler'));
    }
    expect(subscriber.counters).toMatchObject({ pingsSent: 8, announcements: 2 });
  });

  it('refuses a role that is not a service role', () => {
    expect(() =>
      createSubscriber({
        brokers: FAKE_BROKER_PAIR,
        credentials: { username: 'u', password: 'p' },
        role: 'root' as never,
        clientId: 'x',
        topics: ['#'],
        onEnvelope: () => {},
      }),
    ).toThrow(
      expect.objectContaining({ code: 'FL_ERR_CONFIG_INVALID', issues: [expect.objectContaining({ key: 'role' })] }),
    );
  });

  it('dedupes by topic root and id: an agent publishing first under the SP id does not hide the SP envelope', async () => {
    const { brokers, subscriber, received } = setup();
    await vi.advanceTimersByTimeAsync(0);
    const fault = numberedFault(9);
    const member = testMember('m-1');
    const forged = createEnvelope('InstanceStartedEvent', member, { source: 'agent', id: fault.id });
    brokers.inject('a', topicFor('InstanceStartedEvent', 'm-1'), encodeEnvelope(forged));
    brokers.inject('a', TOPIC, encodeEnvelope(fault));
    brokers.inject('b', TOPIC, encodeEnvelope(fault));
    expect(received.map((e) => [e.type, e.id])).toEqual([
      ['InstanceStartedEvent', 'fault-9'],
      ['MemberFaultEvent', 'fault-9'],
    ]);
    expect(subscriber.counters).toMatchObject({ received: 3, delivered: 2, duplicates: 1 });
  });

  it('drops an instance status about another member than its topic names, counted as invalid', async () => {
    // Issue 12: a member could send InstanceActivated for any other member; the broker binds the
    // topic to the account, and the subscriber binds the payload to the topic.
    const { brokers, subscriber, received, logger } = setup();
    await vi.advanceTimersByTimeAsync(0);
    const forged = createEnvelope('InstanceActivatedEvent', testMember('victim'), { source: 'agent' });
    brokers.inject('a', topicFor('InstanceActivatedEvent', 'm-1'), encodeEnvelope(forged));
    expect(received).toEqual([]);
    expect(subscriber.counters).toMatchObject({ received: 1, droppedInvalid: 1, delivered: 0 });
    expect(logger.records.find((r) => r.event === 'subscriber.message_dropped')?.fields).toMatchObject({
      code: 'FL_ERR_ENVELOPE_INVALID',
      topic: 'instance/status/m-1/InstanceActivatedEvent',
    });
    const own = createEnvelope('InstanceActivatedEvent', testMember('m-1'), { source: 'agent' });
    brokers.inject('a', topicFor('InstanceActivatedEvent', 'm-1'), encodeEnvelope(own));
    expect(received.map((e) => e.id)).toEqual([own.id]);
  });

  it('drops an agent envelope that carries an epoch, counted as invalid', async () => {
    const { brokers, subscriber, received, logger } = setup();
    await vi.advanceTimersByTimeAsync(0);
    const member = testMember('m-1');
    const forged = {
      ...createEnvelope('InstanceStartedEvent', member, { source: 'agent' }),
      epoch: Number.MAX_SAFE_INTEGER,
    };
    brokers.inject('a', topicFor('InstanceStartedEvent', 'm-1'), Buffer.from(JSON.stringify(forged)));
    expect(received).toEqual([]);
    expect(subscriber.counters).toMatchObject({ received: 1, droppedInvalid: 1, delivered: 0 });
    expect(logger.records.find((r) => r.event === 'subscriber.message_dropped')?.fields).toMatchObject({
      code: 'FL_ERR_ENVELOPE_INVALID',
      topic: 'instance/status/m-1/InstanceStartedEvent',
    });
  });

  it('a late ping marks the broker down; it resubscribes after exactly 30 s, every 30 s until it succeeds', async () => {
    const { brokers, subscriber, statuses } = setup();
    await vi.advanceTimersByTimeAsync(500);
    brokers.set('a', 'hung'); // accepts nothing, answers nothing
    await vi.advanceTimersByTimeAsync(500); // t=1000: the ping to a goes out and is never acked
    await vi.advanceTimersByTimeAsync(999);
    expect(subscriber.links().a).toBe('up');
    await vi.advanceTimersByTimeAsync(1); // t=2000: unacknowledged within 1 s, judged one turn of the loop later
    expect(subscriber.links().a).toBe('up');
    await vi.advanceTimersByTimeAsync(1); // t=2001
    expect(subscriber.links()).toEqual({ a: 'down', b: 'up' });
    expect(statuses.at(-1)).toMatchObject({ type: 'broker-down', broker: 'a' });
    brokers.set('a', 'down');
    const connectsAtDown = brokers.connects.get('a');
    await vi.advanceTimersByTimeAsync(29_999);
    expect(brokers.connects.get('a')).toBe(connectsAtDown);
    await vi.advanceTimersByTimeAsync(1); // t=32001: first retry, refused
    expect(brokers.connects.get('a')).toBe((connectsAtDown ?? 0) + 1);
    expect(statuses.at(-1)).toMatchObject({ type: 'reconnect-failed', broker: 'a', retryInMs: 30_000 });
    brokers.set('a', 'up');
    await vi.advanceTimersByTimeAsync(29_999);
    expect(subscriber.links().a).toBe('down');
    await vi.advanceTimersByTimeAsync(1); // t=62001: second retry succeeds
    expect(subscriber.links().a).toBe('up');
    expect(statuses.at(-1)).toEqual({ type: 'resubscribed', broker: 'a' });
    brokers.inject('a', TOPIC, encodeEnvelope(numberedFault(2)));
    expect(subscriber.counters.delivered).toBe(1);
  });

  it('a closed connection marks the broker down at once, without waiting for a ping', async () => {
    const { brokers, subscriber, statuses } = setup();
    await vi.advanceTimersByTimeAsync(10);
    brokers.kill('b');
    expect(subscriber.links().b).toBe('down');
    expect(statuses.at(-1)).toMatchObject({
      type: 'broker-down',
      broker: 'b',
      reason: 'connection closed: connection reset',
    });
    await vi.advanceTimersByTimeAsync(30_000);
    expect(subscriber.links().b).toBe('up');
  });

  it('a hung connect counts as failed after the connect timeout', async () => {
    const brokers = new FakeBrokers();
    brokers.set('a', 'hung');
    const { subscriber, statuses } = setup(brokers);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(statuses).toContainEqual(expect.objectContaining({ type: 'reconnect-failed', broker: 'a' }));
    expect(subscriber.links().a).toBe('down');
  });

  it('drops garbage, wrong envelopes and oversized payloads with counters and log lines, and keeps running', async () => {
    const { brokers, subscriber, received, logger } = setup();
    await vi.advanceTimersByTimeAsync(0);
    brokers.inject('a', TOPIC, Buffer.from('not json'));
    brokers.inject('a', TOPIC, Buffer.from(JSON.stringify({ id: 'x', type: 'MemberFaultEvent' })));
    brokers.inject('a', topicFor('AverageLoadAverageEvent'), encodeEnvelope(numberedFault(3)));
    brokers.inject('a', TOPIC, Buffer.alloc(70_000, 0x7b));
    brokers.inject('a', TOPIC, encodeEnvelope(numberedFault(4)));
    expect(subscriber.counters).toMatchObject({ received: 5, droppedInvalid: 3, droppedOversized: 1, delivered: 1 });
    expect(received.map((e) => e.id)).toEqual(['fault-4']);
    // One record per broker, root and reason per 10 s; the next one says how many it left out.
    const dropped = () => logger.records.filter((r) => r.event === 'subscriber.message_dropped');
    expect(dropped().map((r) => r.fields.code)).toEqual(['FL_ERR_ENVELOPE_INVALID', 'FL_ERR_ENVELOPE_TOO_LARGE']);
    expect(dropped()[0]?.fields).toMatchObject({ broker: 'a', root: 'summarized-health-stats', suppressed: 0 });
    await vi.advanceTimersByTimeAsync(9_999);
    brokers.inject('a', TOPIC, Buffer.from('not json'));
    expect(dropped()).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    brokers.inject('a', TOPIC, Buffer.from('not json'));
    expect(dropped()).toHaveLength(3);
    expect(dropped()[2]?.fields).toMatchObject({ code: 'FL_ERR_ENVELOPE_INVALID', suppressed: 3 });
    expect(subscriber.counters).toMatchObject({ droppedInvalid: 5, droppedOversized: 1 });
  });

  it('logs a bounded reason, and keys log limits by known roots only (a hostile topic adds no key)', async () => {
    const { brokers, logger } = setup();
    await vi.advanceTimersByTimeAsync(0);
    for (let i = 0; i < 50; i++) brokers.inject('a', `summarized-health-stats/x${i}`, Buffer.from('not json'));
    const dropped = logger.records.filter((r) => r.event === 'subscriber.message_dropped');
    expect(dropped).toHaveLength(1);
    expect(dropped[0]?.fields).toMatchObject({ peer: 'a summarized-health-stats', reason: 'FL_ERR_ENVELOPE_INVALID' });
    expect(String(dropped[0]?.fields.detail).length).toBeLessThanOrEqual(1_024);
  });

  it('counts a failing handler and goes on', async () => {
    const brokers = new FakeBrokers();
    const subscriber = createSubscriber({
      brokers: [{ name: 'a', host: 'h', port: 1 }],
      credentials: { username: 'u', password: 'p' },
      role: 'observer',
      clientId: 't',
      topics: ['#'],
      onEnvelope: async () => {
        throw new Error('boom');
      },
      clock: systemClock,
      connector: brokers.connector,
    });
    subscriber.start();
    await vi.advanceTimersByTimeAsync(0);
    brokers.inject('a', TOPIC, encodeEnvelope(numberedFault(1)));
    brokers.inject('a', TOPIC, encodeEnvelope(numberedFault(2)));
    await vi.advanceTimersByTimeAsync(0);
    expect(subscriber.counters.handlerErrors).toBe(2);
    await subscriber.close();
    await subscriber.close();
  });
});

describe('resilient subscriber: subscriptions and sessions', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  const subscriberOn = (brokers: FakeBrokers, extra: { persistentSession?: boolean; password?: string } = {}) =>
    createSubscriber({
      brokers: FAKE_BROKER_PAIR,
      credentials: { username: 'autoscaler', password: extra.password ?? 'secret-1' },
      role: 'autoscaler',
      clientId: 'autoscaler',
      topics: ['summarized-health-stats/#'],
      onEnvelope: () => {},
      clock: systemClock,
      connector: brokers.connector,
      ...(extra.persistentSession === undefined ? {} : { persistentSession: extra.persistentSession }),
    });

  it('each connection is a subscription: its pings name it, and its Last Will on the ping topic ends it', async () => {
    const brokers = new FakeBrokers();
    const subscriber = subscriberOn(brokers);
    subscriber.start();
    await vi.advanceTimersByTimeAsync(2_000);
    const willOf = (n: number) => decodePing(brokers.connectOptions[n]?.options.will?.payload ?? Buffer.alloc(0));
    const [toA, toB] = brokers.connectOptions;
    expect(toA?.options.will?.topic).toBe('ping/autoscaler');
    expect(willOf(0)).toMatchObject({ clientId: 'autoscaler', gone: true });
    expect(willOf(0)?.sub).not.toBe(willOf(1)?.sub); // one per broker link
    expect(toB?.options.persistentSession).toBe(false);
    const pingSubs = () => brokers.messages('a').map((m) => decodePing(m.payload)?.sub);
    // Its announcement on subscribing, then its pings at 1 000 and 2 000.
    expect(pingSubs()).toEqual([willOf(0)?.sub, willOf(0)?.sub, willOf(0)?.sub]);
    brokers.kill('a');
    await vi.advanceTimersByTimeAsync(31_000);
    expect(subscriber.links().a).toBe('up');
    const again = brokers.connectOptions.findLast((c) => c.broker === 'a');
    const newSub = decodePing(again?.options.will?.payload ?? Buffer.alloc(0))?.sub;
    expect(newSub).toMatch(/^[0-9a-f]{16}$/);
    expect(newSub).not.toBe(willOf(0)?.sub);
    expect(pingSubs().at(-1)).toBe(newSub);
    await subscriber.close();
  });

  it('persistentSession: clean: false under a stable id, the same on every link and restart, unguessable without the password', async () => {
    const brokers = new FakeBrokers();
    const first = subscriberOn(brokers, { persistentSession: true });
    first.start();
    await vi.advanceTimersByTimeAsync(0);
    await first.close();
    const second = subscriberOn(brokers, { persistentSession: true });
    second.start();
    await vi.advanceTimersByTimeAsync(0);
    await second.close();
    const id = persistentClientId('autoscaler', { username: 'autoscaler', password: 'secret-1' });
    expect(id).toMatch(/^autoscaler-[0-9a-f]{12}$/);
    expect(brokers.connectOptions.map((c) => [c.broker, c.options.clientId, c.options.persistentSession])).toEqual([
      ['a', id, true],
      ['b', id, true],
      ['a', id, true],
      ['b', id, true],
    ]);
    expect(persistentClientId('autoscaler', { username: 'autoscaler', password: 'secret-2' })).not.toBe(id);
    expect(persistentClientId('a-much-longer-client-id', { username: 'u', password: 'p' })).toHaveLength(23);
  });
});

describe('resilient subscriber: presence asks', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  const ASK = encodePresenceAsk({ clientId: 'sp-1' });
  const pingsOn = (brokers: FakeBrokers, name: string) =>
    brokers
      .messages(name)
      .filter((m) => m.topic === 'ping/autoscaler')
      .map((m) => decodePing(m.payload));
  /** Hands `payload` on `topic` to the link's connection to `name`, whatever its filters (a broker that would not). */
  const deliver = (brokers: FakeBrokers, name: string, topic: string, payload: Buffer) =>
    (brokers.open(name)[0] as unknown as { deliver(topic: string, payload: Buffer): void }).deliver(topic, payload);

  it('reads the asks for its role on every link and answers one with a ping of that link at once', async () => {
    const { brokers, subscriber } = setup();
    await vi.advanceTimersByTimeAsync(0);
    for (const name of ['a', 'b']) {
      expect((brokers.open(name)[0] as unknown as { filters: string[] }).filters).toEqual([
        'summarized-health-stats/#',
        'instance/status/#',
        'presence/autoscaler/+',
      ]);
      // Its announcement on subscribing, under the subscription its Last Will names.
      const will = brokers.connectOptions.find((c) => c.broker === name)?.options.will?.payload as Buffer;
      expect(pingsOn(brokers, name)).toEqual([expect.objectContaining({ sub: decodePing(will)?.sub })]);
    }
    brokers.inject('a', 'presence/autoscaler/sp', ASK);
    expect(pingsOn(brokers, 'a')).toHaveLength(2);
    expect(pingsOn(brokers, 'a')[1]?.sub).toBe(pingsOn(brokers, 'a')[0]?.sub);
    expect(pingsOn(brokers, 'b')).toHaveLength(1);
    expect(subscriber.counters).toMatchObject({ asks: 1, asksThrottled: 0, asksInvalid: 0, announcements: 3 });
    expect(subscriber.counters).toMatchObject({ received: 0, droppedInvalid: 0 }); // an ask is no envelope
  });

  it('a flood of asks costs a few pings: the rest are counted, and logged at most once per 10 s per broker', async () => {
    const { brokers, subscriber, logger } = setup();
    await vi.advanceTimersByTimeAsync(0);
    for (let i = 0; i < 10_000; i++) brokers.inject('a', 'presence/autoscaler/php-m-1', ASK);
    // The announcement took one of the burst of 4: three answers at once, one more due at the end of the 100 ms gap.
    expect(pingsOn(brokers, 'a')).toHaveLength(4);
    await vi.advanceTimersByTimeAsync(100);
    expect(pingsOn(brokers, 'a')).toHaveLength(5);
    expect(subscriber.counters).toMatchObject({ asks: 10_000, asksThrottled: 9_996, announcements: 6 });
    const throttled = () => logger.records.filter((r) => r.event === 'subscriber.asks_throttled');
    expect(throttled()).toEqual([
      expect.objectContaining({
        level: 'warn',
        fields: expect.objectContaining({ broker: 'a', asker: 'php-m-1', minGapMs: 100, suppressed: 0 }),
      }),
    ]);
    // Flooding on: one more answer per 100 ms, one more log line per 10 s (the regular pings go on as well).
    for (let t = 0; t < 100; t++) {
      for (let i = 0; i < 100; i++) brokers.inject('a', 'presence/autoscaler/php-m-1', ASK);
      await vi.advanceTimersByTimeAsync(100);
    }
    const answers = subscriber.counters.announcements - 2; // the two links' announcements
    expect(answers).toBeGreaterThanOrEqual(100);
    expect(answers).toBeLessThanOrEqual(106);
    expect(throttled()).toHaveLength(2);
    expect(throttled()[1]?.fields.suppressed).toBeGreaterThan(9_000);
    expect(subscriber.links()).toEqual({ a: 'up', b: 'up' });
  });

  it('drops forged and malformed asks with a counter and a rate-limited log line, never a crash, and goes on answering', async () => {
    const { brokers, subscriber, logger } = setup();
    await vi.advanceTimersByTimeAsync(0);
    const bad: [string, Buffer][] = [
      ['presence/sp/sp', ASK], // an ask for another role (its broker would not deliver it)
      ['presence/agent/sp', ASK],
      ['presence/autoscaler', ASK], // no asker
      ['presence/autoscaler/sp/x', ASK],
      ['presence/autoscaler/%sp', ASK],
      [`presence/autoscaler/${'%'.repeat(5_000)}`, ASK],
      ['presence/autoscaler/sp', Buffer.from('garbage')],
      ['presence/autoscaler/sp', Buffer.from('{"clientId":7}')],
      ['presence/autoscaler/sp', Buffer.alloc(0)],
      ['presence/autoscaler/sp', Buffer.alloc(1 << 20, 0x7b)],
    ];
    for (const [topic, payload] of bad) deliver(brokers, 'a', topic, payload);
    expect(subscriber.counters).toMatchObject({ asksInvalid: bad.length, asks: 0, announcements: 2 });
    expect(pingsOn(brokers, 'a')).toHaveLength(1);
    const dropped = logger.records.filter((r) => r.event === 'subscriber.ask_invalid');
    expect(dropped).toEqual([
      expect.objectContaining({
        level: 'warn',
        fields: expect.objectContaining({ broker: 'a', topic: 'presence/sp/sp', asksInvalid: 1 }),
      }),
    ]);
    expect(logger.records.some((r) => r.event === 'subscriber.message_dropped')).toBe(false);
    await vi.advanceTimersByTimeAsync(10_000);
    deliver(brokers, 'a', `presence/autoscaler/${'%'.repeat(5_000)}`, ASK);
    const [, second] = logger.records.filter((r) => r.event === 'subscriber.ask_invalid');
    expect(String(second?.fields.topic).length).toBeLessThanOrEqual(256);
    expect(second?.fields.suppressed).toBe(bad.length - 1);
    brokers.inject('a', 'presence/autoscaler/sp', ASK);
    expect(subscriber.counters).toMatchObject({ asks: 1, asksInvalid: bad.length + 1 });
    expect(subscriber.links()).toEqual({ a: 'up', b: 'up' });
  });

  it('a broker that refuses the asks (an older ACL) keeps the link up, announcing and pinging as before', async () => {
    const brokers = new FakeBrokers();
    const refusing: Connector = async (endpoint, options) => {
      const connection = await brokers.connector(endpoint, options);
      const refused: MqttConnection = {
        ...connection,
        endpoint,
        publish: (topic, payload, qos) => connection.publish(topic, payload, qos),
        subscribe: (filters) =>
          filters.some((f) => f.startsWith('presence/'))
            ? Promise.reject(new SubscribeRefusedError(endpoint.name, filters))
            : connection.subscribe(filters),
        onMessage: (listener) => connection.onMessage(listener),
        onClose: (listener) => connection.onClose(listener),
        close: () => connection.close(),
      };
      return refused;
    };
    const { subscriber, logger, statuses } = setup(brokers, refusing);
    await vi.advanceTimersByTimeAsync(0);
    expect(subscriber.links()).toEqual({ a: 'up', b: 'up' });
    expect(statuses.map((s) => s.type)).toEqual(['connected', 'connected']);
    expect(logger.records.filter((r) => r.event === 'subscriber.asks_refused').map((r) => r.fields.broker)).toEqual([
      'a',
      'b',
    ]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(pingsOn(brokers, 'a')).toHaveLength(2); // its announcement, then its ping at 1 000
  });
});
