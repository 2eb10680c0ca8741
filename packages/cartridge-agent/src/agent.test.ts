import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { clusterProbesSchema, systemClock } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import { FAKE_BROKER_PAIR, FakeBrokers } from '@faultline/messaging/testing';
import { decodeEnvelope } from '@faultline/protocol';
import { testMember } from '@faultline/protocol/testing';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createAgent } from './agent.js';
import type { AgentOptions } from './agent-options.js';
import type { CheckOutcome, ProbeCheck } from './probe-checks.js';
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

const PASS: CheckOutcome = { ok: true };
const SLOW: CheckOutcome = { ok: false, reason: 'no answer within 2000 ms' };

/** A workload whose stats and probe answers the test sets; each probe check reads its kind's answer now. */
function fakeWorkload() {
  const state: { stats: ProbeResult; startup: CheckOutcome; liveness: CheckOutcome; readiness: CheckOutcome } = {
    stats: { type: 'ok', requestsInFlight: 4 },
    startup: PASS,
    liveness: PASS,
    readiness: PASS,
  };
  const probe: WorkloadProbe = { stats: async () => state.stats };
  const checks: Record<'startup' | 'liveness' | 'readiness', ProbeCheck> = {
    startup: async () => state.startup,
    liveness: async () => state.liveness,
    readiness: async () => state.readiness,
  };
  return { state, probe, checks };
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
    // Readiness only where a test asks for it (extra.checks), as a configured cluster would.
    checks: { startup: workload.checks.startup, liveness: workload.checks.liveness },
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

  it('publishes InstanceStartedEvent at start and InstanceActivatedEvent once the startup probe passes', async () => {
    const { agent, brokers, workload } = setup({ activationPollMs: 1_000 });
    workload.state.startup = SLOW;
    await agent.start();
    await advance(5_000);
    await until(() => events(brokers).length === 1);
    expect(events(brokers)).toEqual([['InstanceStartedEvent', 'InstanceStartedEvent:m-1:1000']]);
    expect(agent.activated).toBe(false);
    workload.state.startup = PASS;
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

  it('the startup probe gates activation: successThreshold passes in a row, on its own period', async () => {
    let checks = 0;
    const answers = [PASS, SLOW, PASS, PASS];
    const { agent, workload } = setup({
      probes: clusterProbesSchema.parse({ startup: { type: 'http', periodMs: 500, successThreshold: 2 } }),
      checks: {
        startup: async () => answers[checks++] ?? PASS,
        liveness: async () => workload.state.liveness,
      },
    });
    await agent.start();
    await advance(0, 1);
    // 0 ms pass, 500 ms a slow answer (the count starts again), 1 000 ms pass: one in a row.
    await advance(1_000, 2);
    expect(agent.activated).toBe(false);
    await advance(500, 1);
    expect(agent.activated).toBe(true);
    expect(checks).toBe(4);
    expect(agent.counters).toMatchObject({ startupChecks: 4, startupFailures: 1 });
    // Stopped once passed: no more startup checks.
    await advance(10_000);
    expect(checks).toBe(4);
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

  it('a workload that does not answer yet is no fault: no ports_not_open before the startup probe passed', async () => {
    const { agent, transport, workload, logger } = setup({ activationPollMs: 1_000 });
    workload.state.stats = { type: 'no-answer', reason: 'connect ECONNREFUSED' };
    workload.state.startup = { ok: false, reason: 'GET /healthz: connect ECONNREFUSED' };
    workload.state.liveness = { ok: false, reason: 'GET /stats: connect ECONNREFUSED' };
    await agent.start();
    await advance(0, 1);
    await advance(60_000);
    const kinds = (seq: number) => transport.batches.get(seq)?.stats.map((s) => s.healthDescription);
    // Five batches while it starts: machine figures only, never ports_not_open (liveness has not run).
    for (const seq of [1, 2, 3, 4, 5]) expect(kinds(seq)).toEqual(['load_average', 'memory_consumption']);
    expect(agent.counters).toMatchObject({ portsNotOpen: 0, statsUnanswered: 5, livenessChecks: 0, livenessDown: 0 });
    expect(agent.activated).toBe(false);
    expect(logger.events().filter((e) => e === 'agent.probe_not_passed_yet')).toHaveLength(1);
    await agent.close();
  });

  it('liveness: two slow answers with threshold 3 report nothing; the third reports ports_not_open at once, alone, every round until it passes', async () => {
    const { agent, transport, workload, logger } = setup();
    await agent.start();
    await advance(0, 1);
    expect(agent.activated).toBe(true);
    // Liveness checks at 0 (passed), 15 s and 30 s: both slow; the stat rounds' GET /stats slow too.
    workload.state.liveness = SLOW;
    workload.state.stats = { type: 'no-answer', reason: 'GET /stats on the workload: no answer within 2000 ms' };
    await advance(30_000);
    const kinds = (seq: number) => transport.batches.get(seq)?.stats.map((s) => s.healthDescription);
    expect(agent.counters).toMatchObject({ livenessFailures: 2, livenessDown: 0, portsNotOpen: 0 });
    expect(agent.down).toBe(false);
    for (const seq of [2, 3]) expect(kinds(seq)).toEqual(['load_average', 'memory_consumption']);
    expect(transport.acceptedSequences()).toEqual([1, 2, 3]);
    // It answers again: the count starts over. Two more slow answers are still no fault.
    workload.state.liveness = PASS;
    workload.state.stats = { type: 'ok', requestsInFlight: 1 };
    await advance(15_000);
    workload.state.liveness = SLOW;
    await advance(30_000);
    expect(agent.counters).toMatchObject({ livenessFailures: 4, livenessDown: 0, portsNotOpen: 0 });
    // The third in a row (90 s): reported at once, in a batch of its own, not at the next round.
    const before = agent.counters.batches;
    await advance(15_000);
    expect(agent.down).toBe(true);
    expect(agent.counters.livenessDown).toBe(1);
    const report = transport
      .acceptedSequences()
      .filter((seq) => seq > before)
      .map((seq) => transport.batches.get(seq)?.stats ?? [])
      .find((stats) => stats.some((stat) => stat.healthDescription === 'ports_not_open'));
    expect(report?.map((stat) => [stat.healthDescription, stat.value, stat.timestamp])).toEqual([
      ['ports_not_open', 1, Date.now()],
    ]);
    // Every round while down: ports_not_open alone (machine figures would start a new life at the SP).
    await advance(30_000);
    const rounds = transport.acceptedSequences().slice(-2);
    for (const seq of rounds) expect(kinds(seq)).toEqual(['ports_not_open']);
    expect(agent.counters.portsNotOpen).toBeGreaterThanOrEqual(2);
    // It passes again (successThreshold 1): normal rounds.
    workload.state.liveness = PASS;
    await advance(15_000);
    expect(agent.down).toBe(false);
    await advance(15_000);
    expect(kinds(Math.max(...transport.acceptedSequences()))).toEqual([
      'load_average',
      'memory_consumption',
      'requests_in_flight',
    ]);
    expect(logger.events().filter((e) => e === 'agent.liveness_failed' || e === 'agent.liveness_passing')).toEqual([
      'agent.liveness_failed',
      'agent.liveness_passing',
    ]);
    await agent.close();
  });

  it('readiness: failing past its threshold takes the member out of service (an event, not a fault), passing puts it back', async () => {
    const { agent, transport, workload, brokers } = setup({
      statIntervalMs: 15_000,
      probes: clusterProbesSchema.parse({
        readiness: { type: 'http', path: '/ready', periodMs: 5_000, failureThreshold: 2 },
      }),
      checks: {
        startup: async () => PASS,
        liveness: async () => PASS,
        readiness: async () => workload.state.readiness,
      },
    });
    await agent.start();
    await advance(0, 1);
    workload.state.readiness = { ok: false, reason: 'GET /ready: HTTP 503, expected 200' };
    await advance(5_000);
    expect(agent.inService).toBe(true);
    await advance(5_000);
    expect(agent.inService).toBe(false);
    expect(agent.down).toBe(false);
    workload.state.readiness = PASS;
    await advance(5_000);
    expect(agent.inService).toBe(true);
    await advance(30_000);
    await until(() => events(brokers).length === 4);
    expect(events(brokers)).toEqual([
      ['InstanceStartedEvent', 'InstanceStartedEvent:m-1:1000'],
      ['InstanceActivatedEvent', 'InstanceActivatedEvent:m-1:1000'],
      ['InstanceOutOfServiceEvent', 'InstanceOutOfServiceEvent:m-1:1000:1'],
      ['InstanceInServiceEvent', 'InstanceInServiceEvent:m-1:1000:2'],
    ]);
    const data = brokers
      .messages('a')
      .slice(2)
      .map((m) => {
        const decoded = decodeEnvelope(m.payload, { topic: m.topic });
        return decoded.ok ? decoded.value.data : undefined;
      });
    expect(data).toEqual([
      expect.objectContaining({ memberId: 'm-1', seq: 1, reason: 'GET /ready: HTTP 503, expected 200' }),
      expect.objectContaining({ memberId: 'm-1', seq: 2 }),
    ]);
    // Both of one life, so a subscriber orders them by seq.
    expect(new Set(data.map((d) => (d as unknown as { life: number }).life)).size).toBe(1);
    // Out of service is not down: no ports_not_open, ever.
    for (const seq of transport.acceptedSequences()) {
      expect(transport.batches.get(seq)?.stats.some((s) => s.healthDescription === 'ports_not_open')).toBe(false);
    }
    expect(agent.counters).toMatchObject({ outOfService: 1, livenessDown: 0, readinessFailures: 2 });
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
