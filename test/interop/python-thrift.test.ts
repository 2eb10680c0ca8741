import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from '@faultline/core';
import type { Subscriber } from '@faultline/messaging';
import { watchAsAutoscaler } from '@faultline/messaging/testing';
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

const run = promisify(execFile);
// Debian's python3-thrift belongs to /usr/bin/python3 (another python3 may come first on PATH).
const PYTHON = '/usr/bin/python3';
const available =
  spawnSync(PYTHON, ['-c', 'import thrift']).status === 0 && spawnSync('thrift', ['--version']).status === 0;

/*
 * A peer Faultline did not write: a Python agent generated from the
 * project's IDL by the Thrift compiler publishes stats to the real SP pair,
 * each batch signed with its member's credential (Python's hmac); when it
 * stops, its three members get MemberFaults on the broker.
 */
describe.skipIf(!available)('interop: a Python Thrift agent', () => {
  let db: TestPostgres;
  let brokers: [TestBroker, TestBroker];
  let pair: [TestSpNode, TestSpNode];
  let subscriber: Subscriber;
  const faults: string[] = [];

  beforeAll(async () => {
    db = await startPostgres();
    brokers = await startBrokerPair('aedes');
    const endpoints = brokerEndpoints(brokers);
    subscriber = watchAsAutoscaler({
      brokers: endpoints,
      credentials: TEST_CREDENTIALS.autoscaler,
      topics: ['summarized-health-stats/MemberFaultEvent'],
      onEnvelope: (e) => void (e.type === 'MemberFaultEvent' && faults.push(e.data.memberId)),
    });
    pair = await startSpPair({
      databaseUrl: db.connectionString,
      engine: 'cep',
      brokers: endpoints,
      cep: { faultTimeoutMs: 2_000, summaryIntervalMs: 1_000 },
      messaging: { pingIntervalMs: 200, resubscribeIntervalMs: 500, republishIntervalMs: 1_000 },
    });
  });
  afterAll(async () => {
    await subscriber?.close();
    await Promise.all((pair ?? []).map((n) => n.stop()));
    await Promise.all((brokers ?? []).map((b) => b.stop()));
    await db?.stop();
  });

  it('publishes batches the SP acknowledges, and its members fault when it stops', async () => {
    const gen = mkdtempSync(path.join(os.tmpdir(), 'faultline-py-'));
    await run('thrift', ['--gen', 'py', '-out', gen, path.join(REPO_ROOT, 'infra/thrift/health.thrift')]);
    let active: TestSpNode | undefined;
    while (!active) {
      const s = await Promise.all(pair.map((n) => n.status()));
      const i = s.findIndex((x) => x?.role === 'ACTIVE');
      if (i >= 0 && s[1 - i]?.following?.epoch === s[i]?.epoch) active = pair[i];
      else await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const { stdout } = await run(PYTHON, [
      path.join(import.meta.dirname, 'python-agent.py'),
      gen,
      String(active.thriftPort),
      '2',
      // The platform's member key: the agent computes each member's credential from it, as the driver issues it.
      active.security.memberKeyFile,
    ]);
    expect(stdout).toMatch(/sent \d+ batches, last ack epoch \d+ replicated True/);
    const engine = (await active.status())?.engine as { statsApplied: number };
    expect(engine.statsApplied).toBeGreaterThanOrEqual(15);
    const deadline = Date.now() + 15_000;
    while (faults.length < 3 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    expect(faults.sort()).toEqual(['py-0', 'py-1', 'py-2']);
  });
});
