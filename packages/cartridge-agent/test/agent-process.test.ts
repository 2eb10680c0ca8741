import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createWorkload, type Workload } from '@faultline/cloud-controller';
import { issueMemberCredential } from '@faultline/protocol';
import { TEST_MEMBER_KEY, testMember } from '@faultline/protocol/testing';
import { freePort } from '@faultline/test-support';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, logRecords, pause, spawnAgent, startSpPair, waitFor } from './helpers.js';

/*
 * The cartridge agent as a real process (the built main.js) against two real
 * Thrift endpoints whose accepting node flips, as an SP pair's does on
 * failover; a real workload on loopback. Intervals are shortened through the
 * agent's environment, never by editing a default.
 */
describe('cartridge agent process', () => {
  const cleanups: (() => unknown)[] = [];
  beforeAll(assertBuilt);
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn();
  });

  async function setup() {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faultline-agent-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const workload: Workload = createWorkload({ latencyMs: 5 });
    const workloadPort = await workload.listen(0, '127.0.0.1');
    cleanups.push(() => workload.close());
    const pair = await startSpPair();
    cleanups.push(() => pair.close());
    // Nothing listens on the broker port: status events wait in the outbox, which this test does not look at.
    const brokerPort = await freePort();
    const env = {
      FAULTLINE_MEMBER_ID: 'm-1',
      FAULTLINE_CLUSTER_ID: 'php',
      FAULTLINE_CLUSTER_INSTANCE_ID: 'php-1',
      FAULTLINE_NETWORK_PARTITION_ID: 'np-1',
      FAULTLINE_PARTITION_ID: 'p-1',
      FAULTLINE_MEMBER_CREDENTIAL: issueMemberCredential(TEST_MEMBER_KEY, testMember('m-1')),
      FAULTLINE_SP_ENDPOINTS: pair.ports.map((port) => `127.0.0.1:${port}`).join(','),
      FAULTLINE_BROKERS: `a@127.0.0.1:${brokerPort}`,
      FAULTLINE_AGENT_USERNAME: 'agent',
      FAULTLINE_AGENT_PASSWORD: 'agent-test-secret',
      FAULTLINE_WORKLOAD_PORT: String(workloadPort),
      FAULTLINE_OUTBOX_DIR: path.join(dir, 'outbox'),
      FAULTLINE_LOGGING_DIR: dir,
      FAULTLINE_LOG_LEVEL: 'debug',
      FAULTLINE_AGENT_STAT_INTERVAL_MS: '100',
      FAULTLINE_AGENT_CALL_TIMEOUT_MS: '300',
    };
    return { dir, workload, pair, env, logFile: path.join(dir, 'agent-m-1.jsonl') };
  }

  it('every batch is taken exactly once by one of two endpoints whose accepting node flips, none lost', async () => {
    const { pair, env, logFile } = await setup();
    const agent = spawnAgent(env);
    cleanups.push(() => agent.child.kill('SIGKILL'));
    const taken = () => pair.taken.length;
    await waitFor(() => taken() >= 3, `first batches (agent output: ${agent.output()})`);

    const flip = async (sp1: 'active' | 'passive' | 'ack-lost', sp2: 'active' | 'passive', ms: number) => {
      pair.modes['sp-1'] = sp1;
      pair.modes['sp-2'] = sp2;
      await pause(ms);
    };
    await flip('passive', 'active', 500);
    await flip('active', 'passive', 500);
    // The active takes a batch and its ack is lost (a node dying mid-call): the resend must be a duplicate.
    // Held until one is lost, however late the agent's next batch comes on a loaded machine.
    const lostBefore = pair.replies.unanswered;
    await flip('ack-lost', 'passive', 0);
    await waitFor(() => pair.replies.unanswered > lostBefore, 'a batch taken and its ack lost');
    await flip('passive', 'active', 1_500);
    await flip('active', 'passive', 500);
    await flip('passive', 'active', 500);
    // Settle on one node until the agent has caught up with everything it held.
    await flip('active', 'passive', 0);
    const before = taken();
    await waitFor(() => taken() >= before + 5, 'batches after the last flip');

    agent.child.kill('SIGTERM');
    expect(await agent.exited).toBe(0);
    const [stopped] = logRecords(logFile, 'agent.stopped');
    expect(stopped, agent.output()).toBeDefined();
    const counters = stopped as Record<'batches' | 'queued' | 'duplicates' | 'refused' | 'timeouts', number>;

    const sequences = pair.taken.map((t) => t.sequence).sort((a, b) => a - b);
    // Exactly once: no sequence taken twice, by the same or the other node.
    expect(new Set(sequences).size).toBe(sequences.length);
    // None lost: 1..n without a gap, n = every batch the agent made except the last in flight at SIGTERM.
    expect(sequences).toEqual(sequences.map((_, i) => i + 1));
    expect(sequences.length).toBeGreaterThanOrEqual(counters.batches - counters.queued);
    expect(new Set(pair.taken.map((t) => t.node))).toEqual(new Set(['sp-1', 'sp-2']));
    expect(new Set(pair.taken.map((t) => t.agentId)).size).toBe(1);
    expect(counters).toMatchObject({ droppedBatches: 0, rejectedBatches: 0 });
    expect(counters.duplicates).toBeGreaterThanOrEqual(1);
    expect(counters.duplicates).toBe(pair.replies.duplicates);
    expect(counters.refused).toBe(pair.replies.refused);
    expect(counters.timeouts).toBeGreaterThanOrEqual(1);
  });

  it('reports requests in flight, and ports_not_open alone once liveness failed 3 times in a row (README "Probes")', async () => {
    const { pair, env, workload, logFile } = await setup();
    const agent = spawnAgent(env);
    cleanups.push(() => agent.child.kill('SIGKILL'));
    await waitFor(() => pair.taken.length >= 2, `first batches (agent output: ${agent.output()})`);
    await waitFor(() => logRecords(logFile, 'agent.startup_passed').length === 1, 'activation');
    await workload.close();
    const closedAt = pair.taken.length;
    const down = (i: number) => pair.taken[i]?.stats.some((s) => s.healthDescription === 'ports_not_open') ?? false;
    await waitFor(
      () => pair.taken.filter((_, i) => i >= closedAt && down(i)).length >= 4,
      'batches after the workload stopped',
    );
    agent.child.kill('SIGTERM');
    expect(await agent.exited).toBe(0);
    const last = (index: number) => pair.taken[index]?.stats.at(-1);
    expect(last(0)).toMatchObject({ healthDescription: 'requests_in_flight', memberId: 'm-1' });
    // Not at the first miss: the default liveness probe (GET /stats, every stat interval) fails 3 times
    // in a row first. From then on every batch is ports_not_open alone.
    const firstDown = pair.taken.findIndex((_, i) => i >= closedAt && down(i));
    expect(firstDown).toBeGreaterThan(closedAt);
    for (let i = firstDown; i < pair.taken.length; i++) {
      expect(pair.taken[i]?.stats.map((s) => [s.healthDescription, s.value])).toEqual([['ports_not_open', 1]]);
    }
    // One info line per failure counted toward the threshold (the failures after it are debug lines).
    const counted = logRecords(logFile, 'agent.probe_check_failed').filter((r) => r.level === 'info');
    expect(counted.map((r) => r.failuresInRow)).toEqual([1, 2]);
    expect(logRecords(logFile, 'agent.liveness_failed')).toMatchObject([{ failureThreshold: 3 }]);
    const [stopped] = logRecords(logFile, 'agent.stopped');
    expect(stopped).toMatchObject({ livenessDown: 1, livenessFailures: expect.any(Number) });
    expect((stopped as Record<string, number>).portsNotOpen).toBeGreaterThanOrEqual(3);
  });

  it('serves /metrics on a port the OS picked, recorded in its port file until SIGTERM (README "Operations")', async () => {
    const { dir, pair, env, logFile } = await setup();
    const portFile = path.join(dir, 'agent-metrics-port');
    const agent = spawnAgent({ ...env, FAULTLINE_AGENT_METRICS_PORT_FILE: portFile });
    cleanups.push(() => agent.child.kill('SIGKILL'));
    await waitFor(
      () => logRecords(logFile, 'agent.metrics_serving').length === 1 && pair.taken.length >= 2,
      `serving and batches (${agent.output()})`,
    );
    const [serving] = logRecords(logFile, 'agent.metrics_serving');
    const { port } = serving as { port: number };
    // The port alone: the driver, not the agent, writes the Prometheus target.
    expect(readFileSync(portFile, 'utf8')).toBe(`${port}\n`);
    expect(serving).toMatchObject({ address: `127.0.0.1:${port}`, portFile });
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(text).toMatch(/^faultline_agent_batches_acked_total [1-9]/m);
    expect(text).toMatch(/^process_cpu_seconds_total /m);
    agent.child.kill('SIGTERM');
    expect(await agent.exited).toBe(0);
    expect(existsSync(portFile)).toBe(false);
  });

  it('serves nothing with FAULTLINE_AGENT_METRICS=false', async () => {
    const { dir, pair, env, logFile } = await setup();
    const portFile = path.join(dir, 'agent-metrics-port');
    const agent = spawnAgent({ ...env, FAULTLINE_AGENT_METRICS: 'false', FAULTLINE_AGENT_METRICS_PORT_FILE: portFile });
    cleanups.push(() => agent.child.kill('SIGKILL'));
    await waitFor(() => pair.taken.length >= 2, `first batches (${agent.output()})`);
    agent.child.kill('SIGTERM');
    expect(await agent.exited).toBe(0);
    expect(logRecords(logFile, 'agent.metrics_serving')).toEqual([]);
    expect(existsSync(portFile)).toBe(false);
  });

  it('exits 2 naming the variable when its environment is incomplete', async () => {
    const { env } = await setup();
    const agent = spawnAgent({ ...env, FAULTLINE_SP_ENDPOINTS: '', FAULTLINE_WORKLOAD_PORT: 'eighty' });
    expect(await agent.exited).toBe(2);
    expect(agent.output()).toMatch(/FAULTLINE_SP_ENDPOINTS: is required/);
    expect(agent.output()).toMatch(/FAULTLINE_WORKLOAD_PORT: must be an integer/);
  });
});
