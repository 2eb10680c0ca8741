import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { createMemoryLogger } from '@faultline/core/testing';
import { createSubscriber, type Subscriber } from '@faultline/messaging';
import type { AgentSettings, Envelope } from '@faultline/protocol';
import { TEST_MEMBER_KEY, testMember } from '@faultline/protocol/testing';
import {
  brokerEndpoints,
  startBrokerPair,
  TEST_CREDENTIALS,
  type TestBroker,
  testRuntimeDir,
} from '@faultline/test-support';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createLocalIaas,
  type LocalHandle,
  type LocalIaas,
  type LocalIaasOptions,
  linuxProcessTable,
  localHandle,
  type MemberInstance,
  type MemberSpec,
} from '../src/index.js';
import { assertBuilt, expectGroupsGone, groupOf, startTestSp, type TestSp, waitFor } from './helpers.js';

/*
 * Issue 6 acceptance against real processes: members spawned by the local
 * driver (the built workload and cartridge agent), a real Thrift endpoint
 * standing in for the SP, and a real broker pair with the autoscaler's
 * subscriber. Short intervals come through the driver's agent settings, never
 * from the defaults.
 */
const run = promisify(execFile);
/** The platform key the driver issues credentials under; the stand-in SP verifies them with it. */
// The key the test brokers check members' logins with (each agent logs in as its own member).
const MEMBER_KEY = TEST_MEMBER_KEY;

describe('local driver with real members', () => {
  let brokers: [TestBroker, TestBroker];
  let sp: TestSp;
  let subscriber: Subscriber;
  const envelopes: Envelope[] = [];
  const drivers: LocalIaas[] = [];
  const pgids = new Set<number>();
  const dirs: string[] = [];

  beforeAll(async () => {
    assertBuilt();
    [brokers, sp] = await Promise.all([startBrokerPair(), startTestSp(MEMBER_KEY)]);
    subscriber = createSubscriber({
      brokers: brokerEndpoints(brokers),
      credentials: TEST_CREDENTIALS.autoscaler,
      role: 'autoscaler',
      clientId: 'autoscaler',
      topics: ['instance/status/#'],
      onEnvelope: (envelope) => void envelopes.push(envelope),
      pingIntervalMs: 200,
      resubscribeIntervalMs: 500,
    });
    subscriber.start();
    await waitFor(
      () => Object.values(subscriber.links()).every((state) => state === 'up'),
      'subscriber on both brokers',
    );
  });

  afterEach(async () => {
    for (const iaas of drivers.splice(0)) {
      for (const member of await iaas.list()) await iaas.terminate(member.memberId, { graceMs: 2_000 });
      await iaas.close();
    }
    expectGroupsGone(pgids);
  });

  afterAll(async () => {
    await subscriber?.close();
    await Promise.all([...(brokers ?? []).map((b) => b.stop()), sp?.close()]);
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  const tempDir = () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faultline-members-'));
    dirs.push(dir);
    return dir;
  };

  const agentSettings = (): AgentSettings => ({
    spEndpoints: [{ host: '127.0.0.1', port: sp.port }],
    brokers: brokerEndpoints(brokers),
    statIntervalMs: 200,
    republishIntervalMs: 2_000,
    awaitSubscribers: ['autoscaler'],
  });

  const driver = (runDir = tempDir(), extra: Partial<LocalIaasOptions> = {}) => {
    const iaas = createLocalIaas({
      runDir,
      runtimeDir: testRuntimeDir(),
      agent: agentSettings(),
      memberKey: MEMBER_KEY,
      spawnTimeoutMs: 20_000,
      ...extra,
    });
    drivers.push(iaas);
    return iaas;
  };

  const spec = (memberId: string): MemberSpec => ({
    ...testMember(memberId),
    cartridgeType: 'php',
    workload: { latencyMs: 5 },
  });

  const handleOf = (instance: MemberInstance): LocalHandle => {
    const handle = localHandle(instance);
    if (!handle) throw new Error(`${instance.memberId} has no local handle`);
    pgids.add(handle.pgid);
    return handle;
  };

  const eventOf = (type: string, memberId: string) =>
    envelopes.find((e) => e.type === type && 'memberId' in e.data && e.data.memberId === memberId);

  /** The `host:port` the driver names in a member's Prometheus target file, once it has written it. */
  const targetOf = (runDir: string, memberId: string): string | undefined => {
    const file = path.join(runDir, 'agent-targets', `agent-${memberId}.json`);
    return existsSync(file) ? JSON.parse(readFileSync(file, 'utf8'))[0].targets[0] : undefined;
  };

  /** The driver's periodic sync (discover(), every monitor interval in the autoscaler) until `predicate` holds. */
  const syncUntil = (iaas: LocalIaas, predicate: () => boolean, what: string) =>
    waitFor(async () => {
      await iaas.syncAgentTargets();
      return predicate();
    }, what);

  it('spawns 5 members: 10 processes, stats from every agent, every InstanceActivatedEvent on the brokers', async () => {
    const runDir = tempDir();
    const iaas = driver(runDir);
    const ids = ['php-1', 'php-2', 'php-3', 'php-4', 'php-5'];
    const instances = await Promise.all(ids.map((id) => iaas.spawn(spec(`${id}-a`))));
    const handles = instances.map(handleOf);
    for (const handle of handles) {
      // Each member is one group of exactly its workload (the leader) and its agent.
      expect(groupOf(handle.pgid)).toEqual([handle.workload.pid, handle.agent?.pid].sort((a = 0, b = 0) => a - b));
    }
    expect(handles.flatMap((h) => groupOf(h.pgid))).toHaveLength(10);

    const memberIds = instances.map((m) => m.memberId);
    await waitFor(() => memberIds.every((id) => sp.batchesOf(id).length >= 3), 'three batches from every agent');
    for (const id of memberIds) {
      const batches = sp.batchesOf(id);
      expect(batches.map((b) => b.sequence).slice(0, 3)).toEqual([1, 2, 3]);
      expect(new Set(batches.map((b) => b.agentId)).size).toBe(1);
      const kinds = batches[0]?.stats.map((s) => s.healthDescription);
      expect(kinds).toEqual(['load_average', 'memory_consumption', 'requests_in_flight']);
      expect(batches[0]?.stats[0]).toMatchObject({ clusterId: 'php', partitionId: 'p-1', memberId: id });
    }
    await waitFor(() => memberIds.every((id) => eventOf('InstanceActivatedEvent', id)), 'every InstanceActivatedEvent');
    for (const id of memberIds) expect(eventOf('InstanceStartedEvent', id)?.source).toBe(`agent-${id}`);

    // README "Operations → Agent metrics": every agent on a loopback port of its own, which it records in its own
    // folder; the driver checks it is the agent's socket and names it in a target file of its own folder.
    await syncUntil(iaas, () => memberIds.every((id) => targetOf(runDir, id) !== undefined), 'every target file');
    const addresses = memberIds.map((id) => targetOf(runDir, id) as string);
    expect(new Set(addresses).size).toBe(5);
    for (const address of addresses) {
      expect(address).toMatch(/^127\.0\.0\.1:\d+$/);
      const text = await (await fetch(`http://${address}/metrics`)).text();
      expect(text).toMatch(/^faultline_agent_batches_acked_total [1-9]/m);
    }
    const targetsDir = path.join(runDir, 'agent-targets');
    expect(statSync(targetsDir).mode & 0o7777).toBe(0o755);
    // The platform's folder and files, whichever user the members run as: no member can write there.
    expect(statSync(targetsDir).uid).toBe(process.geteuid?.());
    for (const id of memberIds) {
      const file = statSync(path.join(targetsDir, `agent-${id}.json`));
      expect([file.mode & 0o7777, file.uid]).toEqual([0o644, process.geteuid?.()]);
    }
    expect(readdirSync(targetsDir).sort()).toEqual(memberIds.map((id) => `agent-${id}.json`).sort());

    const results = await Promise.all(memberIds.map((id) => iaas.terminate(id)));
    expect(results.map((r) => r.outcome)).toEqual(memberIds.map(() => 'terminated'));
    expectGroupsGone(handles.map((h) => h.pgid));
    expect(await iaas.list()).toEqual([]);
    expect(readdirSync(targetsDir)).toEqual([]);
  });

  it('an agent killed alone leaves the instance running; terminate removes the whole group', async () => {
    const runDir = tempDir();
    const iaas = driver(runDir);
    const handle = handleOf(await iaas.spawn(spec('agent-down')));
    await waitFor(() => sp.batchesOf('agent-down').length >= 1, 'first stats');
    await syncUntil(iaas, () => targetOf(runDir, 'agent-down') !== undefined, 'its target file');
    process.kill(handle.agent?.pid ?? 0, 'SIGKILL');
    await waitFor(() => groupOf(handle.pgid).length === 1, 'the agent gone');
    expect(groupOf(handle.pgid)).toEqual([handle.workload.pid]);
    expect(await iaas.isRunning('agent-down')).toBe(true);
    // Agent down is a real state: the SP hears nothing more from this member.
    const heard = sp.batchesOf('agent-down').length;
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(sp.batchesOf('agent-down').length).toBe(heard);
    expect(await iaas.isRunning('agent-down')).toBe(true);
    // Killed, it left its port file, naming a port now free for any process: the next sync drops its target.
    expect(existsSync(path.join(runDir, 'member-agent-down', 'agent-metrics-port'))).toBe(true);
    expect(targetOf(runDir, 'agent-down')).toBeDefined();
    expect((await iaas.discover()).map((m) => m.memberId)).toEqual(['agent-down']);
    expect(targetOf(runDir, 'agent-down')).toBeUndefined();

    expect((await iaas.terminate('agent-down')).outcome).toBe('terminated');
    expectGroupsGone([handle.pgid]);
    expect((await iaas.terminate('agent-down')).outcome).toBe('unknown');
  });

  /** A `GET /` on a member's workload: its status, or the error that ended it (a dropped connection). */
  const get = (address: { host: string; port: number }) =>
    new Promise<number | string>((resolve) => {
      const req = http.get({ host: address.host, port: address.port, path: '/', agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', (error) => resolve(error.message));
      });
      req.on('error', (error) => resolve(error.message));
    });
  const statsOf = async (address: { host: string; port: number }) =>
    (await (await fetch(`http://${address.host}:${address.port}/stats`)).json()) as { requestsInFlight: number };

  it('terminate with a drain: new requests refused, those in flight finish, stopped once idle; without, they are dropped', async () => {
    const iaas = driver();
    // Long enough that the requests are still in flight when a loaded machine gets round to counting them.
    const slow = { ...spec('drained'), workload: { latencyMs: 3_000 } };
    const instance = await iaas.spawn(slow);
    const handle = handleOf(instance);
    const inFlight = [get(instance.address), get(instance.address), get(instance.address)];
    await waitFor(async () => (await statsOf(instance.address)).requestsInFlight === 3, 'three requests in flight');
    const terminating = iaas.terminate('drained', { drainMs: 10_000 });
    // Once the workload drains, a new request is refused at once, no work done: the client may go elsewhere.
    await waitFor(async () => (await get(instance.address)) === 503, 'new requests refused');
    const result = await terminating;
    expect(await Promise.all(inFlight)).toEqual([200, 200, 200]);
    expect(result).toMatchObject({ outcome: 'terminated', drain: 'idle' });
    // Idle well before the drain timeout: the requests' latency, not 10 s.
    expect(result.elapsedMs).toBeLessThan(8_000);
    expectGroupsGone([handle.pgid]);

    // The old behaviour, and a faulted member's: no drain, the requests in flight are dropped.
    const other = await iaas.spawn({ ...slow, ...testMember('dropped') });
    handleOf(other);
    const dropped = [get(other.address), get(other.address)];
    await waitFor(async () => (await statsOf(other.address)).requestsInFlight === 2, 'two requests in flight');
    expect((await iaas.terminate('dropped')).drain).toBeUndefined();
    for (const answer of await Promise.all(dropped)) expect(answer).not.toBe(200);

    // A closing caller (its signal aborted) hands over drains only: a member stopped without one is stopped.
    const closing = await iaas.spawn(spec('closing'));
    const closingHandle = handleOf(closing);
    const aborted = AbortSignal.abort();
    expect(await iaas.terminate('closing', { signal: aborted })).toMatchObject({ outcome: 'terminated' });
    expectGroupsGone([closingHandle.pgid]);
  });

  it('a drain ends at its timeout when the workload never gets idle, and is skipped for a stopped (hung) member', async () => {
    const iaas = driver();
    const slow = { ...spec('slow-drain'), workload: { latencyMs: 60_000 } };
    const instance = await iaas.spawn(slow);
    const handle = handleOf(instance);
    const pending = get(instance.address);
    await waitFor(async () => (await statsOf(instance.address)).requestsInFlight === 1, 'a request in flight');
    const result = await iaas.terminate('slow-drain', { drainMs: 1_000 });
    expect(result).toMatchObject({ outcome: 'terminated', drain: 'timeout' });
    expect(result.elapsedMs).toBeGreaterThanOrEqual(1_000);
    expect(await pending).not.toBe(200);
    expectGroupsGone([handle.pgid]);

    const hung = await iaas.spawn({ ...slow, ...testMember('hung-drain') });
    const hungHandle = handleOf(hung);
    process.kill(-hungHandle.pgid, 'SIGSTOP');
    const skipped = await iaas.terminate('hung-drain', { drainMs: 10_000 });
    expect(skipped).toMatchObject({ outcome: 'terminated', drain: 'skipped' });
    expect(skipped.elapsedMs).toBeLessThan(5_000);
    expectGroupsGone([hungHandle.pgid]);
  });

  it('restartAgent: a member whose agent was SIGKILLed gets a new one, recorded; one whose agent runs, none; a gone one says gone', async () => {
    const runDir = tempDir();
    const iaas = driver(runDir, { agentRestartTimeoutMs: 10_000 });
    const handle = handleOf(await iaas.spawn(spec('witnessed')));
    await waitFor(() => sp.batchesOf('witnessed').length >= 1, 'first stats');
    // Its agent runs: nothing is started.
    expect(await iaas.restartAgent('witnessed')).toMatchObject({ outcome: 'running' });
    expect(groupOf(handle.pgid)).toEqual([handle.workload.pid, handle.agent?.pid].sort((a = 0, b = 0) => a - b));

    process.kill(handle.agent?.pid ?? 0, 'SIGKILL');
    await waitFor(() => groupOf(handle.pgid).length === 1, 'the agent gone');
    const firstAgentIds = new Set(sp.batchesOf('witnessed').map((b) => b.agentId));
    const result = await iaas.restartAgent('witnessed');
    expect(result.outcome).toBe('restarted');
    const instance = result.outcome === 'restarted' ? result.instance : undefined;
    const renewed = handleOf(instance as MemberInstance);
    // The same instance (workload, group, address), a new agent of its group, and the driver knows it.
    expect(renewed.workload).toEqual(handle.workload);
    expect(instance?.address).toEqual((await iaas.list())[0]?.address);
    expect(renewed.agent?.pid).not.toBe(handle.agent?.pid);
    expect(linuxProcessTable.stat(renewed.agent?.pid ?? 0)?.pgid).toBe(handle.pgid);
    expect(groupOf(handle.pgid)).toEqual([handle.workload.pid, renewed.agent?.pid].sort((a = 0, b = 0) => a - b));
    expect(localHandle((await iaas.list())[0] as MemberInstance)?.agent).toEqual(renewed.agent);
    const record = JSON.parse(readFileSync(path.join(runDir, 'instances', 'member-witnessed.json'), 'utf8'));
    expect(record.handle.agent).toEqual(renewed.agent);
    // Its stats resume, from a new agent (a new agent id), with the member's own credential.
    await waitFor(
      () => sp.batchesOf('witnessed').some((b) => !firstAgentIds.has(b.agentId)),
      'stats from the new agent',
    );
    // A second request starts no second agent.
    expect(await iaas.restartAgent('witnessed')).toMatchObject({ outcome: 'running' });
    expect(groupOf(handle.pgid)).toHaveLength(2);

    process.kill(-handle.pgid, 'SIGKILL');
    await waitFor(() => groupOf(handle.pgid).length === 0, 'the group gone');
    expect(await iaas.restartAgent('witnessed')).toMatchObject({ outcome: 'gone' });
    expect(iaas.counters).toMatchObject({ agentsRestarted: 1, agentRestartsFailed: 0 });
  });

  it('names no target for a port its agent does not listen on: a member pointing Prometheus elsewhere', async () => {
    const runDir = tempDir();
    const logger = createMemoryLogger();
    const iaas = driver(runDir, { logger });
    handleOf(await iaas.spawn(spec('liar')));
    await syncUntil(iaas, () => targetOf(runDir, 'liar') !== undefined, 'its target file');
    const portFile = path.join(runDir, 'member-liar', 'agent-metrics-port');
    const own = readFileSync(portFile, 'utf8');
    // A port another process listens on (this one, standing in for a platform service): what a member may write.
    const other = net.createServer();
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = other.address() as net.AddressInfo;
      writeFileSync(portFile, `${port}\n`);
      await iaas.syncAgentTargets();
      expect(targetOf(runDir, 'liar')).toBeUndefined();
      expect(logger.records.find((r) => r.event === 'local_iaas.target_refused')?.fields).toMatchObject({
        memberId: 'liar',
        port,
        reason: `port ${port} is not a socket its agent listens on at 127.0.0.1`,
      });
      // Its own port again: named again.
      writeFileSync(portFile, own);
      await iaas.syncAgentTargets();
      expect(targetOf(runDir, 'liar')).toBe(`127.0.0.1:${own.trim()}`);
      expect(iaas.counters.targetsRefused).toBe(1);
    } finally {
      await new Promise((resolve) => other.close(resolve));
    }
  });

  it('a killed workload is a stopped instance: its agent reports ports_not_open until terminate removes it', async () => {
    const iaas = driver();
    const handle = handleOf(await iaas.spawn(spec('instance-down')));
    await waitFor(() => sp.batchesOf('instance-down').length >= 1, 'first stats');
    process.kill(handle.workload.pid, 'SIGKILL');
    await waitFor(async () => !(await iaas.isRunning('instance-down')), 'isRunning false');
    expect(groupOf(handle.pgid)).toEqual([handle.agent?.pid]);
    await waitFor(
      () => sp.statsOf('instance-down').some((s) => s.healthDescription === 'ports_not_open' && s.value === 1),
      'ports_not_open from the orphaned agent',
    );
    expect(await iaas.isRunning('instance-down')).toBe(false);
    expect((await iaas.terminate('instance-down')).outcome).toBe('terminated');
    expectGroupsGone([handle.pgid]);
  });

  it('a workload stopped alone takes its agent along', async () => {
    const iaas = driver();
    const handle = handleOf(await iaas.spawn(spec('stopped-alone')));
    process.kill(handle.workload.pid, 'SIGTERM');
    await waitFor(() => groupOf(handle.pgid).length === 0, 'workload and agent gone');
    expect(await iaas.isRunning('stopped-alone')).toBe(false);
    expect((await iaas.terminate('stopped-alone')).outcome).toBe('already-gone');
  });

  it('fails a spawn whose agent cannot start, leaving nothing behind', async () => {
    const runDir = tempDir();
    const iaas = createLocalIaas({
      runDir,
      runtimeDir: testRuntimeDir(),
      agent: agentSettings(),
      memberKey: MEMBER_KEY,
      agentMain: path.join(runDir, 'no-such-agent.js'),
    });
    drivers.push(iaas);
    await expect(iaas.spawn(spec('broken'))).rejects.toMatchObject({
      code: 'FL_ERR_SPAWN_FAILED',
      message: expect.stringMatching(/exited \(code 2\) before it was ready; its output is in .*member-broken\.jsonl/),
    });
    expect(await iaas.list()).toEqual([]);
    expect(iaas.counters.spawnFailed).toBe(1);
  });

  it('does not take a process that holds a recorded pid for the member', async () => {
    const iaas = driver();
    // A stranger: its own group, like a member's workload would be.
    const stranger = spawn('sleep', ['60'], { detached: true, stdio: 'ignore' });
    stranger.unref();
    const pid = stranger.pid ?? 0;
    try {
      const stat = linuxProcessTable.stat(pid);
      expect(stat?.pgid).toBe(pid);
      const recorded = {
        ...spec('reused'),
        driver: 'local',
        spawnedAt: Date.now() - 60_000,
        address: { host: '127.0.0.1', port: 40_000 },
        // The member that had this pid started earlier: another start time.
        handle: {
          bootId: linuxProcessTable.bootId(),
          pgid: pid,
          workload: { pid, startTime: (stat?.startTime ?? 1) - 1 },
          agent: null,
        },
      };
      const result = await iaas.adopt([recorded]);
      expect(result.adopted).toEqual([]);
      expect(result.gone).toEqual([{ memberId: 'reused', reason: `pid ${pid} now belongs to another process` }]);
      expect(await iaas.isRunning('reused')).toBe(false);
      expect((await iaas.terminate('reused')).outcome).toBe('unknown');
      expect(linuxProcessTable.stat(pid)?.startTime).toBe(stat?.startTime); // untouched
    } finally {
      stranger.kill('SIGKILL');
    }
  });

  /** A first driver life in another process, over before the test goes on: its members outlive it. */
  const spawnInEarlierLife = async (runDir: string, specs: MemberSpec[]): Promise<MemberInstance[]> => {
    const { stdout } = await run(
      process.execPath,
      [
        path.join(import.meta.dirname, 'fixtures/spawn-members.mjs'),
        JSON.stringify({
          runDir,
          runtimeDir: testRuntimeDir(),
          agent: agentSettings(),
          memberKey: MEMBER_KEY.toString('base64'),
          specs,
        }),
      ],
      { timeout: 30_000 },
    );
    return JSON.parse(stdout);
  };

  it('discover() finds a member an earlier driver life spawned and nobody adopted; its terminate leaves nothing', async () => {
    const runDir = tempDir();
    // The rows of the earlier life are lost (the autoscaler died before writing them): only their groups are kept, for the cleanup check.
    const lost = (await spawnInEarlierLife(runDir, [spec('lost-1'), spec('lost-2')])).map(handleOf);
    try {
      const iaas = driver(runDir);
      expect(await iaas.list()).toEqual([]);
      expect(await iaas.isRunning('lost-1')).toBe(false);
      const found = await iaas.discover();
      expect(found.map((m) => m.memberId).sort()).toEqual(['lost-1', 'lost-2']);
      expect(found.map((m) => handleOf(m).pgid).sort()).toEqual(lost.map((h) => h.pgid).sort());
      expect(iaas.counters.discovered).toBe(2);
      expect(await iaas.isRunning('lost-1')).toBe(true);
      await waitFor(() => sp.batchesOf('lost-1').length >= 1, 'stats from the found member');
      // A member killed while nobody watched is found gone and its lingering agent stopped.
      process.kill((lost[1] as LocalHandle).workload.pid, 'SIGKILL');
      const results = await Promise.all(['lost-1', 'lost-2'].map((id) => iaas.terminate(id, { graceMs: 5_000 })));
      expect(results.map((r) => r.outcome)).toEqual(['terminated', expect.stringMatching(/terminated|already-gone/)]);
      expectGroupsGone(lost.map((h) => h.pgid));
      // Terminated members are forgotten for good: a later life finds nothing.
      expect(await iaas.discover()).toEqual([]);
      expect(await driver(runDir).discover()).toEqual([]);
    } finally {
      for (const handle of lost) {
        try {
          process.kill(-handle.pgid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  });

  it('probe(): answering, failing while the member is stopped (SIGSTOP), gone once it is killed', async () => {
    const iaas = driver(tempDir(), { probeTimeoutMs: 500 });
    const handle = handleOf(await iaas.spawn(spec('probed')));
    expect(await iaas.probe('probed')).toBe('answering');
    process.kill(-handle.pgid, 'SIGSTOP');
    await waitFor(() => linuxProcessTable.stat(handle.workload.pid)?.state === 'T', 'the workload stopped');
    const started = Date.now();
    expect(await iaas.probe('probed')).toBe('failing');
    expect(Date.now() - started).toBeGreaterThanOrEqual(450);
    expect(iaas.counters.probesFailing).toBe(1);
    process.kill(-handle.pgid, 'SIGKILL');
    await waitFor(() => groupOf(handle.pgid).length === 0, 'the group gone');
    expect(await iaas.probe('probed')).toBe('gone');
    expect(await iaas.probe('never-spawned')).toBe('gone');
  });

  it('a restarted driver adopts running members; terminate works on them, even SIGSTOPped', async () => {
    const runDir = tempDir();
    // The first driver life is another process, and it is over before the second begins.
    const rows: unknown[] = await spawnInEarlierLife(runDir, [spec('kept-1'), spec('kept-2')]);
    const handles = (rows as MemberInstance[]).map(handleOf);
    for (const handle of handles) expect(groupOf(handle.pgid)).toHaveLength(2);

    const iaas = driver(runDir);
    const result = await iaas.adopt(rows);
    expect(result.adopted.map((m) => m.memberId)).toEqual(['kept-1', 'kept-2']);
    expect(result.gone).toEqual([]);
    expect(await iaas.isRunning('kept-1')).toBe(true);
    await waitFor(() => sp.batchesOf('kept-2').length >= 2, 'stats after the driver restart');

    // A hung member (chaos hang-member): SIGCONT after SIGTERM lets it stop well within the grace.
    const hung = handles[0] as LocalHandle;
    process.kill(-hung.pgid, 'SIGSTOP');
    await waitFor(() => linuxProcessTable.stat(hung.workload.pid)?.state === 'T', 'the workload stopped');
    expect(await iaas.isRunning('kept-1')).toBe(true);
    const stopped = await iaas.terminate('kept-1', { graceMs: 10_000 });
    expect(stopped.outcome).toBe('terminated');
    expect(stopped.elapsedMs).toBeLessThan(10_000);
    expect((await iaas.terminate('kept-2')).outcome).toBe('terminated');
    expectGroupsGone(handles.map((h) => h.pgid));
  });
});
