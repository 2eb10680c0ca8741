import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { type Clock, type MetricsSource, systemClock } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import { FAKE_BROKER_PAIR, FakeBrokers } from '@faultline/messaging/testing';
import { testMember } from '@faultline/protocol/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { type Agent, createAgent } from './agent.js';
import type { AgentOptions } from './agent-options.js';
import { cachedMetrics, serveAgentMetrics } from './metrics-server.js';
import type { SystemStats, WorkloadProbe } from './stats.js';
import { FakeTransport } from './testing/index.js';

/*
 * A real agent (fake SP endpoints and brokers, real time) serving its health
 * routes and /metrics on a port the OS picks, scraped over real HTTP, and the
 * port file it records that port in (in its own folder: the local driver
 * checks it and writes the Prometheus target itself).
 */

/** Every family of the agent's own (README "Operations → Agent metrics"), with its type. */
const AGENT_FAMILIES: Record<string, 'counter' | 'gauge'> = {
  faultline_agent_activated: 'gauge',
  faultline_agent_probe_passing: 'gauge',
  faultline_agent_probe_checks_total: 'counter',
  faultline_agent_batches_total: 'counter',
  faultline_agent_batches_queued: 'gauge',
  faultline_agent_batch_sends_total: 'counter',
  faultline_agent_batch_send_failures_total: 'counter',
  faultline_agent_batches_acked_total: 'counter',
  faultline_agent_batches_duplicate_total: 'counter',
  faultline_agent_stats_acked_total: 'counter',
  faultline_agent_batches_dropped_total: 'counter',
  faultline_agent_id_renewals_total: 'counter',
  faultline_agent_failovers_total: 'counter',
  faultline_agent_sender_state: 'gauge',
  faultline_agent_sp_endpoint: 'gauge',
  faultline_agent_sp_connection: 'gauge',
  faultline_agent_collections_total: 'counter',
  faultline_agent_collections_skipped_total: 'counter',
  faultline_agent_workload_probe_failures_total: 'counter',
  faultline_agent_machine_figures_invalid_total: 'counter',
  faultline_agent_port_file_failures_total: 'counter',
  faultline_agent_http_requests_refused_total: 'counter',
  // Its publisher's (messaging's), under the agent's prefix.
  faultline_agent_outbox_messages: 'gauge',
  faultline_agent_outbox_bytes: 'gauge',
  faultline_agent_published_total: 'counter',
  faultline_agent_acked_total: 'counter',
  faultline_agent_publisher_connected: 'gauge',
};

/** Node's process metrics every service has (a sample of them). */
const PROCESS_FAMILIES: Record<string, string> = {
  process_cpu_seconds_total: 'counter',
  process_resident_memory_bytes: 'gauge',
  process_start_time_seconds: 'gauge',
  nodejs_eventloop_lag_p99_seconds: 'gauge',
  nodejs_gc_duration_seconds: 'histogram',
  nodejs_heap_size_used_bytes: 'gauge',
};

const system: SystemStats = {
  loadAverage: () => 1,
  cpuCount: () => 2,
  freeMemoryBytes: () => 1,
  totalMemoryBytes: () => 2,
};
const probe: WorkloadProbe = { stats: async () => ({ type: 'ok', requestsInFlight: 3 }) };
/** Probes that pass: the workload port (1) is never dialled. */
const checks = { startup: async () => ({ ok: true as const }), liveness: async () => ({ ok: true as const }) };

/** `# TYPE` of every family of a scrape. */
function families(text: string): Map<string, string> {
  const types = new Map<string, string>();
  for (const match of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) types.set(match[1] as string, match[2] as string);
  return types;
}

/** The value of one series of a scrape (`name{labels}` exactly as exposed). */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

async function until(predicate: () => boolean, what: string, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const refused = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });

describe('agent metrics', () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn();
  });

  function tempDir() {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faultline-agent-metrics-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
  }

  function start(memberId: string, extra: Partial<AgentOptions> = {}) {
    const brokers = new FakeBrokers();
    const transport = new FakeTransport();
    const logger = createMemoryLogger();
    const agent: Agent = createAgent({
      member: testMember(memberId),
      spEndpoints: [
        { host: 'sp-1', port: 7611 },
        { host: 'sp-2', port: 7612 },
      ],
      brokers: FAKE_BROKER_PAIR,
      outboxFile: path.join(tempDir(), `agent-${memberId}.outbox`),
      workload: { host: '127.0.0.1', port: 1 },
      statIntervalMs: 20,
      activationPollMs: 10,
      agentId: `${memberId}:1000`,
      credential: `${memberId}:php:np-1:test-credential`,
      clock: systemClock,
      logger,
      transport,
      probe,
      checks,
      system,
      connector: brokers.connector,
      ...extra,
    });
    cleanups.push(() => agent.close());
    return { agent, transport, logger };
  }

  it('serves every family on /metrics with its type, and records its port in its own folder until it stops', async () => {
    const memberDir = tempDir();
    const portFile = path.join(memberDir, 'agent-metrics-port');
    // Every scrape collects afresh (the cache has its own tests below).
    const { agent, transport } = start('m-1', { metricsPortFile: portFile, metricsMaxAgeMs: 0 });
    transport.set('sp-1:7611', 'passive');
    await agent.start();
    const port = agent.metricsPort as number;
    expect(port).toBeGreaterThan(0);
    await until(() => agent.counters.acked >= 3 && agent.activated, 'acked batches');
    // The publisher connects to the fake brokers on its own time.
    for (let i = 0; i < 200; i++) {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      if (sample(text, 'faultline_agent_publisher_connected') === 1) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }

    // The port file: the port the OS picked, and nothing else (no address, no labels: the driver's business).
    expect(readFileSync(portFile, 'utf8')).toBe(`${port}\n`);
    expect(statSync(portFile).mode & 0o777).toBe(0o600);
    // Written aside and renamed: nothing else is left in the folder.
    expect(readdirSync(memberDir)).toEqual(['agent-metrics-port']);

    const before = agent.counters;
    const response = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    const types = families(text);
    const own = Object.fromEntries([...types].filter(([name]) => name.startsWith('faultline_')));
    expect(own).toEqual(AGENT_FAMILIES);
    for (const [name, type] of Object.entries(PROCESS_FAMILIES)) expect(types.get(name), name).toBe(type);

    // Values read from the agent itself, when scraped.
    expect(sample(text, 'faultline_agent_activated')).toBe(1);
    expect(sample(text, 'faultline_agent_batches_acked_total')).toBeGreaterThanOrEqual(3);
    expect(sample(text, 'faultline_agent_stats_acked_total')).toBe(
      3 * (sample(text, 'faultline_agent_batches_acked_total') ?? 0),
    );
    expect(sample(text, 'faultline_agent_batch_send_failures_total{reason="not_active"}')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'faultline_agent_batch_send_failures_total{reason="timeout"}')).toBe(0);
    expect(sample(text, 'faultline_agent_batches_dropped_total{reason="buffer_full"}')).toBe(0);
    expect(sample(text, 'faultline_agent_workload_probe_failures_total{reason="ports_not_open"}')).toBe(0);
    expect(sample(text, 'faultline_agent_workload_probe_failures_total{reason="no_answer"}')).toBe(0);
    // README "Probes": startup passed, liveness passes, no readiness probe configured (no series).
    expect(sample(text, 'faultline_agent_probe_passing{probe="startup"}')).toBe(1);
    expect(sample(text, 'faultline_agent_probe_passing{probe="liveness"}')).toBe(1);
    expect(text).not.toMatch(/^faultline_agent_probe_passing\{probe="readiness"\}/m);
    expect(sample(text, 'faultline_agent_probe_checks_total{probe="startup",result="pass"}')).toBe(1);
    expect(sample(text, 'faultline_agent_probe_checks_total{probe="liveness",result="fail"}')).toBe(0);
    expect(sample(text, 'faultline_agent_sp_endpoint{endpoint="sp-2:7612"}')).toBe(1);
    expect(sample(text, 'faultline_agent_sp_endpoint{endpoint="sp-1:7611"}')).toBe(0);
    expect(sample(text, 'faultline_agent_sp_connection{endpoint="sp-2:7612",state="open"}')).toBe(1);
    expect(sample(text, 'faultline_agent_publisher_connected')).toBe(1);
    expect(sample(text, 'faultline_agent_collections_total')).toBeGreaterThanOrEqual(before.collections);
    // No member label of its own: the labels of the driver's target file give every series its member.
    expect(text).not.toMatch(/^faultline_agent_\S*member=/m);

    const health = await fetch(`http://127.0.0.1:${port}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ member: 'm-1', cluster: 'php', state: 'running', ready: true });
    expect((await fetch(`http://127.0.0.1:${port}/readiness`)).status).toBe(200);
    // Another method is refused and counted.
    expect((await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'POST' })).status).toBe(405);
    const again = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(sample(again, 'faultline_agent_http_requests_refused_total')).toBe(1);

    await agent.close();
    expect(existsSync(portFile)).toBe(false);
    expect(await refused(port)).toBe(true);
  });

  it('gives two agents on one host a port each, each recorded in its own port file', async () => {
    const files = [path.join(tempDir(), 'agent-metrics-port'), path.join(tempDir(), 'agent-metrics-port')];
    const first = start('m-1', { metricsPortFile: files[0] as string });
    const second = start('m-2', { metricsPortFile: files[1] as string });
    await Promise.all([first.agent.start(), second.agent.start()]);
    const ports = [first.agent.metricsPort, second.agent.metricsPort] as number[];
    expect(ports[0]).not.toBe(ports[1]);
    expect(files.map((file) => readFileSync(file, 'utf8'))).toEqual(ports.map((port) => `${port}\n`));
    for (const port of ports) expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(200);
    await first.agent.close();
    expect(files.map((file) => existsSync(file))).toEqual([false, true]);
  });

  it('serves nothing and writes no file with metrics off', async () => {
    const memberDir = tempDir();
    const { agent } = start('m-1', { metricsPortFile: path.join(memberDir, 'agent-metrics-port'), metrics: false });
    await agent.start();
    expect(agent.metricsPort).toBeUndefined();
    expect(readdirSync(memberDir)).toEqual([]);
  });

  it('answers a flood of concurrent scrapes with one collection: every answer the same body', async () => {
    const { agent } = start('m-1');
    await agent.start();
    const url = `http://127.0.0.1:${agent.metricsPort}/metrics`;
    const bodies = await Promise.all(Array.from({ length: 40 }, async () => (await fetch(url)).text()));
    // One collection: its CPU and heap figures, read once, are in every answer.
    expect(new Set(bodies).size).toBe(1);
    expect(bodies[0]).toMatch(/^process_cpu_seconds_total /m);
  });

  it('runs on when its port is taken or its port file cannot be written: logged and counted', async () => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => taken.close(resolve)));
    const busy = start('m-1', { metricsPort: (taken.address() as net.AddressInfo).port });
    await busy.agent.start();
    expect(busy.agent.state).toBe('running');
    expect(busy.agent.metricsPort).toBeUndefined();
    expect(busy.agent.counters.metricsListenFailures).toBe(1);
    expect(busy.logger.events()).toContain('agent.metrics_unavailable');

    const missing = path.join(tempDir(), 'not-there', 'agent-metrics-port');
    const { agent, logger } = start('m-2', { metricsPortFile: missing });
    await agent.start();
    expect(agent.metricsPort).toBeGreaterThan(0);
    expect(agent.counters.portFileFailures).toBe(1);
    expect(logger.records.find((r) => r.event === 'agent.metrics_port_file_failed')?.fields).toMatchObject({
      op: 'write',
      file: missing,
    });
    const text = await (await fetch(`http://127.0.0.1:${agent.metricsPort}/metrics`)).text();
    expect(sample(text, 'faultline_agent_port_file_failures_total')).toBe(1);
  });
});

/** A metrics source that counts its collections, each taking `ms` of real time (or failing while `fail` is set). */
function countingSource(ms = 20) {
  const source = {
    collections: 0,
    fail: false,
    contentType: 'text/plain; version=0.0.4; charset=utf-8',
    metrics: async () => {
      source.collections += 1;
      const n = source.collections;
      const failing = source.fail;
      await new Promise((resolve) => setTimeout(resolve, ms));
      if (failing) throw new Error('collection failed');
      return `collection ${n}\n`;
    },
  };
  return source;
}

/** A clock whose monotonic time only moves when told (timers are the system's). */
function steppedClock(): Clock & { advance(ms: number): void } {
  let now = 0;
  return {
    ...systemClock,
    monotonicNow: () => now,
    advance: (ms) => {
      now += ms;
    },
  };
}

describe('agent /metrics under a flood (README "Operations → Agent metrics")', () => {
  it('collects once for any number of concurrent scrapes, and serves that body for up to a second', async () => {
    const source = countingSource();
    const clock = steppedClock();
    const served = await serveAgentMetrics({
      host: '127.0.0.1',
      port: 0,
      portFile: undefined,
      metrics: source,
      state: () => ({ body: {}, ready: true, reason: 'running' }),
      clock,
      logger: createMemoryLogger(),
      onPortFileFailed: () => {},
      onRefused: () => {},
    });
    try {
      const scrape = async () => {
        const response = await fetch(`http://127.0.0.1:${served.port}/metrics`);
        return `${response.status} ${await response.text()}`;
      };
      const flood = await Promise.all(Array.from({ length: 50 }, scrape));
      expect(new Set(flood)).toEqual(new Set(['200 collection 1\n']));
      expect(source.collections).toBe(1);
      // Within the second: the same body, no collection.
      clock.advance(999);
      expect(await scrape()).toBe('200 collection 1\n');
      expect(source.collections).toBe(1);
      // A second after that collection began: a fresh one, shared again.
      clock.advance(1);
      expect(new Set(await Promise.all(Array.from({ length: 10 }, scrape)))).toEqual(new Set(['200 collection 2\n']));
      expect(source.collections).toBe(2);
    } finally {
      await served.close();
    }
  });

  it('keeps no failed collection: its waiters get the error, the next request collects again', async () => {
    const source = countingSource(5);
    const clock = steppedClock();
    const metrics: MetricsSource = cachedMetrics(source, clock, 1_000);
    source.fail = true;
    const failed = await Promise.allSettled([metrics.metrics(), metrics.metrics()]);
    expect(failed.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(source.collections).toBe(1);
    source.fail = false;
    expect(await metrics.metrics()).toBe('collection 2\n');
    expect(await metrics.metrics()).toBe('collection 2\n');
    expect(source.collections).toBe(2);
    expect(metrics.contentType).toBe(source.contentType);
  });
});
