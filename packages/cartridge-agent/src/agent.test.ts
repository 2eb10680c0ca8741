import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { systemClock } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import { FAKE_BROKER_PAIR, FakeBrokers } from '@faultline/messaging/testing';
import { decodeEnvelope } from '@faultline/protocol';
import { testMember } from '@faultline/protocol/testing';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createAgent } from './agent.js';
import type { AgentOptions } from './agent-options.js';
import type { ProbeResult, SystemStats, WorkloadProbe } from './stats.js';
import { FakeTransport } from './testing/index.js';

const member = testMember('m-1');

/** 2 cores at load 1.5, 8 GiB with 2 GiB free: 75 % load, 75 % memory. */
const system: SystemStats = {
  loadAverage: () => 1.5,
  cpuCount: () => 2,
  freeMemoryBytes: () => 2 * 2 ** 30,
  totalMemoryBytes: () => 8 * 2 ** 30,
};

function fakeWorkload() {
  const state: { stats: ProbeResult; healthy: boolean } = { stats: { type: 'ok', requestsInFlight: 4 }, healthy: true };
  const probe: WorkloadProbe = { stats: async () => state.stats, healthy: async () => state.healthy };
  return { state, probe };
}

function setup(extra: Partial<AgentOptions> = {}) {
  const brokers = new FakeBrokers();
  const transport = new FakeTransport();
  const workload = fakeWorkload();
  const logger = createMemoryLogger();
  const agent = createAgent({
    member,
    spEndpoints: [
      { host: 'sp-1', port: 7611 },
      { host: 'sp-2', port: 7612 },
    ],
    brokers: FAKE_BROKER_PAIR,
    outboxFile: path.join(mkdtempSync(path.join(os.tmpdir(), 'faultline-agent-')), 'agent-m-1.outbox'),
    workload: { host: '127.0.0.1', port: 1 },
    statIntervalMs: 15_000,
    agentId: 'm-1:1000',
    credential: 'm-1:php:np-1:test-credential',
    clock: systemClock,
    logger,
    transport,
    probe: workload.probe,
    system,
    connector: brokers.connector,
    // No real port under fake time: metrics.test.ts serves and scrapes them.
    metrics: false,
    ...extra,
  });
  return { agent, brokers, transport, workload, logger };
}

/** The envelopes broker `a` received, as [type, id]. */
const events = (brokers: FakeBrokers) =>
  brokers.messages('a').map((m) => {
    const decoded = decodeEnvelope(m.payload, { topic: m.topic });
    return decoded.ok ? [decoded.value.type, decoded.value.id] : ['invalid', m.topic];
  });

// The outbox does real file I/O between fake-time steps: let it settle.
async function advance(ms: number, steps = 5) {
  for (let i = 0; i < steps; i++) {
    await vi.advanceTimersByTimeAsync(ms / steps);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Waits, without moving fake time, for the outbox's real fsync'd writes to reach the broker. */
async function until(predicate: () => boolean) {
  for (let i = 0; i < 5_000 && !predicate(); i++) await new Promise((resolve) => setImmediate(resolve));
  expect(predicate()).toBe(true);
}

describe('cartridge agent', () => {
  beforeEach(() =>
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date', 'performance'] }),
  );
  afterEach(() => vi.useRealTimers());

  it('publishes InstanceStartedEvent at start and InstanceActivatedEvent once the health check passes', async () => {
    const { agent, brokers, workload } = setup({ activationPollMs: 1_000 });
    workload.state.healthy = false;
    await agent.start();
    await advance(5_000);
    await until(() => events(brokers).length === 1);
    expect(events(brokers)).toEqual([['InstanceStartedEvent', 'InstanceStartedEvent:m-1:1000']]);
    expect(agent.activated).toBe(false);
    workload.state.healthy = true;
    await advance(1_000);
    expect(agent.activated).toBe(true);
    await advance(10_000);
    await until(() => events(brokers).length === 2);
    expect(events(brokers)).toEqual([
      ['InstanceStartedEvent', 'InstanceStartedEvent:m-1:1000'],
      ['InstanceActivatedEvent', 'InstanceActivatedEvent:m-1:1000'],
    ]);
    expect(brokers.messages('a').map((m) => m.topic)).toEqual([
      'instance/status/m-1/InstanceStartedEvent',
      'instance/status/m-1/InstanceActivatedEvent',
    ]);
    await agent.close();
  });

  it('sends one batch at start and one every interval: load % of cores, memory %, requests in flight', async () => {
    const { agent, transport } = setup();
    await agent.start();
    await advance(0, 1);
    await advance(30_000);
    expect(transport.acceptedSequences()).toEqual([1, 2, 3]);
    const batch = transport.batches.get(2);
    expect(batch?.agentId).toBe('m-1:1000');
    expect(batch?.stats.map((s) => [s.healthDescription, s.value])).toEqual([
      ['load_average', 75],
      ['memory_consumption', 75],
      ['requests_in_flight', 4],
    ]);
    expect(batch?.stats[0]).toMatchObject({ ...member, timestamp: Date.now() - 15_000 });
    await agent.close();
  });

  it('a workload slower to open its port than the first stats is not ports_not_open until it answered or activated', async () => {
    const { agent, transport, workload, logger } = setup({ activationPollMs: 1_000 });
    workload.state.stats = { type: 'no-answer', reason: 'connect ECONNREFUSED' };
    workload.state.healthy = false;
    await agent.start();
    await advance(0, 1);
    await advance(30_000);
    const last = (seq: number) => transport.batches.get(seq)?.stats.map((s) => s.healthDescription);
    // Three batches while it starts: machine figures only, never ports_not_open.
    for (const seq of [1, 2, 3]) expect(last(seq)).toEqual(['load_average', 'memory_consumption']);
    expect(agent.counters).toMatchObject({ portsNotOpen: 0, portNotYetOpen: 3 });
    expect(logger.events().filter((e) => e === 'agent.workload_port_not_yet_open')).toHaveLength(1);
    // It activates (healthz answers), then its port closes: now that is a fault.
    workload.state.healthy = true;
    await advance(1_000);
    expect(agent.activated).toBe(true);
    await advance(14_000);
    expect(last(4)).toEqual(['load_average', 'memory_consumption', 'ports_not_open']);
    expect(agent.counters.portsNotOpen).toBe(1);
    await agent.close();
  });

  it('reports ports_not_open while the workload port does not answer, and requests in flight again after', async () => {
    const { agent, transport, workload, logger } = setup();
    await agent.start();
    await advance(0, 1);
    workload.state.stats = { type: 'no-answer', reason: 'connect ECONNREFUSED' };
    await advance(30_000);
    workload.state.stats = { type: 'ok', requestsInFlight: 0 };
    await advance(15_000);
    const kinds = [1, 2, 3, 4].map((seq) => transport.batches.get(seq)?.stats.at(-1)?.healthDescription);
    expect(kinds).toEqual(['requests_in_flight', 'ports_not_open', 'ports_not_open', 'requests_in_flight']);
    expect(transport.batches.get(2)?.stats.at(-1)?.value).toBe(1);
    expect(agent.counters.portsNotOpen).toBe(2);
    // One line when the port closes, one when it answers again: not one per interval.
    expect(logger.events().filter((event) => event.startsWith('agent.workload_port_'))).toEqual([
      'agent.workload_port_closed',
      'agent.workload_port_open',
    ]);
    await agent.close();
  });

  it('keeps its memory within the bound through 10 minutes of unreachable SP endpoints', async () => {
    const { agent, transport } = setup({ statIntervalMs: 1_000, maxUnackedBatches: 50 });
    transport.set('sp-1:7611', 'down');
    transport.set('sp-2:7612', 'hung');
    await agent.start();
    let maxQueued = 0;
    let maxTimers = 0;
    for (let second = 0; second < 600; second++) {
      await vi.advanceTimersByTimeAsync(1_000);
      maxQueued = Math.max(maxQueued, agent.queued);
      maxTimers = Math.max(maxTimers, vi.getTimerCount());
    }
    const { batches, droppedBatches, acked } = agent.counters;
    expect(batches).toBeGreaterThanOrEqual(600);
    expect(acked).toBe(0);
    expect(maxQueued).toBe(50);
    expect(agent.queued).toBe(50);
    expect(droppedBatches).toBe(batches - 50);
    // No timer piles up either: the stat and activation intervals, the publisher's, one call or backoff timer.
    expect(maxTimers).toBeLessThanOrEqual(5);
    // The SP comes back: everything still held arrives, in order; all else was dropped and counted.
    transport.set('sp-2:7612', 'active');
    await vi.advanceTimersByTimeAsync(20_000);
    const after = agent.counters;
    expect(agent.queued).toBe(0);
    const accepted = transport.acceptedSequences();
    expect(accepted.length + after.droppedBatches).toBe(after.batches);
    expect(accepted).toEqual(Array.from(accepted, (_, i) => after.droppedBatches + 1 + i));
    await agent.close();
  });

  it('while the SP pair is down it retries at least once per stat interval, so a new active hears from it within its grace', async () => {
    // A first version backed off to 10 s whatever the stat interval: with a 4 s fault timeout, the
    // new active after an SP outage faulted healthy members whose agents were still waiting.
    const { agent, transport } = setup({ statIntervalMs: 2_000 });
    transport.set('sp-1:7611', 'down');
    transport.set('sp-2:7612', 'down');
    await agent.start();
    await vi.advanceTimersByTimeAsync(60_000);
    const before = transport.calls.length;
    await vi.advanceTimersByTimeAsync(10_000);
    // Two endpoints tried in each round; a round at least every 2 s once the backoff is saturated.
    expect(transport.calls.length - before).toBeGreaterThanOrEqual(10);
    transport.set('sp-2:7612', 'active');
    await vi.advanceTimersByTimeAsync(2_000);
    expect(transport.acceptedSequences().length).toBeGreaterThan(0);
    await agent.close();
  });

  it('closes idempotently and stops every timer', async () => {
    const { agent, transport } = setup();
    await agent.start();
    await advance(0, 1);
    await Promise.all([agent.close(), agent.close()]);
    expect(agent.state).toBe('closed');
    expect(transport.closed).toBe(true);
    const sent = transport.calls.length;
    await advance(60_000);
    expect(transport.calls).toHaveLength(sent);
  });
});
