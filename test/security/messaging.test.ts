import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type Autoscaler, createAutoscaler, PgRegistry } from '@faultline/autoscaler';
import { clusterConfig, FakeIaas } from '@faultline/autoscaler/testing';
import { createPgPool, migrate } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import { createPublisher, createSubscriber, type Publisher, type Subscriber } from '@faultline/messaging';
import { createEnvelope, type Envelope, type MemberIdentity, memberIdentityOf, topicFor } from '@faultline/protocol';
import {
  type BrokerKind,
  brokerEndpoints,
  mosquittoAvailable,
  startBroker,
  startPostgres,
  TEST_CREDENTIALS,
  type TestBroker,
  type TestPostgres,
  waitFor,
} from '@faultline/test-support';
import mqtt from 'mqtt';
import type pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

/*
 * Issue 12, "The autoscaler's epoch fence can be poisoned by any agent" and
 * "Messaging trusts headers": attacks made by a member's agent with its own
 * broker account (member `agent`, TEST_CREDENTIALS.agent) on real brokers, aedes and
 * Mosquitto, against a real autoscaler (its real subscriber, core and
 * publisher on both brokers, its registry in real PostgreSQL; only the IaaS is
 * the fake) and the SP's real publisher. Each asserts: refused (by the broker,
 * or at decode), counted, nothing acted on, the target still running.
 */

const kinds: BrokerKind[] = mosquittoAvailable() ? ['aedes', 'mosquitto'] : ['aedes'];
const FAST = { pingIntervalMs: 200, resubscribeIntervalMs: 500 };
type MemoryLogger = ReturnType<typeof createMemoryLogger>;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** An MQTT client with a member's own account (member `agent`), speaking raw MQTT as a hostile member would. */
async function hostileAgent(broker: TestBroker): Promise<mqtt.MqttClient> {
  const client = await mqtt.connectAsync({
    host: broker.host,
    port: broker.port,
    protocolVersion: 4,
    reconnectPeriod: 0,
    clientId: `agent-hostile-${Math.random().toString(36).slice(2, 8)}`,
    ...TEST_CREDENTIALS.agent,
  });
  client.on('error', () => {});
  return client;
}

/** QoS 1 publish; aedes answers a refused one by closing the connection, Mosquitto acknowledges and drops it. */
function publishRaw(client: mqtt.MqttClient, topic: string, payload: string): Promise<'acknowledged' | 'disconnected'> {
  return Promise.race([
    new Promise<'disconnected'>((resolve) => client.once('close', () => resolve('disconnected'))),
    client.publishAsync(topic, payload, { qos: 1 }).then(
      () => 'acknowledged' as const,
      () => 'disconnected' as const,
    ),
  ]);
}

function jsonLines(file: string): Record<string, unknown>[] {
  try {
    return readFileSync(file, 'utf8')
      .split('\n')
      .filter((line) => line.trim() !== '')
      .flatMap((line) => {
        try {
          return [JSON.parse(line) as Record<string, unknown>];
        } catch {
          return [];
        }
      });
  } catch {
    return [];
  }
}

function memberFault(member: MemberIdentity, lastStatAt: number, epoch: number): Envelope {
  return createEnvelope(
    'MemberFaultEvent',
    { ...memberIdentityOf(member), reason: 'timeout', lastStatAt, silentForMs: 6_000 },
    // The id the CEP gives it (README "CEP monitor"): predictable by anyone who knows the member.
    { source: 'sp-1', epoch, id: `MemberFaultEvent:${member.memberId}:${lastStatAt}` },
  );
}

/** A member for the presence test, where no autoscaler runs. */
const VICTIM: MemberIdentity = {
  clusterId: 'php',
  clusterInstanceId: 'php-1',
  networkPartitionId: 'np-1',
  partitionId: 'p-1',
  memberId: 'php-victim',
};

let postgres: TestPostgres;
let pool: pg.Pool;

beforeAll(async () => {
  postgres = await startPostgres();
  pool = createPgPool({ connectionString: postgres.connectionString });
  await migrate(pool);
});

afterAll(async () => {
  await pool?.end();
  await postgres?.stop();
});

describe.each(kinds)('MQTT headers and presence on %s brokers', (kind) => {
  let brokers: TestBroker[];
  const dir = mkdtempSync(path.join(os.tmpdir(), `faultline-sec-msg-${kind}-`));
  const logDir = path.join(dir, 'logs');
  const cleanups: (() => Promise<unknown>)[] = [];
  let outboxes = 0;
  const outboxFile = (name: string) => path.join(dir, `${name}-${++outboxes}.outbox`);

  beforeAll(async () => {
    brokers = await Promise.all([startBroker({ kind, name: 'a', logDir }), startBroker({ kind, name: 'b', logDir })]);
  });
  afterAll(async () => {
    await Promise.all((brokers ?? []).map((b) => b.stop()));
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(async () => {
    // Each test's autoscaler starts from an empty registry: no members, no persisted backoff or held faults.
    await pool.query(
      'DELETE FROM autoscaler_fence; DELETE FROM autoscaler_action; DELETE FROM autoscaler_member; DELETE FROM autoscaler_cluster',
    );
  });
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => {});
  });

  /** The real autoscaler: a min=1 cluster, so one member (of the fake IaaS) is there to be faulted. */
  async function runAutoscaler(): Promise<{ autoscaler: Autoscaler; iaas: FakeIaas; logger: MemoryLogger }> {
    const iaas = new FakeIaas();
    const logger = createMemoryLogger();
    const autoscaler = createAutoscaler({
      brokers: brokerEndpoints(brokers),
      credentials: TEST_CREDENTIALS.autoscaler,
      outboxFile: outboxFile('autoscaler'),
      clusters: [clusterConfig({ min: 1, max: 3 })],
      iaas,
      registry: new PgRegistry(pool),
      logger,
      monitorIntervalMs: 200,
      pendingTimeoutMs: 600_000,
      republishIntervalMs: 2_000,
      ...FAST,
    });
    cleanups.push(() => autoscaler.close());
    await autoscaler.start();
    await waitFor(() => Object.values(autoscaler.status().brokers).every((s) => s === 'up'), 'autoscaler on both');
    await waitFor(() => iaas.running.length === 1, 'the cluster member');
    return { autoscaler, iaas, logger };
  }

  /** The SP's publisher: it sends only while the autoscaler is present on its broker. */
  async function spPublisher(logger = createMemoryLogger()): Promise<Publisher> {
    const publisher = createPublisher({
      brokers: brokerEndpoints(brokers),
      credentials: TEST_CREDENTIALS.sp,
      clientId: 'sp-1',
      outboxFile: outboxFile('sp'),
      republishIntervalMs: 1_000,
      awaitSubscribers: ['autoscaler'],
      logger,
    });
    cleanups.push(() => publisher.close());
    await publisher.start();
    return publisher;
  }

  async function theMember(iaas: FakeIaas): Promise<MemberIdentity> {
    const [instance] = await iaas.list();
    if (!instance) throw new Error('no member');
    return memberIdentityOf(instance);
  }

  const terminated = (iaas: FakeIaas, memberId: string) =>
    iaas.calls.some((call) => call.op === 'terminate' && call.memberId === memberId);

  it('a member speaks only for itself: it cannot start or activate another member', async () => {
    // Issue 12: "One shared `agent` account lets any member send InstanceActivated for any other member."
    const { autoscaler, iaas } = await runAutoscaler();
    const victim = await theMember(iaas);
    const outcomes: string[] = [];
    for (const type of ['InstanceStartedEvent', 'InstanceActivatedEvent'] as const) {
      const forged = JSON.stringify(createEnvelope(type, victim, { source: 'agent-hostile' }));
      // The shared topic every agent once wrote, the victim's own topic, and the forger's own topic.
      for (const topic of [
        `instance/status/${type}`,
        `instance/status/${victim.memberId}/${type}`,
        `instance/status/agent/${type}`,
      ]) {
        for (const broker of brokers) {
          // aedes closes the connection of a refused publish: a fresh client each time.
          const agent = await hostileAgent(broker);
          cleanups.push(async () => void agent.end(true));
          outcomes.push(`${topic} ${await publishRaw(agent, topic, forged)}`);
        }
      }
    }
    await sleep(1_500);
    // Nothing reached the autoscaler's core; what the brokers let through (its own topic) was refused at decode.
    expect(autoscaler.counters.received).toBe(0);
    expect(autoscaler.status().subscriber?.droppedInvalid).toBeGreaterThanOrEqual(2);
    const row = (await new PgRegistry(pool).liveMembers()).find((m) => m.memberId === victim.memberId);
    expect(row?.state).toBe('Created');
    expect(autoscaler.status().state).toBe('running');
    // On aedes the broker refuses every publish outside the forger's own topic by closing its connection.
    if (kind === 'aedes') {
      expect(outcomes.filter((o) => o.endsWith('acknowledged'))).toEqual([
        'instance/status/agent/InstanceStartedEvent acknowledged',
        'instance/status/agent/InstanceStartedEvent acknowledged',
        'instance/status/agent/InstanceActivatedEvent acknowledged',
        'instance/status/agent/InstanceActivatedEvent acknowledged',
      ]);
    }
  });

  it('an agent cannot poison the epoch fence: an epoch on instance/status is refused at decode', async () => {
    const { autoscaler, iaas } = await runAutoscaler();
    const member = await theMember(iaas);
    const agent = await hostileAgent(brokers[0] as TestBroker);
    cleanups.push(async () => void agent.end(true));
    // About itself, under its own topic: all the broker lets it publish.
    const forged = {
      ...createEnvelope('InstanceStartedEvent', { ...member, memberId: 'agent' }, { source: 'agent-hostile' }),
      epoch: Number.MAX_SAFE_INTEGER,
    };
    // The broker lets it through (a member owns instance/status/<its id>/); the autoscaler must not believe it.
    const topic = topicFor('InstanceStartedEvent', 'agent');
    expect(await publishRaw(agent, topic, JSON.stringify(forged))).toBe('acknowledged');

    // The real SP (leader epoch 1) then reports the member faulted.
    const sp = await spPublisher();
    await sp.publish(memberFault(member, Date.now() - 6_000, 1));
    await waitFor(
      () => terminated(iaas, member.memberId) || autoscaler.counters.staleEpochDropped > 0,
      'the fault decided either way',
    );
    expect(autoscaler.counters.staleEpochDropped).toBe(0);
    expect(autoscaler.status().newestEpoch).toBe(1);
    expect(terminated(iaas, member.memberId)).toBe(true);
    // Refused at decode and counted by the subscriber; the core never saw it.
    expect(autoscaler.status().subscriber?.droppedInvalid).toBe(1);
    expect(autoscaler.counters.received).toBe(1);
    expect(autoscaler.status().state).toBe('running');

    // The persisted fence, which a restarted autoscaler starts from, holds the real epoch.
    await waitFor(async () => (await new PgRegistry(pool).newestEpoch()) !== undefined, 'the fence written');
    await autoscaler.close();
    expect(await new PgRegistry(pool).newestEpoch()).toBe(1);
  });

  it("an agent publishing first under the SP's predictable id does not make the SP's fault a duplicate", async () => {
    const { autoscaler, iaas } = await runAutoscaler();
    const member = await theMember(iaas);
    const fault = memberFault(member, Date.now() - 6_000, 1);
    const agent = await hostileAgent(brokers[0] as TestBroker);
    cleanups.push(async () => void agent.end(true));
    // A valid instance status (about itself, of a cluster nobody manages) under the id the SP will use.
    const preempt = createEnvelope(
      'InstanceStartedEvent',
      { ...member, clusterId: 'other', memberId: 'agent' },
      { source: 'agent-hostile', id: fault.id },
    );
    const topic = topicFor('InstanceStartedEvent', 'agent');
    expect(await publishRaw(agent, topic, JSON.stringify(preempt))).toBe('acknowledged');
    await waitFor(() => autoscaler.counters.unknownCluster === 1, 'the pre-emptive envelope handled');

    const sp = await spPublisher();
    await sp.publish(fault);
    await waitFor(() => sp.pending === 0, 'the fault taken by a broker');
    await waitFor(() => autoscaler.counters.faults > 0, 'the fault handled', 5_000).catch(() => {});
    expect(autoscaler.counters).toMatchObject({ received: 2, faults: 1, staleEpochDropped: 0 });
    await waitFor(() => terminated(iaas, member.memberId), 'the faulted member terminated');
    expect(autoscaler.status().subscriber?.duplicates).toBe(0);
    expect(autoscaler.status().state).toBe('running');
  });

  it('an agent claiming to be the autoscaler does not make the SP send into a broker without it', async () => {
    const spLog = createMemoryLogger();
    const sp = await spPublisher(spLog);
    await sp.publish(memberFault(VICTIM, Date.now() - 6_000, 1));

    // For 3 s (three republish intervals), pings claiming `autoscaler` on both
    // brokers, every 200 ms: on the old shared topic and on the autoscaler's own.
    const outcomes: string[] = [];
    const until = Date.now() + 3_000;
    let seq = 0;
    const agents: mqtt.MqttClient[] = [];
    while (Date.now() < until) {
      for (const broker of brokers) {
        for (const topic of ['ping', 'ping/autoscaler']) {
          const agent = await hostileAgent(broker);
          agents.push(agent);
          outcomes.push(await publishRaw(agent, topic, JSON.stringify({ clientId: 'autoscaler', seq: ++seq })));
        }
      }
      await sleep(200);
    }
    cleanups.push(async () => {
      for (const agent of agents) agent.end(true);
    });

    // Nothing sent: the fault waits in the SP's outbox for the real autoscaler.
    expect(sp.counters.acked).toBe(0);
    expect(sp.pending).toBe(1);
    expect(spLog.records.filter((r) => r.event === 'publisher.subscriber_present')).toEqual([]);
    // Refused by the broker: aedes closes the connection and logs and counts it; Mosquitto acknowledges and drops it.
    expect(new Set(outcomes)).toEqual(new Set([kind === 'aedes' ? 'disconnected' : 'acknowledged']));
    if (kind === 'aedes') {
      const refused = brokers.flatMap((b) =>
        jsonLines(path.join(logDir, `broker-${b.name}.jsonl`)).filter((r) => r.event === 'broker.publish_refused'),
      );
      // Logged at most once per 10 s per peer and reason: what was logged is these refusals.
      const pings = refused.filter((r) => String(r.topic).startsWith('ping'));
      expect(pings.length).toBeGreaterThan(0);
      expect(['agent ping', 'agent ping/autoscaler']).toEqual(
        expect.arrayContaining([...new Set(pings.map((r) => `${r.role} ${r.topic}`))]),
      );
    }

    // The real autoscaler's subscriber arrives: its own pings count, and the fault goes out to it.
    const received: Envelope[] = [];
    const autoscaler: Subscriber = createSubscriber({
      brokers: brokerEndpoints(brokers),
      credentials: TEST_CREDENTIALS.autoscaler,
      role: 'autoscaler',
      clientId: 'autoscaler',
      topics: ['summarized-health-stats/#'],
      onEnvelope: (envelope) => void received.push(envelope),
      ...FAST,
    });
    cleanups.push(() => autoscaler.close());
    autoscaler.start();
    await waitFor(() => received.length === 1, 'the fault at the real autoscaler');
    // The subscriber can have it before the broker's PUBACK reaches the publisher: wait for the outbox too.
    await waitFor(() => sp.pending === 0, 'the fault acknowledged and out of the SP outbox');
    expect(received.map((e) => e.type)).toEqual(['MemberFaultEvent']);
    expect(spLog.records.find((r) => r.event === 'publisher.subscriber_present')?.fields).toMatchObject({
      role: 'autoscaler',
    });
  });
});
