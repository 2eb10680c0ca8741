import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { createLocalIaas, linuxProcessTable, localHandle, type MemberInstance } from '@faultline/cloud-controller';
import { type FaultlineConfig, REPO_ROOT, resolveConfig } from '@faultline/core';
import { createPublisher, createSubscriber, type Publisher, type Subscriber } from '@faultline/messaging';
import { createEnvelope, type Envelope, memberIdentityOf } from '@faultline/protocol';
import {
  brokerEndpoints,
  freePort,
  TEST_CONFIG_CREDENTIALS,
  TEST_CREDENTIALS,
  type TestBroker,
  testRuntimeDir,
  testSecrets,
} from '@faultline/test-support';
import type pg from 'pg';
import { expect } from 'vitest';
import type { AutoscalerStatus } from '../src/index.js';

export const AUTOSCALER_MAIN = path.join(REPO_ROOT, 'packages/autoscaler/dist/main.js');
const MEMBER_MAINS = [
  path.join(REPO_ROOT, 'packages/cloud-controller/dist/workload-main.js'),
  path.join(REPO_ROOT, 'packages/cartridge-agent/dist/main.js'),
];

/** Members and the service run the built code: fail with the command to run rather than with a timeout. */
export function assertBuilt(): void {
  for (const file of [...MEMBER_MAINS, AUTOSCALER_MAIN]) {
    if (!existsSync(file)) {
      throw new Error(
        `${file} is missing: build first (npx tsc -b packages/autoscaler packages/cloud-controller packages/cartridge-agent)`,
      );
    }
  }
}

/** Resolves when `predicate` holds, polling every 50 ms; fails naming `what` after `timeoutMs`. */
export async function waitFor(predicate: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The live (non-zombie) processes of a process group. */
export const groupOf = (pgid: number): number[] => linuxProcessTable.groupMembers(pgid).sort((a, b) => a - b);

export function expectGroupsGone(pgids: Iterable<number>): void {
  for (const pgid of pgids) expect(groupOf(pgid), `process group ${pgid}`).toEqual([]);
}

export function pgidOf(instance: MemberInstance): number {
  const handle = localHandle(instance);
  if (!handle) throw new Error(`${instance.memberId} has no local handle`);
  return handle.pgid;
}

/**
 * A configuration for the autoscaler under test: the test brokers with
 * TEST_CREDENTIALS, an SP endpoint nobody listens on (the agents keep their
 * batches, bounded), short intervals, one cluster.
 */
export async function testConfig(options: {
  dir: string;
  databaseUrl: string;
  brokers: readonly TestBroker[];
  cluster: Record<string, unknown>;
}): Promise<FaultlineConfig> {
  const [thriftPort, syncPort, statusPort] = await Promise.all([freePort(), freePort(), freePort()]);
  const runtimeDir = testRuntimeDir();
  const raw = {
    logging: { level: 'info', dir: path.join(options.dir, 'logs') },
    // The member key (and the other secret files) as `stack up` makes them.
    security: testSecrets(options.dir),
    database: { url: options.databaseUrl },
    brokers: {
      nodes: brokerEndpoints(options.brokers),
      credentials: TEST_CONFIG_CREDENTIALS,
    },
    messaging: {
      pingIntervalMs: 200,
      resubscribeIntervalMs: 1_000,
      republishIntervalMs: 2_000,
      outboxDir: path.join(options.dir, 'outbox'),
    },
    streamProcessor: { nodes: [{ id: 'sp-1', host: '127.0.0.1', thriftPort, syncPort, statusPort }] },
    // The fault-storm window: short, so the faults of consecutive tests never add up to a storm. A network
    // partition no member summary listed for 1.5 s is silent; a member none listed for 1.8 s is absent.
    cep: { faultTimeoutMs: 1_500, summaryIntervalMs: 300 },
    agent: { statIntervalMs: 1_000 },
    autoscaler: { monitorIntervalMs: 200, pendingTimeoutMs: 30_000, backoffInitialMs: 1_000, backoffMaxMs: 5_000 },
    clusters: [{ id: 'php', cartridgeType: 'php', min: 3, max: 5, workload: { latencyMs: 5 }, ...options.cluster }],
    // Run as root from a checkout the member user cannot reach, the members run from its runtime mirror.
    ...(runtimeDir === undefined ? {} : { cloudController: { local: { runtimeDir } } }),
  };
  return resolveConfig(raw, { source: 'autoscaler integration test', env: {} });
}

/** Stands in for the SP: publishes MemberFaults (role `sp`) once the autoscaler is subscribed. */
export function startFakeSp(brokers: readonly TestBroker[], outboxFile: string): Publisher {
  return createPublisher({
    brokers: brokerEndpoints(brokers),
    credentials: TEST_CREDENTIALS.sp,
    clientId: 'sp-test',
    outboxFile,
    republishIntervalMs: 2_000,
    awaitSubscribers: ['autoscaler'],
  });
}

/**
 * What the SP's member summaries would say, every 300 ms: the members
 * `listed()` names (those the autoscaler has and an SP would hear from), but
 * those in `silenced` (their agents stopped reporting), under `epoch()`.
 * `paused` stops them all (the SP pair or the brokers failing).
 */
export function startSummaries(
  sp: Publisher,
  listed: () => string[] | Promise<string[]>,
  epoch: () => number = () => 1,
  clusterId = 'php',
) {
  const silenced = new Set<string>();
  const state = { paused: false, silenced };
  const timer = setInterval(async () => {
    if (state.paused) return;
    const now = Date.now();
    const members = (await listed())
      .filter((memberId) => !silenced.has(memberId))
      .map((memberId) => ({ memberId, value: 10 }));
    if (members.length === 0) return;
    const type = 'MemberAverageLoadAverageEvent';
    const data = {
      clusterId,
      clusterInstanceId: `${clusterId}-1`,
      networkPartitionId: 'np-1',
      windowFrom: now - 60_000,
      windowTo: now,
      part: 0,
      members,
    };
    const id = `${type}:${clusterId}:np-1:0:${now}`;
    sp.publish(createEnvelope(type, data, { source: 'sp-test', epoch: epoch(), id })).catch(() => {});
  }, 300);
  return Object.assign(state, { stop: () => clearInterval(timer) });
}

/** The members of cluster `php` an autoscaler's status lists (but those terminating), and its newest epoch. */
export function statusSource(status: () => AutoscalerStatus) {
  return {
    listed: () =>
      (status().clusters.find((c) => c.clusterId === 'php')?.members ?? [])
        .filter((m) => m.state !== 'Terminating')
        .map((m) => m.memberId),
    epoch: () => status().newestEpoch ?? 1,
  };
}

/** Reads `autoscaler/#` and `topology/#` as an operator would (role `observer`). */
export function startObserver(brokers: readonly TestBroker[], into: Envelope[]): Subscriber {
  return createSubscriber({
    brokers: brokerEndpoints(brokers),
    credentials: TEST_CREDENTIALS.observer,
    role: 'observer',
    clientId: 'observer-test',
    topics: ['autoscaler/#', 'topology/#'],
    onEnvelope: (envelope) => void into.push(envelope),
    pingIntervalMs: 200,
    resubscribeIntervalMs: 1_000,
  });
}

let faultSeq = 0;

export function memberFault(instance: MemberInstance, epoch: number, id?: string): Envelope {
  faultSeq += 1;
  return createEnvelope(
    'MemberFaultEvent',
    {
      ...memberIdentityOf(instance),
      reason: 'timeout',
      lastStatAt: Date.now() - 6_000,
      silentForMs: 6_000,
    },
    { source: 'sp-test', epoch, id: id ?? `MemberFaultEvent:${instance.memberId}:${faultSeq}` },
  );
}

export interface RegistryRow {
  member_id: string;
  state: string;
  instance: MemberInstance | null;
}

export async function registryRows(pool: pg.Pool, where = "state <> 'Terminated'"): Promise<RegistryRow[]> {
  const { rows } = await pool.query<RegistryRow>(
    `SELECT member_id, state, instance FROM autoscaler_member WHERE ${where} ORDER BY created_at`,
  );
  return rows;
}

/** Stops every member the registry knows as not terminated, through a driver of the test's own. */
export async function terminateRegistered(pool: pg.Pool, runDir: string): Promise<number[]> {
  const rows = await registryRows(pool, 'instance IS NOT NULL');
  const iaas = createLocalIaas({ runDir, runtimeDir: testRuntimeDir() });
  try {
    const { adopted } = await iaas.adopt(rows.map((r) => r.instance));
    await Promise.all(adopted.map((m) => iaas.terminate(m.memberId, { graceMs: 2_000 })));
  } finally {
    await iaas.close();
  }
  return rows.flatMap((r) => (r.instance ? [pgidOf(r.instance)] : []));
}

/** The JSON-lines records of a service's log file. */
export function logRecords(file: string): Record<string, unknown>[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .flatMap((line) => {
      try {
        return [JSON.parse(line) as Record<string, unknown>];
      } catch {
        return []; // a line being written
      }
    });
}
