import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { systemClock } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import { FAKE_BROKER_PAIR, FakeBrokers } from '@faultline/messaging/testing';
import { testMember } from '@faultline/protocol/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { type Agent, createAgent } from './agent.js';
import type { AgentOptions } from './agent-options.js';
import { targetAddress } from './metrics-server.js';
import type { SystemStats, WorkloadProbe } from './stats.js';
import { FakeTransport } from './testing/index.js';

/*
 * A real agent (fake SP endpoints and brokers, real time) serving its health
 * routes and /metrics on a port the OS picks, scraped over real HTTP, and the
 * Prometheus target file it writes for file_sd.
 */

/** Every family of the agent's own (README "Operations → Agent metrics"), with its type. */
const AGENT_FAMILIES: Record<string, 'counter' | 'gauge'> = {
  faultline_agent_activated: 'gauge',
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
  faultline_agent_target_file_failures_total: 'counter',
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
const probe: WorkloadProbe = { stats: async () => ({ type: 'ok', requestsInFlight: 3 }), healthy: async () => true };

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
      system,
      connector: brokers.connector,
      ...extra,
    });
    cleanups.push(() => agent.close());
    return { agent, transport, logger };
  }

  it('serves every family on /metrics with its type, and names its port in a target file removed on stop', async () => {
    const targetsDir = tempDir();
    const { agent, transport } = start('m-1', { metricsTargetsDir: targetsDir });
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

    // The target file: the port the OS picked on loopback, the member's identity as target labels.
    const file = path.join(targetsDir, 'agent-m-1.json');
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual([
      {
        targets: [`127.0.0.1:${port}`],
        labels: {
          member: 'm-1',
          cluster: 'php',
          cluster_instance: 'php-1',
          network_partition: 'np-1',
          partition: 'p-1',
        },
      },
    ]);
    expect(statSync(file).mode & 0o777).toBe(0o644);
    // Written aside and renamed: nothing else is left in the folder.
    expect(readdirSync(targetsDir)).toEqual(['agent-m-1.json']);

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
    expect(sample(text, 'faultline_agent_sp_endpoint{endpoint="sp-2:7612"}')).toBe(1);
    expect(sample(text, 'faultline_agent_sp_endpoint{endpoint="sp-1:7611"}')).toBe(0);
    expect(sample(text, 'faultline_agent_sp_connection{endpoint="sp-2:7612",state="open"}')).toBe(1);
    expect(sample(text, 'faultline_agent_publisher_connected')).toBe(1);
    expect(sample(text, 'faultline_agent_collections_total')).toBeGreaterThanOrEqual(before.collections);
    // No member label of its own: the target file's labels give every series its member.
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
    expect(existsSync(file)).toBe(false);
    expect(await refused(port)).toBe(true);
  });

  it('gives two agents on one host a port each, and a target file each', async () => {
    const targetsDir = tempDir();
    const first = start('m-1', { metricsTargetsDir: targetsDir });
    const second = start('m-2', { metricsTargetsDir: targetsDir });
    await Promise.all([first.agent.start(), second.agent.start()]);
    const ports = [first.agent.metricsPort, second.agent.metricsPort] as number[];
    expect(ports[0]).not.toBe(ports[1]);
    const targets = readdirSync(targetsDir)
      .sort()
      .map((name) => JSON.parse(readFileSync(path.join(targetsDir, name), 'utf8'))[0]);
    expect(targets.map((t) => [t.targets, t.labels.member])).toEqual([
      [[`127.0.0.1:${ports[0]}`], 'm-1'],
      [[`127.0.0.1:${ports[1]}`], 'm-2'],
    ]);
    for (const port of ports) expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(200);
    await first.agent.close();
    expect(readdirSync(targetsDir)).toEqual(['agent-m-2.json']);
  });

  it('serves nothing and writes no file with metrics off', async () => {
    const targetsDir = tempDir();
    const { agent } = start('m-1', { metricsTargetsDir: targetsDir, metrics: false });
    await agent.start();
    expect(agent.metricsPort).toBeUndefined();
    expect(readdirSync(targetsDir)).toEqual([]);
  });

  it('runs on when its port is taken or its target file cannot be written: logged and counted', async () => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => taken.close(resolve)));
    const busy = start('m-1', { metricsPort: (taken.address() as net.AddressInfo).port });
    await busy.agent.start();
    expect(busy.agent.state).toBe('running');
    expect(busy.agent.metricsPort).toBeUndefined();
    expect(busy.agent.counters.metricsListenFailures).toBe(1);
    expect(busy.logger.events()).toContain('agent.metrics_unavailable');

    const missing = path.join(tempDir(), 'not-there');
    const { agent, logger } = start('m-2', { metricsTargetsDir: missing });
    await agent.start();
    expect(agent.metricsPort).toBeGreaterThan(0);
    expect(agent.counters.targetFileFailures).toBe(1);
    expect(logger.records.find((r) => r.event === 'agent.metrics_target_failed')?.fields).toMatchObject({
      op: 'write',
      file: path.join(missing, 'agent-m-2.json'),
    });
    const text = await (await fetch(`http://127.0.0.1:${agent.metricsPort}/metrics`)).text();
    expect(sample(text, 'faultline_agent_target_file_failures_total')).toBe(1);
  });

  it('names a scrape address Prometheus can reach for any bind address', () => {
    expect(targetAddress('127.0.0.1', 9)).toBe('127.0.0.1:9');
    expect(targetAddress('0.0.0.0', 9)).toBe('127.0.0.1:9');
    expect(targetAddress('::1', 9)).toBe('[::1]:9');
    expect(targetAddress('::', 9)).toBe('[::1]:9');
    expect(targetAddress('10.1.2.3', 9)).toBe('10.1.2.3:9');
  });
});
