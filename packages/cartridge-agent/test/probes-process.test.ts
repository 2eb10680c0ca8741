import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createCepEngine } from '@faultline/cep';
import { createMemoryLogger } from '@faultline/core/testing';
import { type Envelope, type EnvelopeOf, issueMemberCredential } from '@faultline/protocol';
import { TEST_MEMBER_KEY, testMember } from '@faultline/protocol/testing';
import { freePort } from '@faultline/test-support';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, logRecords, spawnAgent, startSpPair, waitFor } from './helpers.js';

/*
 * Issue 16, "Probes are fixed and trigger-happy", end to end with real
 * processes: the built agent (main.js) probes a workload on loopback whose
 * liveness route the test makes slow or silent, and sends its batches to two
 * stand-in SP endpoints whose every taken batch goes, in order, through the
 * real CEP engine: the fault detector that turns ports_not_open into a
 * MemberFault. A member that answers its probe slowly twice, with threshold 3,
 * is not faulted; one that stops answering is. The probes reach the agent as
 * the driver writes them, in FAULTLINE_AGENT_PROBES.
 */
describe('probes of a real agent process, judged by the CEP', () => {
  const cleanups: (() => unknown)[] = [];
  beforeAll(assertBuilt);
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn();
  });

  /**
   * The workload: /healthz answers at once; `route` (/live, or /stats itself) as `mode` says: at
   * once, the next `slowLeft` requests `slowMs` late, or never. /stats otherwise at once.
   */
  async function workload(route: '/live' | '/stats') {
    const live = { mode: 'ok' as 'ok' | 'slow' | 'hang', slowLeft: 0, slowMs: 0, requests: 0, slowServed: 0 };
    const sockets = new Set<Socket>();
    const stats = JSON.stringify({ requestsInFlight: 0, served: 0 });
    const server = http.createServer((req, res) => {
      if (req.url === '/healthz') return void res.writeHead(200).end('{"status":"ok"}');
      if (req.url !== route) {
        if (req.url === '/stats') return void res.writeHead(200).end(stats);
        return void res.writeHead(404).end();
      }
      live.requests += 1;
      if (live.mode === 'hang') return;
      if (live.mode === 'slow' && live.slowLeft > 0) {
        live.slowLeft -= 1;
        live.slowServed += 1;
        if (live.slowLeft === 0) live.mode = 'ok';
        setTimeout(() => res.writeHead(200).end(stats), live.slowMs);
        return;
      }
      res.writeHead(200).end(stats);
    });
    server.on('connection', (socket: Socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(resolve));
    });
    return { port: (server.address() as AddressInfo).port, live };
  }

  async function setup(route: '/live' | '/stats', probes: Record<string, unknown>) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faultline-probes-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const { port, live } = await workload(route);
    const pair = await startSpPair();
    cleanups.push(() => pair.close());
    // The fault detector, fed every batch the pair takes, in order (as the SP's engine is).
    const cep = createCepEngine({ source: 'sp-1', logger: createMemoryLogger(), faultTimeoutMs: 120_000 });
    cleanups.push(() => cep.close());
    cep.activate(1);
    const faults: EnvelopeOf<'MemberFaultEvent'>[] = [];
    cep.onOutput((envelope: Envelope) => {
      if (envelope.type === 'MemberFaultEvent' && !faults.some((f) => f.id === envelope.id)) faults.push(envelope);
    });
    let fed = 0;
    const feed = setInterval(() => {
      for (; fed < pair.taken.length; fed++) {
        const taken = pair.taken[fed];
        if (taken) cep.apply({ agentId: taken.agentId, sequence: taken.sequence, stats: taken.stats });
      }
    }, 10);
    cleanups.push(() => clearInterval(feed));
    const member = testMember('m-1');
    const env = {
      FAULTLINE_MEMBER_ID: member.memberId,
      FAULTLINE_CLUSTER_ID: member.clusterId,
      FAULTLINE_CLUSTER_INSTANCE_ID: member.clusterInstanceId,
      FAULTLINE_NETWORK_PARTITION_ID: member.networkPartitionId,
      FAULTLINE_PARTITION_ID: member.partitionId,
      FAULTLINE_MEMBER_CREDENTIAL: issueMemberCredential(TEST_MEMBER_KEY, member),
      FAULTLINE_SP_ENDPOINTS: pair.ports.map((p) => `127.0.0.1:${p}`).join(','),
      // Nothing listens on the broker port: status events wait in the outbox.
      FAULTLINE_BROKERS: `a@127.0.0.1:${await freePort()}`,
      FAULTLINE_WORKLOAD_PORT: String(port),
      FAULTLINE_OUTBOX_DIR: path.join(dir, 'outbox'),
      FAULTLINE_LOGGING_DIR: dir,
      FAULTLINE_LOG_LEVEL: 'debug',
      FAULTLINE_AGENT_STAT_INTERVAL_MS: '200',
      FAULTLINE_AGENT_CALL_TIMEOUT_MS: '500',
      FAULTLINE_AGENT_METRICS: 'false',
      FAULTLINE_AGENT_PROBES: JSON.stringify(probes),
    };
    const agent = spawnAgent(env);
    cleanups.push(() => agent.child.kill('SIGKILL'));
    const logFile = path.join(dir, `agent-${member.memberId}.jsonl`);
    const portsNotOpen = () =>
      pair.taken.filter((t) => t.stats.some((s) => s.healthDescription === 'ports_not_open')).length;
    return { live, pair, agent, faults, logFile, portsNotOpen, fedAll: () => fed === pair.taken.length };
  }

  it('a member that answers its liveness probe slowly twice (threshold 3) is not faulted; one that stops answering is', async () => {
    const { live, pair, agent, faults, logFile, portsNotOpen, fedAll } = await setup('/live', {
      // Liveness on its own route, every 600 ms, 500 ms to answer, failing after 3 misses in a row (a deadline
      // a loaded machine's prompt answer never misses: the failures below must be the slow answers alone).
      liveness: { type: 'http', path: '/live', periodMs: 600, timeoutMs: 500, failureThreshold: 3 },
      startup: { type: 'http', path: '/healthz', periodMs: 100 },
    });
    await waitFor(
      () => logRecords(logFile, 'agent.startup_passed').length === 1 && live.requests >= 2,
      `activation and liveness checks (agent output: ${agent.output()})`,
    );

    // Two answers in a row later than the 500 ms deadline, then prompt ones.
    live.slowMs = 1_200;
    live.slowLeft = 2;
    live.mode = 'slow';
    await waitFor(() => live.slowServed === 2, 'two slow answers');
    const afterSlow = live.requests;
    await waitFor(() => live.requests >= afterSlow + 3, 'prompt answers after the slow ones');
    const batchesThen = pair.taken.length;
    await waitFor(() => pair.taken.length >= batchesThen + 3 && fedAll(), 'batches after the slow answers');
    const failed = logRecords(logFile, 'agent.probe_check_failed');
    expect(failed.map((r) => [r.failuresInRow, r.failureThreshold])).toEqual([
      [1, 3],
      [2, 3],
    ]);
    expect(failed[0]?.reason).toBe('no answer within 500 ms');
    // Not reported down, not faulted: the single-miss kill is gone.
    expect(portsNotOpen()).toBe(0);
    expect(logRecords(logFile, 'agent.liveness_failed')).toEqual([]);
    expect(faults).toEqual([]);
    // Its requests_in_flight kept flowing: the stats round never depended on the liveness route.
    expect(pair.taken.at(-1)?.stats.map((s) => s.healthDescription)).toContain('requests_in_flight');

    // It stops answering: three misses in a row, reported down, and the CEP faults it.
    const stoppedAt = live.requests;
    live.mode = 'hang';
    await waitFor(() => faults.length === 1, `a MemberFault (agent output: ${agent.output()})`, 15_000);
    expect(faults[0]?.data).toMatchObject({ memberId: 'm-1', reason: 'ports_not_open', silentForMs: 0 });
    expect(live.requests - stoppedAt).toBeGreaterThanOrEqual(3);
    const [down] = logRecords(logFile, 'agent.liveness_failed');
    expect(down).toMatchObject({ failureThreshold: 3, reason: 'no answer within 500 ms' });
    // Once per life: the rounds that keep saying so fault it no more.
    const reports = portsNotOpen();
    await waitFor(() => portsNotOpen() >= reports + 3 && fedAll(), 'more rounds while it is down');
    expect(faults).toHaveLength(1);
    for (const t of pair.taken.filter((b) => b.stats.some((s) => s.healthDescription === 'ports_not_open'))) {
      expect(t.stats.map((s) => [s.healthDescription, s.value])).toEqual([['ports_not_open', 1]]);
    }

    agent.child.kill('SIGTERM');
    expect(await agent.exited).toBe(0);
    const [stopped] = logRecords(logFile, 'agent.stopped');
    expect(stopped).toMatchObject({ livenessDown: 1, livenessFailures: expect.any(Number) });
    expect((stopped as { livenessFailures: number }).livenessFailures).toBeGreaterThanOrEqual(5);
  });

  it('the stats route itself, 2.5 s late twice: no fault (the single-miss kill); silent: a fault', async () => {
    // The default liveness probe (GET /stats, threshold 3), its period and deadline shortened. The stat
    // rounds read the same route: the two late answers may be any two requests, never three checks.
    const { live, agent, faults, logFile, portsNotOpen, fedAll, pair } = await setup('/stats', {
      liveness: { type: 'http', periodMs: 200, timeoutMs: 500 },
    });
    const activated = () =>
      logRecords(logFile, 'agent.status_published').some((r) => r.type === 'InstanceActivatedEvent');
    await waitFor(() => activated() && live.requests >= 3, `activation and stats (agent output: ${agent.output()})`);
    live.slowMs = 2_500;
    live.slowLeft = 2;
    live.mode = 'slow';
    await waitFor(() => live.slowServed === 2, 'two late answers');
    // Past the old agent's fixed 2 s deadline, and then some prompt rounds.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    const then = pair.taken.length;
    await waitFor(() => pair.taken.length >= then + 3 && fedAll(), 'batches after the late answers');
    expect(portsNotOpen()).toBe(0);
    expect(faults).toEqual([]);
    live.mode = 'hang';
    await waitFor(() => faults.length === 1, `a MemberFault (agent output: ${agent.output()})`, 15_000);
    expect(faults[0]?.data).toMatchObject({ memberId: 'm-1', reason: 'ports_not_open' });
    expect(logRecords(logFile, 'agent.liveness_failed')).toHaveLength(1);
  });

  it('exits 2 naming the variable when its probes are not valid', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faultline-probes-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const member = testMember('m-1');
    const agent = spawnAgent({
      FAULTLINE_MEMBER_ID: member.memberId,
      FAULTLINE_CLUSTER_ID: member.clusterId,
      FAULTLINE_CLUSTER_INSTANCE_ID: member.clusterInstanceId,
      FAULTLINE_NETWORK_PARTITION_ID: member.networkPartitionId,
      FAULTLINE_PARTITION_ID: member.partitionId,
      FAULTLINE_MEMBER_CREDENTIAL: issueMemberCredential(TEST_MEMBER_KEY, member),
      FAULTLINE_SP_ENDPOINTS: '127.0.0.1:7611',
      FAULTLINE_BROKERS: 'a@127.0.0.1:1883',
      FAULTLINE_WORKLOAD_PORT: '40000',
      FAULTLINE_OUTBOX_DIR: path.join(dir, 'outbox'),
      FAULTLINE_AGENT_PROBES: JSON.stringify({ liveness: { type: 'exec', command: 'curl -f localhost' } }),
    });
    expect(await agent.exited).toBe(2);
    expect(agent.output()).toMatch(/FAULTLINE_AGENT_PROBES: liveness\.command: /);
  });
});
