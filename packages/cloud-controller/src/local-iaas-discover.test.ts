import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createMemoryLogger } from '@faultline/core/testing';
import type { AgentSettings } from '@faultline/protocol';
import { TEST_MEMBER_KEY, testMember } from '@faultline/protocol/testing';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { MemberSpec } from './iaas.js';
import type { Launcher, LaunchRequest, ReadyReport } from './launcher.js';
import { createLocalIaas } from './local-iaas.js';
import type { LocalIaasOptions } from './local-iaas-options.js';
import { FakeProcessTable } from './testing/index.js';

const agent: AgentSettings = {
  spEndpoints: [{ host: '127.0.0.1', port: 7611 }],
  brokers: [{ name: 'a', host: '127.0.0.1', port: 1883 }],
};
const spec = (memberId: string): MemberSpec => ({ ...testMember(memberId), cartridgeType: 'php' });

/**
 * Starts "processes" in the fake table as the real launcher does: the
 * workload (pid N, leading group N) first, `onStarted` at once, then its agent
 * (N + 1) and the ready report. `hang` is a driver that dies before the member
 * is ready: the launch never resolves.
 */
class FakeLauncher implements Launcher {
  readonly requests: LaunchRequest[] = [];
  /** The record as it was when the launch began (before any process). */
  readonly recordsAtLaunch: unknown[] = [];
  next = 1_000;
  hang = false;
  port = (pid: number) => 40_000 + pid;
  constructor(
    private readonly table: FakeProcessTable,
    private readonly recordsDir: string,
  ) {}
  async launch(request: LaunchRequest): Promise<ReadyReport> {
    this.requests.push(request);
    this.recordsAtLaunch.push(readRecordFile(this.recordsDir, request.memberId));
    const pid = this.next;
    this.next += 10;
    this.table.add({ pid });
    request.onStarted?.(pid);
    this.table.add({ pid: pid + 1, pgid: pid });
    if (this.hang) return new Promise(() => {});
    return { pid, port: this.port(pid), agentPid: pid + 1 };
  }
}

function readRecordFile(dir: string, memberId: string): unknown {
  try {
    return JSON.parse(readFileSync(path.join(dir, `member-${memberId}.json`), 'utf8'));
  } catch {
    return undefined;
  }
}

function world() {
  const table = new FakeProcessTable();
  const runDir = mkdtempSync(path.join(os.tmpdir(), 'faultline-discover-'));
  const recordsDir = path.join(runDir, 'instances');
  /** One life of the driver (a new one after the autoscaler's process died). */
  const life = (extra: Partial<LocalIaasOptions> = {}) => {
    const launcher = new FakeLauncher(table, recordsDir);
    launcher.next = 1_000 + 1_000 * lives++;
    const logger = createMemoryLogger();
    const iaas = createLocalIaas({
      runDir,
      agent,
      memberKey: TEST_MEMBER_KEY,
      processTable: table,
      launcher,
      logger,
      ...extra,
    });
    return { iaas, launcher, logger };
  };
  let lives = 0;
  return { table, runDir, recordsDir, life };
}

describe('local iaas discover()', () => {
  beforeEach(() => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance', 'Date'] }));
  afterEach(() => vi.useRealTimers());

  it('records the member before any process starts, and its group the moment the workload has a pid', async () => {
    const { life, recordsDir, table } = world();
    const { iaas, launcher } = life();
    await iaas.spawn(spec('m-1'));
    expect(launcher.recordsAtLaunch[0]).toMatchObject({
      memberId: 'm-1',
      driver: 'local',
      handle: null,
      address: null,
    });
    expect(readRecordFile(recordsDir, 'm-1')).toMatchObject({
      handle: { pgid: 1_000, workload: { pid: 1_000, startTime: table.stat(1_000)?.startTime } },
      address: { host: '127.0.0.1', port: 41_000 },
    });
  });

  it('starts nothing when the record cannot be written', async () => {
    const { life, recordsDir } = world();
    writeFileSync(recordsDir, 'not a folder');
    const { iaas, launcher } = life();
    await expect(iaas.spawn(spec('m-1'))).rejects.toMatchObject({ code: 'FL_ERR_SPAWN_FAILED' });
    expect(launcher.requests).toEqual([]);
  });

  it('finds a member an earlier life spawned and nobody adopted; terminate stops it and forgets its record', async () => {
    const { life, table, recordsDir } = world();
    const first = life();
    const spawned = await first.iaas.spawn(spec('orphan'));
    // The first life dies before any registry row was written; a new one starts.
    const { iaas, logger } = life();
    expect(await iaas.list()).toEqual([]);
    expect(await iaas.isRunning('orphan')).toBe(false);
    const found = await iaas.discover();
    expect(found).toEqual([spawned]);
    expect(iaas.counters.discovered).toBe(1);
    expect(logger.events()).toContain('local_iaas.member_discovered');
    expect(await iaas.isRunning('orphan')).toBe(true);
    expect((await iaas.list()).map((m) => m.memberId)).toEqual(['orphan']);
    // Known now: found again, but not counted again.
    expect(await iaas.discover()).toEqual([spawned]);
    expect(iaas.counters.discovered).toBe(1);
    expect((await iaas.terminate('orphan')).outcome).toBe('terminated');
    expect(table.groupMembers(1_000)).toEqual([]);
    expect(readRecordFile(recordsDir, 'orphan')).toBeUndefined();
    expect(await iaas.discover()).toEqual([]);
  });

  it('never spawns again a member id whose recorded instance still runs', async () => {
    const { life } = world();
    await life().iaas.spawn(spec('m-1'));
    const { iaas, launcher } = life();
    await expect(iaas.spawn(spec('m-1'))).rejects.toMatchObject({ code: 'FL_ERR_MEMBER_EXISTS' });
    expect(launcher.requests).toEqual([]);
    expect((await iaas.discover()).map((m) => m.memberId)).toEqual(['m-1']);
  });

  it('stops what is left of a recorded member that no longer runs, and forgets it', async () => {
    const { life, table, recordsDir } = world();
    await life().iaas.spawn(spec('dead'));
    table.exit(1_000); // the workload died; its agent (1 001) lingers in the group
    const { iaas, logger } = life();
    expect(await iaas.discover()).toEqual([]);
    expect(table.groupMembers(1_000)).toEqual([]);
    expect(iaas.counters).toMatchObject({ discovered: 0, discoveredGone: 1 });
    expect(logger.records.find((r) => r.event === 'local_iaas.discovered_gone')?.fields).toMatchObject({
      memberId: 'dead',
      reason: 'the workload exited',
    });
    expect(readRecordFile(recordsDir, 'dead')).toBeUndefined();
    expect(await iaas.isRunning('dead')).toBe(false);
  });

  it('a spawn whose driver died before the member was ready: found through its ready file, or stopped', async () => {
    const { life, table, runDir, recordsDir } = world();
    const first = life();
    first.launcher.hang = true;
    void first.iaas.spawn(spec('ready-late'));
    void first.iaas.spawn(spec('never-ready'));
    // The spawns do real file I/O: wait (without moving fake time) until both workloads started.
    for (let i = 0; i < 5_000 && first.launcher.requests.length < 2; i++) {
      await new Promise((resolve) => setImmediate(resolve));
    }
    // The record names each workload although neither launch finished.
    expect(readRecordFile(recordsDir, 'ready-late')).toMatchObject({ handle: { pgid: 1_000 }, address: null });
    expect(readRecordFile(recordsDir, 'never-ready')).toMatchObject({ handle: { pgid: 1_010 }, address: null });
    // One got as far as writing its ready report (its folder, its file: read as untrusted).
    mkdirSync(path.join(runDir, 'member-ready-late'), { recursive: true });
    writeFileSync(
      path.join(runDir, 'member-ready-late', 'ready.json'),
      JSON.stringify({ pid: 1_000, port: 45_000, agentPid: 1_001 }),
    );
    const { iaas } = life();
    const found = await iaas.discover();
    expect(found).toMatchObject([
      {
        memberId: 'ready-late',
        address: { host: '127.0.0.1', port: 45_000 },
        handle: { pgid: 1_000, agent: { pid: 1_001, startTime: table.stat(1_001)?.startTime } },
      },
    ]);
    expect(readRecordFile(recordsDir, 'ready-late')).toMatchObject({ address: { port: 45_000 } });
    // The other never reported ready: nobody waits for it; it is stopped, not left running.
    expect(table.groupMembers(1_010)).toEqual([]);
    expect(readRecordFile(recordsDir, 'never-ready')).toBeUndefined();
    expect(iaas.counters).toMatchObject({ discovered: 1, discoveredGone: 1 });
  });

  it('skips, logs and counts bad records without throwing, and still finds the good ones', async () => {
    const { life, recordsDir, runDir } = world();
    await life().iaas.spawn(spec('good'));
    writeFileSync(path.join(recordsDir, 'member-garbage.json'), '{not json', { mode: 0o600 });
    writeFileSync(path.join(recordsDir, 'member-huge.json'), `"${'x'.repeat(100_000)}"`, { mode: 0o600 });
    writeFileSync(path.join(recordsDir, 'member-liar.json'), readFileSync(path.join(recordsDir, 'member-good.json')), {
      mode: 0o600,
    });
    writeFileSync(path.join(runDir, 'elsewhere.json'), '{}');
    symlinkSync(path.join(runDir, 'elsewhere.json'), path.join(recordsDir, 'member-link.json'));
    mkdirSync(path.join(recordsDir, 'member-folder.json'));
    writeFileSync(path.join(recordsDir, 'stray.txt'), '');
    const { iaas, logger } = life();
    expect((await iaas.discover()).map((m) => m.memberId)).toEqual(['good']);
    expect(iaas.counters.recordsInvalid).toBe(6);
    const reasons = logger.records
      .filter((r) => r.event === 'local_iaas.record_invalid')
      .map((r) => [r.fields.record, r.fields.reason]);
    expect(reasons).toEqual(
      expect.arrayContaining([
        ['member-garbage.json', 'not JSON'],
        ['member-huge.json', 'larger than 16384 bytes'],
        ['member-liar.json', 'it names member good'],
        ['member-link.json', 'cannot open it (ELOOP)'],
        ['member-folder.json', 'not a regular file'],
        ['stray.txt', 'not a record name'],
      ]),
    );
  });

  it('looks at no more than discoverMaxRecords records a call', async () => {
    const { life } = world();
    const first = life();
    for (const id of ['a', 'b', 'c']) await first.iaas.spawn(spec(id));
    const { iaas, logger } = life({ discoverMaxRecords: 2 });
    expect(await iaas.discover()).toHaveLength(2);
    expect(iaas.counters.discoverTruncated).toBe(1);
    expect(logger.events()).toContain('local_iaas.discover_truncated');
    // The known ones are skipped without a read; the next call gets further only as far as the cap allows.
    expect((await iaas.discover()).length).toBeGreaterThanOrEqual(2);
  });

  it('refuses after close()', async () => {
    const { life } = world();
    const { iaas } = life();
    await iaas.close();
    await expect(iaas.discover()).rejects.toMatchObject({ code: 'FL_ERR_CLOSED' });
    await expect(iaas.probe('m-1')).rejects.toMatchObject({ code: 'FL_ERR_CLOSED' });
  });
});

describe('local iaas probe()', () => {
  const servers: http.Server[] = [];
  afterEach(async () => {
    vi.useRealTimers();
    for (const server of servers.splice(0)) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  /** A stand-in workload on loopback: `status` answers, `hang` never does. */
  async function workload(answer: { status: number } | 'hang'): Promise<number> {
    const server = http.createServer((req, res) => {
      if (answer === 'hang') return;
      res.writeHead(req.url === '/healthz' ? answer.status : 404);
      res.end();
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as AddressInfo).port;
  }

  it('gone for unknown and exited members; answering on 200; failing on another status, a refusal or no answer in time', async () => {
    const { life, table } = world();
    const { iaas, launcher, logger } = life({ probeTimeoutMs: 2_000 });
    const ports = [await workload({ status: 200 }), await workload({ status: 503 }), await workload('hang')];
    const closed = await workload({ status: 200 });
    await new Promise((resolve) => servers.pop()?.close(resolve));
    const byPid = new Map<number, number>();
    launcher.port = (pid) => byPid.get(pid) ?? 1;
    for (const [i, port] of [...ports, closed].entries()) byPid.set(1_000 + 10 * i, port);
    for (const id of ['ok', 'sick', 'hung', 'closed', 'dead']) await iaas.spawn(spec(id));
    table.exit(1_040);

    expect(await iaas.probe('nobody')).toBe('gone');
    expect(await iaas.probe('dead')).toBe('gone');
    expect(await iaas.probe('ok')).toBe('answering');
    expect(await iaas.probe('sick')).toBe('failing');
    expect(await iaas.probe('closed')).toBe('failing');
    // No answer: the timeout runs on the driver's clock.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    let answer: string | undefined;
    void iaas.probe('hung').then((a) => (answer = a));
    await vi.advanceTimersByTimeAsync(1_999);
    expect(answer).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    await vi.waitFor(() => expect(answer).toBe('failing'));
    expect(iaas.counters.probesFailing).toBe(3);
    expect(logger.records.filter((r) => r.event === 'local_iaas.probe_failing').map((r) => r.fields.memberId)).toEqual([
      'sick',
      'closed',
      'hung',
    ]);
  });
});
