import os from 'node:os';
import { serviceRegistry } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import { BATCH_REFUSALS } from '@faultline/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { detectionOvershoot, spMetrics } from './metrics.js';
import type { SpNode, SpRole, SpStatus } from './node.js';
import { startStatusServer } from './status-server.js';

/*
 * Issue "Operate it": role-aware health endpoints a load balancer or a
 * Kubernetes probe can use, and Prometheus metrics read from the node's status.
 */

/** A node's status in one of the situations a probe must tell apart. */
type Situation =
  | 'active'
  | 'active-unleased'
  | 'active-no-port'
  | 'passive'
  | 'passive-syncing'
  | 'passive-unlinked'
  | 'stepping-down';

function statusOf(situation: Situation): SpStatus {
  const role: SpRole = situation.startsWith('active')
    ? 'ACTIVE'
    : situation.startsWith('passive')
      ? 'PASSIVE'
      : 'STEPPING_DOWN';
  const leased = situation === 'active' || situation === 'active-no-port';
  return {
    nodeId: 'sp-1',
    groupId: 'sp',
    role,
    epoch: leased ? 7 : undefined,
    thriftPort: role === 'ACTIVE' && situation !== 'active-no-port' ? 7611 : undefined,
    syncPort: 7711,
    passive: {
      endpoint: leased ? '127.0.0.1:7712' : undefined,
      link: leased ? 'ready' : 'none',
      lagBatches: 3,
      lagMs: 250,
    },
    following:
      situation === 'passive' || situation === 'passive-syncing'
        ? { nodeId: 'sp-2', epoch: 7, lastSeq: 41, synced: situation === 'passive' }
        : undefined,
    counters: {
      batchesAccepted: 10,
      eventsAccepted: 30,
      duplicates: 1,
      invalidBatches: 2,
      refusedNotActive: 4,
      unreplicatedAcks: 5,
      outputsPublished: 6,
      outputsFenced: 0,
      outputsFailed: 0,
      badFrames: 0,
      syncViolations: 0,
      syncAuthFailures: 0,
      syncHellosRefused: 0,
      syncConnectionsRefused: 0,
      syncLinks: 1,
      syncBatchesApplied: 0,
      connectionsRefused: 0,
      tlsHandshakeFailures: 0,
      idleConnectionsClosed: 0,
    } as SpStatus['counters'],
    refusals: Object.fromEntries(BATCH_REFUSALS.map((r, i) => [r, i])) as SpStatus['refusals'],
    eventLoop: { maxDelayMs: 12, p99DelayMs: 9, minuteP99DelayMs: 7 },
    engine: { engine: 'cep', members: 100, faulted: 2, pendingOutputs: 0 },
  };
}

const nodeIn = (read: () => SpStatus) =>
  ({
    status: read,
    engineState: () => ({}),
    engineMemberState: () => undefined,
    engineMembers: () => 0,
  }) as unknown as SpNode;

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()));
});

async function serve(node: SpNode, metrics = serviceRegistry()) {
  const server = await startStatusServer(node, {
    host: '127.0.0.1',
    port: 0,
    engineToken: Buffer.from('a-status-token-of-at-least-32-characters'),
    metrics,
    logger: createMemoryLogger(),
  });
  closers.push(server.close);
  return { server, url: `http://127.0.0.1:${server.port}` };
}

describe('the SP health endpoints', () => {
  it('answer by role, as Patroni does: 200 only where the node does that part, 503 elsewhere', async () => {
    let situation: Situation = 'active';
    const { url } = await serve(nodeIn(() => statusOf(situation)));
    const codes = async () =>
      Object.fromEntries(
        await Promise.all(
          ['/health', '/readiness', '/active', '/passive'].map(
            async (route) => [route, (await fetch(`${url}${route}`)).status] as const,
          ),
        ),
      );
    const expected = {
      active: { '/health': 200, '/readiness': 200, '/active': 200, '/passive': 503 },
      'active-unleased': { '/health': 200, '/readiness': 503, '/active': 503, '/passive': 503 },
      'active-no-port': { '/health': 200, '/readiness': 503, '/active': 503, '/passive': 503 },
      passive: { '/health': 200, '/readiness': 200, '/active': 503, '/passive': 200 },
      'passive-syncing': { '/health': 200, '/readiness': 503, '/active': 503, '/passive': 200 },
      'passive-unlinked': { '/health': 200, '/readiness': 503, '/active': 503, '/passive': 200 },
      'stepping-down': { '/health': 200, '/readiness': 503, '/active': 503, '/passive': 503 },
    } as const;
    for (const s of Object.keys(expected) as (keyof typeof expected)[]) {
      situation = s;
      expect({ situation: s, codes: await codes() }).toEqual({ situation: s, codes: expected[s] });
    }
    situation = 'passive-unlinked';
    const body = await (await fetch(`${url}/readiness`)).json();
    expect(body).toEqual({
      node: 'sp-1',
      role: 'PASSIVE',
      epoch: null,
      ready: false,
      reason: 'passive, following no active',
    });
  });

  it('answer HEAD as a load balancer probes, and refuse other methods, counted', async () => {
    const { server, url } = await serve(nodeIn(() => statusOf('active')));
    expect((await fetch(`${url}/active`, { method: 'HEAD' })).status).toBe(200);
    expect((await fetch(`${url}/passive`, { method: 'HEAD' })).status).toBe(503);
    expect((await fetch(`${url}/active`, { method: 'POST' })).status).toBe(405);
    expect((await fetch(`${url}/metrics`, { method: 'POST' })).status).toBe(405);
    expect(server.counters.statusRefusedMethod).toBe(2);
  });
});

describe('the SP metrics', () => {
  it('serve every family in the Prometheus text format, read from the status at each scrape', async () => {
    let situation: Situation = 'active';
    const metrics = serviceRegistry();
    const observe = detectionOvershoot(metrics);
    spMetrics(
      metrics,
      nodeIn(() => statusOf(situation)),
    );
    observe({ memberId: 'm-1', reason: 'timeout', silentForMs: 60_040, overshootMs: 40 });
    observe({ memberId: 'm-2', reason: 'ports_not_open', silentForMs: 0, overshootMs: undefined });
    const { url } = await serve(
      nodeIn(() => statusOf(situation)),
      metrics,
    );
    const response = await fetch(`${url}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/plain');
    const text = await response.text();
    const families = [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => `${m[1]} ${m[2]}`);
    for (const family of [
      'faultline_sp_role gauge',
      'faultline_sp_epoch gauge',
      'faultline_sp_passive_linked gauge',
      'faultline_sp_following gauge',
      'faultline_sp_replication_lag_batches gauge',
      'faultline_sp_replication_lag_seconds gauge',
      'faultline_sp_batches_accepted_total counter',
      'faultline_sp_stats_accepted_total counter',
      'faultline_sp_batches_refused_total counter',
      'faultline_sp_acks_without_replication_total counter',
      'faultline_sp_detection_overshoot_seconds histogram',
      'faultline_sp_members gauge',
      'faultline_sp_members_faulted gauge',
      'process_cpu_seconds_total counter',
      'process_resident_memory_bytes gauge',
      'nodejs_eventloop_lag_p99_seconds gauge',
    ])
      expect(families).toContain(family);
    expect(text).toContain('faultline_sp_role{role="ACTIVE"} 1\n');
    expect(text).toContain('faultline_sp_role{role="PASSIVE"} 0\n');
    expect(text).toContain('faultline_sp_epoch{node="sp-1"} 7\n');
    expect(text).toContain('faultline_sp_replication_lag_seconds{node="sp-1"} 0.25\n');
    expect(text).toContain('faultline_sp_batches_refused_total{reason="not_active"} 4\n');
    expect(text).toContain(`faultline_sp_batches_refused_total{reason="${BATCH_REFUSALS[1]}"} 1\n`);
    expect(text).toContain('faultline_sp_acks_without_replication_total 5\n');
    expect(text).toContain('faultline_sp_detection_overshoot_seconds_bucket{le="0.05"} 1\n');
    expect(text).toContain('faultline_sp_detection_overshoot_seconds_count 1\n');
    // The next scrape reads the status again: a passive holds no epoch, has no replication lag.
    situation = 'passive';
    const again = await (await fetch(`${url}/metrics`)).text();
    expect(again).toContain('faultline_sp_role{role="PASSIVE"} 1\n');
    expect(again).not.toMatch(/^faultline_sp_epoch\{/m);
    expect(again).not.toMatch(/^faultline_sp_replication_lag_batches\{/m);
    expect(again).toContain('faultline_sp_following 1\n');
  });

  it('are not served when the node has none', async () => {
    const server = await startStatusServer(
      nodeIn(() => statusOf('active')),
      {
        host: '127.0.0.1',
        port: 0,
        engineToken: Buffer.from('a-status-token-of-at-least-32-characters'),
        logger: createMemoryLogger(),
      },
    );
    closers.push(server.close);
    expect((await fetch(`http://127.0.0.1:${server.port}/metrics`)).status).toBe(404);
  });
});

/** A non-loopback IPv4 address of this machine, to ask from "another host" on it. */
const outside = Object.values(os.networkInterfaces())
  .flat()
  .find((a) => a !== undefined && !a.internal && a.family === 'IPv4')?.address;

describe('the SP status server bound beyond loopback', () => {
  it.skipIf(outside === undefined)(
    'serves the health routes and metrics to anyone, /status and /engine to this host only',
    async () => {
      const server = await startStatusServer(
        nodeIn(() => statusOf('active')),
        {
          host: '0.0.0.0',
          port: 0,
          engineToken: Buffer.from('a-status-token-of-at-least-32-characters'),
          metrics: serviceRegistry(),
          logger: createMemoryLogger(),
        },
      );
      closers.push(server.close);
      const from = `http://${outside}:${server.port}`;
      expect((await fetch(`${from}/active`)).status).toBe(200);
      expect((await fetch(`${from}/metrics`)).status).toBe(200);
      expect((await fetch(`${from}/status`)).status).toBe(403);
      const engine = await fetch(`${from}/engine`, {
        headers: { authorization: 'Bearer a-status-token-of-at-least-32-characters' },
      });
      expect(engine.status).toBe(403);
      expect(server.counters.statusRefusedRemote).toBe(2);
      expect((await fetch(`http://127.0.0.1:${server.port}/status`)).status).toBe(200);
    },
  );
});
