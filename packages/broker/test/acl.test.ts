import { BROKER_CREDENTIAL_ROLES } from '@faultline/core';
import { createMemoryLogger, type LogRecord } from '@faultline/core/testing';
import { SERVICE_ROLES, type ServiceRole, topicFor } from '@faultline/protocol';
import { TEST_MEMBER_KEY } from '@faultline/protocol/testing';
import { type BrokerKind, mosquittoAvailable, startBroker, TEST_CREDENTIALS } from '@faultline/test-support';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type BrokerCounters, createBrokerNode } from '../src/index.js';
import { connackRefusal, connect, type TestClient, unique } from './mqtt.js';

// The same authentication and ACL checks against both brokers the stack can
// run. Where MQTT 3.1.1 leaves the broker a choice, each row says which one it
// makes: aedes closes the connection of a refused PUBLISH and answers 0x80 to a
// refused SUBSCRIBE; Mosquitto 2.0 acknowledges the PUBLISH and drops it, and
// grants the SUBSCRIBE but delivers nothing its read ACL does not allow.
interface Running {
  url: string;
  counters?: Readonly<BrokerCounters>;
  logs?: LogRecord[];
  close(): Promise<void>;
}

interface Target {
  kind: BrokerKind;
  available: boolean;
  start(): Promise<Running>;
  anonymousCode: number;
  wrongPasswordCode: number;
  refusedPublish: 'disconnected' | 'acknowledged';
  refusedSubscribeGrant: number;
}

// The platform's accounts; `agent` (TEST_CREDENTIALS.agent) logs in as its own member, checked with the member key.
const users = BROKER_CREDENTIAL_ROLES.map((role) => ({ ...TEST_CREDENTIALS[role], role }));
const MEMBER_FAULT = topicFor('MemberFaultEvent');

const targets: Target[] = [
  {
    kind: 'aedes',
    available: true,
    start: async () => {
      const logger = createMemoryLogger();
      const node = await createBrokerNode({ name: 'acl', users, memberKey: TEST_MEMBER_KEY, logger });
      return { url: `mqtt://127.0.0.1:${node.port}`, counters: node.counters, logs: logger.records, close: node.close };
    },
    anonymousCode: 5,
    wrongPasswordCode: 4,
    refusedPublish: 'disconnected',
    refusedSubscribeGrant: 0x80,
  },
  {
    kind: 'mosquitto',
    available: mosquittoAvailable(),
    start: async () => {
      const broker = await startBroker({ kind: 'mosquitto', name: 'acl' });
      return { url: broker.url, close: broker.stop };
    },
    anonymousCode: 5,
    wrongPasswordCode: 5,
    refusedPublish: 'acknowledged',
    refusedSubscribeGrant: 1,
  },
];

describe.each(targets)('$kind broker: authentication and ACL', (target) => {
  const test = target.available ? it : it.skip;
  let broker: Running;
  const clients: TestClient[] = [];
  const as = async (role: ServiceRole) => {
    const client = await connect(broker.url, TEST_CREDENTIALS[role]);
    clients.push(client);
    return client;
  };
  // Counter deltas are asserted where the broker has counters (aedes).
  const snapshot = () => ({ ...broker.counters }) as BrokerCounters;
  const expectDelta = async (before: BrokerCounters, delta: Partial<BrokerCounters>) => {
    const counters = broker.counters;
    if (!counters) return;
    await vi.waitFor(() => {
      for (const [key, value] of Object.entries(delta)) {
        expect(counters[key as keyof BrokerCounters] - before[key as keyof BrokerCounters], key).toBe(value);
      }
    });
  };

  beforeAll(async () => {
    if (target.available) broker = await target.start();
  });
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.end()));
    await broker?.close();
  });

  test('refuses an anonymous client', async () => {
    const before = snapshot();
    expect(await connackRefusal(broker.url)).toBe(target.anonymousCode);
    await expectDelta(before, { authFailures: 1, connections: 0 });
    if (broker.logs) {
      expect(broker.logs.filter((r) => r.level === 'warn').at(-1)).toMatchObject({
        event: 'broker.connect_refused',
        fields: { reason: 'anonymous' },
      });
    }
  });

  test('refuses a wrong password and an unknown user', async () => {
    const before = snapshot();
    expect(await connackRefusal(broker.url, { username: 'sp', password: 'agent-test-secret' })).toBe(
      target.wrongPasswordCode,
    );
    expect(await connackRefusal(broker.url, { username: 'root', password: 'sp-test-secret' })).toBe(
      target.wrongPasswordCode,
    );
    await expectDelta(before, { authFailures: 2 });
  });

  test("does not route an agent's MemberFaultEvent to anyone", async () => {
    const observer = await as('observer');
    expect(await observer.subscribe('summarized-health-stats/#')).toEqual([1]);
    const agent = await as('agent');
    const sp = await as('sp');
    const before = snapshot();

    const forged = unique('forged');
    const outcome = await Promise.race([
      agent.closed.then(() => 'disconnected' as const),
      agent.mqtt.publishAsync(MEMBER_FAULT, forged, { qos: 1 }).then(() => 'acknowledged' as const),
    ]);
    expect(outcome).toBe(target.refusedPublish);
    expect(agent.mqtt.connected).toBe(target.refusedPublish === 'acknowledged');

    // A marker from the SP on the same topic, published after the refusal was
    // settled: once it arrives, the forged message would have arrived before it.
    const marker = unique('marker');
    await sp.mqtt.publishAsync(MEMBER_FAULT, marker, { qos: 1 });
    await observer.waitFor(marker);
    expect(observer.received.map((message) => message.payload)).toEqual([marker]);
    await expectDelta(before, { publishRefused: 1, published: 1 });
  });

  test('routes the SP MemberFaultEvent to the observer and the autoscaler', async () => {
    const observer = await as('observer');
    const autoscaler = await as('autoscaler');
    expect(await observer.subscribe('summarized-health-stats/#')).toEqual([1]);
    expect(await autoscaler.subscribe(MEMBER_FAULT)).toEqual([1]);
    const sp = await as('sp');
    const payload = unique('fault');
    await sp.mqtt.publishAsync(MEMBER_FAULT, payload, { qos: 1 });
    await observer.waitFor(payload);
    await autoscaler.waitFor(payload);
    expect(autoscaler.received).toEqual([{ topic: MEMBER_FAULT, payload }]);
  });

  test("refuses an agent's subscription to summarized-health-stats/# and keeps its connection", async () => {
    const agent = await as('agent');
    const before = snapshot();
    // One SUBSCRIBE, two filters: only the forbidden one fails [MQTT-3.8.4-5].
    expect(await agent.subscribe('summarized-health-stats/#', 'ping/autoscaler')).toEqual([
      target.refusedSubscribeGrant,
      1,
    ]);
    await expectDelta(before, { subscribeRefused: 1 });

    const observer = await as('observer');
    expect(await observer.subscribe(MEMBER_FAULT)).toEqual([1]);
    const sp = await as('sp');
    const fault = unique('fault');
    await sp.mqtt.publishAsync(MEMBER_FAULT, fault, { qos: 1 });
    await observer.waitFor(fault);
    // The autoscaler's ping reaches the agent after anything already routed to it: nothing else did.
    const autoscaler = await as('autoscaler');
    const ping = unique('ping');
    await autoscaler.mqtt.publishAsync('ping/autoscaler', ping, { qos: 1 });
    await agent.waitFor(ping);
    expect(agent.received).toEqual([{ topic: 'ping/autoscaler', payload: ping }]);
    expect(agent.mqtt.connected).toBe(true);
  });

  test("lets every platform role publish its own ping topic, and every role read everyone's pings", async () => {
    const before = snapshot();
    for (const role of SERVICE_ROLES.filter((r) => r !== 'agent')) {
      const client = await as(role);
      expect(await client.subscribe(`ping/${role}`, 'ping/+')).toEqual([1, 1]);
      const payload = unique(`ping-${role}`);
      await client.mqtt.publishAsync(`ping/${role}`, payload, { qos: 1 });
      await client.waitFor(payload);
      expect(client.errors).toEqual([]);
    }
    // A member's account publishes no ping (an agent has no subscriber) but reads everyone's.
    const agent = await as('agent');
    expect(await agent.subscribe('ping/+')).toEqual([1]);
    expect(agent.errors).toEqual([]);
    await expectDelta(before, {
      connections: 4,
      memberConnections: 1,
      published: 3,
      publishRefused: 0,
      subscribeRefused: 0,
    });
  });

  test('does not route a ping that claims another role: presence is bound to the account', async () => {
    // Issue 12: an agent wrote `clientId: 'autoscaler'` into a ping on the shared
    // `ping` topic and the SP took the autoscaler for present.
    const sp = await as('sp');
    expect(await sp.subscribe('ping/autoscaler', 'ping')).toEqual([1, target.refusedSubscribeGrant]);
    const before = snapshot();
    for (const topic of ['ping/autoscaler', 'ping']) {
      const agent = await as('agent');
      const claim = JSON.stringify({ clientId: 'autoscaler', seq: 1 });
      const outcome = await Promise.race([
        agent.closed.then(() => 'disconnected' as const),
        agent.mqtt.publishAsync(topic, claim, { qos: 1 }).then(() => 'acknowledged' as const),
      ]);
      expect(outcome, topic).toBe(target.refusedPublish);
    }
    // The autoscaler's own ping, sent after both refusals settled, is the only one that arrives.
    const autoscaler = await as('autoscaler');
    const marker = unique('ping-autoscaler');
    await autoscaler.mqtt.publishAsync('ping/autoscaler', marker, { qos: 1 });
    await sp.waitFor(marker);
    expect(sp.received).toEqual([{ topic: 'ping/autoscaler', payload: marker }]);
    await expectDelta(before, { publishRefused: 2, published: 1 });
  });

  test('lets the roles whose messages a role reads ask for its presence under their own names; only that role reads the asks', async () => {
    const autoscaler = await as('autoscaler');
    expect(await autoscaler.subscribe('presence/autoscaler/+')).toEqual([1]);
    // Another role's asks are not the observer's to read (aedes refuses; Mosquitto grants and delivers none).
    const observer = await as('observer');
    expect(await observer.subscribe('presence/autoscaler/+', 'ping/autoscaler')).toEqual([
      target.refusedSubscribeGrant,
      1,
    ]);
    const before = snapshot();
    const sp = await as('sp');
    const fromSp = unique('ask-sp');
    await sp.mqtt.publishAsync('presence/autoscaler/sp', fromSp, { qos: 1 });
    await autoscaler.waitFor(fromSp);
    // A member asks under its member id (TEST_CREDENTIALS.agent is member `agent`'s account).
    const agent = await as('agent');
    const fromAgent = unique('ask-agent');
    await agent.mqtt.publishAsync('presence/autoscaler/agent', fromAgent, { qos: 1 });
    await autoscaler.waitFor(fromAgent);
    expect(autoscaler.received).toEqual([
      { topic: 'presence/autoscaler/sp', payload: fromSp },
      { topic: 'presence/autoscaler/agent', payload: fromAgent },
    ]);
    // The autoscaler's answer, a ping, reaches the observer after anything already routed to it: no ask did.
    const answer = unique('ping-autoscaler');
    await autoscaler.mqtt.publishAsync('ping/autoscaler', answer, { qos: 1 });
    await observer.waitFor(answer);
    expect(observer.received).toEqual([{ topic: 'ping/autoscaler', payload: answer }]);
    expect([sp, agent].every((client) => client.mqtt.connected)).toBe(true);
    await expectDelta(before, { publishRefused: 0, published: 3 });
  });

  test('does not route an ask under another name, from an observer, or to a role the asker may not ask', async () => {
    const autoscaler = await as('autoscaler');
    const sp = await as('sp');
    expect(await autoscaler.subscribe('presence/autoscaler/+')).toEqual([1]);
    expect(await sp.subscribe('presence/sp/+')).toEqual([1]);
    const before = snapshot();
    const refused: [ServiceRole, string][] = [
      ['agent', 'presence/autoscaler/php-m-2'], // another member's name
      ['sp', 'presence/autoscaler/autoscaler'], // another account's name
      ['observer', 'presence/autoscaler/observer'], // an observer asks nobody (Mosquitto: its deny line)
      ['agent', 'presence/sp/agent'], // the SP reads nothing a member publishes
      ['sp', 'presence/sp/sp'], // nor anything of its own
      ['autoscaler', 'presence/agent/autoscaler'], // a member has no ping to answer with
    ];
    for (const [role, topic] of refused) {
      const client = await as(role);
      const outcome = await Promise.race([
        client.closed.then(() => 'disconnected' as const),
        client.mqtt.publishAsync(topic, unique('ask'), { qos: 1 }).then(() => 'acknowledged' as const),
      ]);
      expect(outcome, `${role} on ${topic}`).toBe(target.refusedPublish);
    }
    // Asks allowed, sent after every refusal settled: the only ones that arrive.
    const toAutoscaler = unique('ask-sp');
    await (await as('sp')).mqtt.publishAsync('presence/autoscaler/sp', toAutoscaler, { qos: 1 });
    await autoscaler.waitFor(toAutoscaler);
    const toSp = unique('ask-autoscaler');
    await autoscaler.mqtt.publishAsync('presence/sp/autoscaler', toSp, { qos: 1 });
    await sp.waitFor(toSp);
    expect(autoscaler.received).toEqual([{ topic: 'presence/autoscaler/sp', payload: toAutoscaler }]);
    expect(sp.received).toEqual([{ topic: 'presence/sp/autoscaler', payload: toSp }]);
    await expectDelta(before, { publishRefused: refused.length, published: 2 });
  });
});
