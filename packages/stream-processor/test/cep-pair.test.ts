import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import type { Subscriber } from '@faultline/messaging';
import { watchAsAutoscaler } from '@faultline/messaging/testing';
import type { Envelope } from '@faultline/protocol';
import {
  brokerEndpoints,
  startBrokerPair,
  startPostgres,
  startSpPair,
  TEST_CREDENTIALS,
  type TestBroker,
  type TestPostgres,
  type TestSpNode,
} from '@faultline/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FailoverClient, memberKeyOf, stat, waitFor } from './client.js';

const hasMosquittoSub = spawnSync('mosquitto_sub', ['--help']).error === undefined;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const FAULT_TIMEOUT_MS = 3_000;

/*
 * Issue 5's end-to-end check of the CEP monitor inside the real SP pair:
 * 50 simulated agents report, 5 go silent, the active is killed -9 right
 * after: exactly 5 MemberFaults reach the autoscaler's subscriber (and an
 * independent mosquitto_sub), none for the 45 that keep reporting.
 */
describe('CEP monitor in the SP pair, publishing to the broker pair', () => {
  let db: TestPostgres;
  let brokers: [TestBroker, TestBroker];
  let pair: [TestSpNode, TestSpNode];
  let subscriber: Subscriber;
  const received: Envelope[] = [];
  const sniffers: { child: ChildProcessWithoutNullStreams; out: string[] }[] = [];

  beforeAll(async () => {
    db = await startPostgres();
    brokers = await startBrokerPair('aedes');
    const endpoints = brokerEndpoints(brokers);
    subscriber = watchAsAutoscaler({
      brokers: endpoints,
      credentials: TEST_CREDENTIALS.autoscaler,
      topics: ['summarized-health-stats/#'],
      onEnvelope: (envelope) => void received.push(envelope),
    });
    if (hasMosquittoSub) {
      for (const b of brokers) {
        const { username, password } = TEST_CREDENTIALS.observer;
        const child = spawn('mosquitto_sub', [
          '-h',
          b.host,
          '-p',
          String(b.port),
          '-u',
          username,
          '-P',
          password,
          '-V',
          'mqttv311',
          '-t',
          'summarized-health-stats/MemberFaultEvent',
        ]);
        const out: string[] = [];
        child.stdout.on('data', (chunk: Buffer) => out.push(...chunk.toString().split('\n').filter(Boolean)));
        sniffers.push({ child, out });
      }
    }
    pair = await startSpPair({
      databaseUrl: db.connectionString,
      engine: 'cep',
      brokers: endpoints,
      cep: { faultTimeoutMs: FAULT_TIMEOUT_MS, summaryIntervalMs: 1_000, windowMs: 10_000 },
      messaging: { pingIntervalMs: 200, resubscribeIntervalMs: 500, republishIntervalMs: 1_000 },
    });
  });
  afterAll(async () => {
    for (const s of sniffers) s.child.kill('SIGKILL');
    await subscriber?.close();
    await Promise.all((pair ?? []).map((n) => n.stop()));
    await Promise.all((brokers ?? []).map((b) => b.stop()));
    await db?.stop();
  });

  it('5 of 50 members go silent and the active is killed -9: exactly 5 MemberFaults, none false', async () => {
    const active = await waitFor(async () => {
      const s = await Promise.all(pair.map((n) => n.status()));
      const i = s.findIndex((x) => x?.role === 'ACTIVE');
      return i >= 0 && s[1 - i]?.following?.epoch === s[i]?.epoch ? (pair[i] as TestSpNode) : undefined;
    }, 'a steady pair');
    const client = new FailoverClient(
      memberKeyOf(active),
      pair.map((n) => n.thriftPort),
    );
    const sequences = new Map<string, number>();
    let silent = new Set<string>();
    let reporting = true;
    const agents = (async () => {
      let tick = 0;
      while (reporting) {
        tick += 1;
        for (let m = 0; m < 50; m++) {
          const memberId = `m-${m}`;
          if (silent.has(memberId)) continue;
          const sequence = (sequences.get(memberId) ?? 0) + 1;
          sequences.set(memberId, sequence);
          // Real agents stamp stats with the time they measured them; the windows are wall-clock.
          await client.send({
            agentId: memberId,
            sequence,
            stats: [{ ...stat(memberId, tick), timestamp: Date.now() }],
          });
        }
        await sleep(300);
      }
    })();
    await sleep(2_500);
    silent = new Set(['m-0', 'm-1', 'm-2', 'm-3', 'm-4']);
    await sleep(100);
    await active.kill('SIGKILL');
    const faults = () => received.filter((e) => e.type === 'MemberFaultEvent');
    await waitFor(() => faults().length >= 5 || undefined, 'five MemberFaults', 30_000);
    await sleep(FAULT_TIMEOUT_MS + 2_000); // anything false or repeated would show by now
    reporting = false;
    await agents;
    client.close();
    const memberIds = faults().map((e) => (e.type === 'MemberFaultEvent' ? e.data.memberId : ''));
    expect(memberIds.sort()).toEqual(['m-0', 'm-1', 'm-2', 'm-3', 'm-4']);
    const epochs = new Set(faults().map((e) => e.epoch));
    expect(epochs.size).toBe(1);
    const types = new Set(received.map((e) => e.type));
    expect(types.has('AverageLoadAverageEvent')).toBe(true);
    expect(types.has('MemberAverageLoadAverageEvent')).toBe(true);
    if (hasMosquittoSub) {
      const seen = new Set(sniffers.flatMap((s) => s.out).map((line) => (JSON.parse(line) as { id: string }).id));
      expect([...seen].sort()).toEqual(
        faults()
          .map((e) => e.id)
          .sort(),
      );
    }
  }, 90_000);

  /*
   * Issue "Robust under strain", item 4: a tick of 1 000 members with
   * 40-character ids encodes to ~80 KB; sent as one event, every subscriber
   * dropped it (over 64 KiB). Cut into parts by encoded size, all reach the
   * autoscaler's subscriber. Runs on the node the previous test left active.
   */
  it('a tick of 1 000 members with 40-character ids reaches the autoscaler whole, in parts within 64 KiB', async () => {
    const ports = pair.map((n) => n.thriftPort);
    await waitFor(async () => {
      const s = await Promise.all(pair.map((n) => n.status()));
      return s.some((x) => x?.role === 'ACTIVE') || undefined;
    }, 'an active node');
    const ids = Array.from({ length: 1_000 }, (_, i) => `checkout-api-member-${String(i).padStart(20, '0')}`);
    expect(ids.every((id) => id.length === 40)).toBe(true);
    const sentAt = Date.now();
    // Over 20 connections at a time: one call after another, a loaded machine could take most of the
    // 10 s window to send them all, and the first members would leave it before the last arrived.
    const lanes = Array.from({ length: 20 }, () => new FailoverClient(memberKeyOf(pair[0] as TestSpNode), ports));
    for (let at = 0; at < ids.length; at += lanes.length) {
      await Promise.all(
        lanes.map((lane, i) => {
          const memberId = ids[at + i] as string;
          return lane.send({
            agentId: memberId,
            sequence: 1,
            stats: [
              {
                ...stat(memberId, 12.345678901234567),
                clusterId: 'checkout-api',
                clusterInstanceId: 'checkout-api-1',
                timestamp: Date.now(),
              },
            ],
          });
        }),
      );
    }
    for (const lane of lanes) lane.close();
    const parts = () =>
      received.flatMap((e) =>
        e.type === 'MemberAverageLoadAverageEvent' && e.data.clusterId === 'checkout-api' && e.data.windowTo > sentAt
          ? [e]
          : [],
      );
    // The first tick after the last batch lists every member, in parts, each part delivered once.
    const whole = await waitFor(
      () => {
        const ticks = new Map<number, (typeof received)[number][]>();
        for (const part of parts()) ticks.set(part.data.windowTo, [...(ticks.get(part.data.windowTo) ?? []), part]);
        for (const tick of ticks.values()) {
          const members = tick.flatMap((p) => (p.type === 'MemberAverageLoadAverageEvent' ? p.data.members : []));
          if (members.length >= ids.length) return tick;
        }
        return undefined;
      },
      'a tick listing all 1 000 members',
      30_000,
    );
    const members = whole.flatMap((p) =>
      p.type === 'MemberAverageLoadAverageEvent' ? p.data.members.map((m) => m.memberId) : [],
    );
    // Each once (the lanes make the order they were first seen in any within a round of 20).
    expect([...members].sort()).toEqual(ids);
    expect(whole.length).toBeGreaterThan(1);
    for (const part of whole) expect(Buffer.byteLength(JSON.stringify(part))).toBeLessThanOrEqual(64 * 1024);
    expect(subscriber.counters.droppedOversized).toBe(0);
  }, 90_000);
});
