import type { ChildProcess } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep, stackConfig, stackDir, stackPorts, stackProbe, startStack } from './harness.js';

/*
 * Issue 16, graceful drain, on the real stack (README "Autoscaler → Graceful
 * drain"): a load generator that routes as a load balancer reading readiness
 * does (only to members Active and not draining, re-read from `stack status`
 * every round) keeps a steady rate of requests on a cluster of two members
 * whose requests take longer than the drain delay. The operator lowers the
 * cluster's min and max from 2 to 1 and restarts the autoscaler pair (SIGKILL to both nodes:
 * the supervisor starts them again, and they read the configuration again):
 * the acting node's max rule scales down the least loaded member, which drains
 * (its requests in flight finish) and is terminated once idle. Not one request
 * fails. (With `drainTimeoutMs: 0`, the old behaviour, the victim's requests
 * in flight are dropped by its SIGTERM.)
 */

/** Each request's service time: longer than the drain delay, so the victim has requests in flight when it drains. */
const LATENCY_MS = 6_000;
/**
 * Longer than this load balancer's routing can be stale: it re-reads `stack status` (a CLI process
 * that also asks each SP node) every round, which takes seconds on a busy machine.
 */
const DRAIN_DELAY_MS = 5_000;
/** Requests started per second, steadily, whatever the answers. */
const RATE_PER_S = 5;

interface DrainStatus {
  services: { name: string; pid: number | null; state: string }[];
  clusters: {
    id: string;
    members: { memberId: string; state: string; address: string | null; drainingUntil: string | null }[];
  }[];
}

/** A load balancer that reads readiness: a steady rate, only to members Active and not draining. */
function loadGenerator(status: () => Promise<DrainStatus>) {
  let targets: { memberId: string; address: string }[] = [];
  /** The longest time between two routing updates: how stale the routing could be. */
  let stalestMs = 0;
  const seenDraining = new Set<string>();
  const inFlightAt = new Map<string, number>();
  const inFlight = new Map<string, number>();
  const sent = new Map<string, number>();
  const failures: string[] = [];
  let ok = 0;
  let running = true;
  let next = 0;

  const refresh = async () => {
    let last = Date.now();
    while (running) {
      try {
        const members = (await status()).clusters.flatMap((c) => c.members);
        for (const m of members)
          if (m.drainingUntil !== null && !seenDraining.has(m.memberId)) {
            seenDraining.add(m.memberId);
            inFlightAt.set(m.memberId, inFlight.get(m.memberId) ?? 0);
          }
        const ready = members
          .filter((m) => m.state === 'Active' && m.drainingUntil === null && m.address !== null)
          .map((m) => ({ memberId: m.memberId, address: m.address as string }));
        if (ready.length > 0) targets = ready;
        stalestMs = Math.max(stalestMs, Date.now() - last);
        last = Date.now();
      } catch {
        // A status that could not be read: the last routing stays.
      }
      await sleep(100);
    }
  };

  const one = (target: { memberId: string; address: string }) =>
    new Promise<void>((resolve) => {
      const [host, port] = target.address.split(':');
      const id = target.memberId;
      inFlight.set(id, (inFlight.get(id) ?? 0) + 1);
      sent.set(id, (sent.get(id) ?? 0) + 1);
      const done = (failure?: string) => {
        inFlight.set(id, (inFlight.get(id) ?? 1) - 1);
        if (failure) failures.push(`${id}: ${failure}`);
        else ok += 1;
        resolve();
      };
      const req = http.get({ host, port: Number(port), path: '/', agent: false, timeout: 30_000 }, (res) => {
        res.resume();
        res.on('end', () => done(res.statusCode === 200 ? undefined : `status ${res.statusCode}`));
        res.on('error', (error) => done(error.message));
      });
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', (error) => done(error.message));
    });

  const requests: Promise<void>[] = [];
  const drive = async () => {
    const start = Date.now();
    for (let i = 0; running; i++) {
      const target = targets[next++ % Math.max(1, targets.length)];
      if (target) requests.push(one(target));
      // Steady: the i-th request at start + i / rate, whatever the answers do.
      await sleep(Math.max(0, start + ((i + 1) * 1_000) / RATE_PER_S - Date.now()));
    }
  };

  const loops = [refresh(), drive()];
  return {
    get ok() {
      return ok;
    },
    get stalestMs() {
      return stalestMs;
    },
    failures,
    seenDraining,
    inFlightAt,
    sent,
    /** Stops sending and waits for every answer. */
    async stop(): Promise<void> {
      running = false;
      await Promise.all(loops);
      await Promise.all(requests);
    },
  };
}

describe('graceful drain on the full stack', () => {
  let dir: string;
  let stack: ChildProcess;
  let config: ReturnType<typeof stackConfig> & { clusters: object[] };
  const probe = stackProbe(() => dir);
  const { cli, actions, records, waitFor } = probe;
  const status = async () => JSON.parse(await cli('stack', 'status', '--json')) as DrainStatus;
  /** min = max: no scaling rule behind the scenario's back, only the max rule's scale down. */
  const cluster = (size: number) => ({
    id: 'web',
    cartridgeType: 'php',
    min: size,
    max: size,
    workload: { latencyMs: LATENCY_MS },
    // Far above this load: the scaling rule stays out of it.
    thresholds: { requestsInFlight: 1_000, memoryConsumption: 100, loadAverage: 100_000 },
    drainTimeoutMs: 30_000,
    drainDelayMs: DRAIN_DELAY_MS,
  });

  beforeAll(async () => {
    dir = stackDir('faultline-e2e-drain-');
    config = stackConfig('aedes', await stackPorts(), { clusters: [cluster(2)] }) as typeof config;
    ({ child: stack } = await startStack(dir, config, probe));
    await waitFor(
      async () =>
        (await status()).clusters[0]?.members.filter((m) => m.state === 'Active').length === 2 ? true : undefined,
      '2 active members',
    );
  });

  afterAll(async () => {
    if (stack && stack.exitCode === null) {
      stack.kill('SIGTERM');
      await new Promise((resolve) => stack.once('exit', resolve));
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('a scale-down of a member serving a steady load: it drains, is terminated once idle, and no request fails', async () => {
    const load = loadGenerator(status);
    // Both members serve a steady load, requests in flight on each.
    await sleep(3 * LATENCY_MS);
    const before = (await status()).clusters[0]?.members.map((m) => m.memberId) ?? [];
    expect(before).toHaveLength(2);
    for (const memberId of before) expect(load.sent.get(memberId) ?? 0).toBeGreaterThan(0);

    // The operator lowers min and max to 1 and restarts the autoscaler pair, which reads its configuration again.
    const changedAt = new Date().toISOString();
    writeFileSync(path.join(dir, 'faultline.yaml'), JSON.stringify({ ...config, clusters: [cluster(1)] }));
    for (const service of (await status()).services)
      if (service.name.startsWith('autoscaler-') && service.pid !== null) process.kill(service.pid, 'SIGKILL');

    const scaledDown = await waitFor(
      () => actions().find((a) => a.action === 'ScaleDownAction' && a.timestamp >= changedAt),
      'the max rule’s ScaleDownAction',
      90_000,
    );
    expect(scaledDown.reason).toMatch(/above max: 2 members > max 1/);
    const victim = scaledDown.memberId as string;
    expect(before).toContain(victim);
    const draining = await waitFor(
      () => records('autoscaler').find((r) => r.event === 'autoscaler.member_draining' && r.memberId === victim),
      'the victim draining',
      10_000,
    );
    expect(draining.timestamp >= changedAt).toBe(true);
    const removed = await waitFor(
      () => actions().find((a) => a.action === 'MemberRemoved' && a.memberId === victim),
      'the victim removed',
      60_000,
    );
    // Terminated once idle, within the drain timeout: the drain delay, then its last requests.
    expect(removed.reason).toMatch(/^above max: 2 members > max 1; drained; terminated in \d+ ms$/);
    // The load balancer saw the mark, with requests of its own in flight on the victim then.
    expect(load.seenDraining.has(victim)).toBe(true);
    expect(load.inFlightAt.get(victim) ?? 0).toBeGreaterThan(0);

    await sleep(LATENCY_MS);
    await load.stop();
    expect(load.failures, `routing stale up to ${load.stalestMs} ms`).toEqual([]);
    expect(load.ok).toBeGreaterThan(RATE_PER_S * 10);
    const after = (await status()).clusters[0]?.members ?? [];
    expect(after.map((m) => m.memberId)).toEqual(before.filter((m) => m !== victim));
  });
});
