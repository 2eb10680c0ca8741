import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createMemoryLogger } from '@faultline/core/testing';
import { CLIENT_IDS, encodeEnvelope, topicFor } from '@faultline/protocol';
import { type BrokerKind, mosquittoAvailable, startBroker, type TestBroker } from '@faultline/test-support';
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { createPublisher, createSubscriber, type MessagingStatus } from '../src/index.js';
import { numberedFault } from '../src/testing/index.js';
import { credentials, endpoints, waitFor } from './helpers.js';

const kinds: BrokerKind[] = mosquittoAvailable() ? ['aedes', 'mosquitto'] : ['aedes'];
const TOPIC = topicFor('MemberFaultEvent');

describe.each(kinds)('bad input and refused credentials (%s)', (kind) => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => {});
  });

  const broker = async (): Promise<TestBroker> => {
    const b = await startBroker({ kind, name: 'a' });
    cleanups.push(() => b.stop());
    return b;
  };

  /** The autoscaler's subscriber on `b`, up. */
  const autoscaler = async (b: TestBroker, ids: string[], logger = createMemoryLogger()) => {
    const sub = createSubscriber({
      brokers: endpoints([b]),
      credentials: credentials('autoscaler'),
      role: 'autoscaler',
      clientId: CLIENT_IDS.autoscaler,
      topics: ['summarized-health-stats/#'],
      onEnvelope: (e) => void ids.push(e.id),
      logger,
      pingIntervalMs: 200,
      resubscribeIntervalMs: 500,
    });
    cleanups.push(() => sub.close());
    sub.start();
    await waitFor(() => sub.links().a === 'up', 'subscriber up');
    return sub;
  };

  it('drops garbage, wrong envelopes and oversized payloads with counters, and keeps delivering', async () => {
    const b = await broker();
    const ids: string[] = [];
    const logger = createMemoryLogger();
    const sub = await autoscaler(b, ids, logger);

    const raw = await mqtt.connectAsync({ host: b.host, port: b.port, protocolVersion: 4, ...credentials('sp') });
    raw.on('error', () => {});
    cleanups.push(() => raw.endAsync());
    const garbage: Buffer[] = [
      Buffer.from([0xff, 0x00, 0x13, 0x37]),
      Buffer.from('{"id":'),
      Buffer.from(JSON.stringify({ id: 'x', type: 'NoSuchEvent', time: 1, source: 's', data: {} })),
      Buffer.from(JSON.stringify({ ...numberedFault(1), data: { memberId: 42 } })),
      Buffer.alloc(200_000, 0x61),
    ];
    for (const payload of garbage) await raw.publishAsync(TOPIC, payload, { qos: 1 });
    // A valid envelope on the wrong topic is wrong too.
    await raw.publishAsync(topicFor('AverageLoadAverageEvent'), encodeEnvelope(numberedFault(2)), { qos: 1 });
    await raw.publishAsync(TOPIC, encodeEnvelope(numberedFault(3)), { qos: 1 });
    await waitFor(() => ids.length === 1, 'the valid envelope');
    expect(ids).toEqual(['fault-3']);
    expect(sub.counters).toMatchObject({ received: 7, droppedInvalid: 5, droppedOversized: 1, delivered: 1 });
    // Logged once per broker, root and reason per 10 s, not once per message.
    const dropped = logger.records.filter((r) => r.event === 'subscriber.message_dropped');
    expect(dropped.map((r) => r.fields.code).sort()).toEqual(['FL_ERR_ENVELOPE_INVALID', 'FL_ERR_ENVELOPE_TOO_LARGE']);
    expect(sub.links().a).toBe('up');
  });

  it('refuses anonymous clients and wrong passwords', async () => {
    const b = await broker();
    for (const creds of [{}, { username: 'autoscaler', password: 'wrong' }]) {
      const client = mqtt.connect({ host: b.host, port: b.port, protocolVersion: 4, reconnectPeriod: 0, ...creds });
      const error = await new Promise<Error>((resolve) => client.on('error', resolve));
      expect((error as Error & { code?: number }).code).toBeOneOf([4, 5]);
      client.end(true);
    }
    const statuses: MessagingStatus[] = [];
    const sub = createSubscriber({
      brokers: endpoints([b]),
      credentials: { username: 'autoscaler', password: 'wrong' },
      role: 'autoscaler',
      clientId: 'intruder',
      topics: ['summarized-health-stats/#'],
      onEnvelope: () => {},
      resubscribeIntervalMs: 60_000,
    });
    cleanups.push(() => sub.close());
    sub.onStatus((s) => statuses.push(s));
    sub.start();
    await waitFor(() => statuses.length > 0, 'a status');
    expect(statuses[0]).toMatchObject({ type: 'reconnect-failed', broker: 'a' });
  });

  it("an agent's credentials cannot publish summarized-health-stats", async () => {
    const b = await broker();
    const ids: string[] = [];
    const sub = await autoscaler(b, ids);
    const forger = createPublisher({
      brokers: endpoints([b]),
      credentials: credentials('agent'),
      clientId: 'agent-forger',
      outboxFile: path.join(mkdtempSync(path.join(os.tmpdir(), 'fl-msg-')), 'forger.outbox'),
      republishIntervalMs: 300,
    });
    cleanups.push(() => forger.close());
    await forger.start();
    await forger.publish(numberedFault(99));
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(ids).toEqual([]);
    expect(sub.counters.received).toBe(0);
    // aedes disconnects the forger (MQTT 3.1.1 has no negative PUBACK), so the
    // message stays in its outbox; Mosquitto acknowledges and drops it silently.
    if (kind === 'aedes') expect(forger.pending).toBe(1);
  });
});
