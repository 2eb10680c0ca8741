import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import {
  type AgentSettings,
  encodeMemberEnv,
  issueMemberCredential,
  verifyMemberCredential,
} from '@faultline/protocol';
import { TEST_MEMBER_KEY, testMember } from '@faultline/protocol/testing';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { MemberSpec } from './iaas.js';
import { type Launcher, type LaunchRequest, SpawnError } from './launcher.js';
import { createLocalIaas } from './local-iaas.js';
import { type LocalIaasOptions, resolveLocalIaasOptions } from './local-iaas-options.js';
import { localHandle } from './local-instance.js';
import { FakeProcessTable } from './testing/index.js';

const agent: AgentSettings = {
  spEndpoints: [{ host: '127.0.0.1', port: 7611 }],
  brokers: [{ name: 'a', host: '127.0.0.1', port: 1883 }],
};

const spec = (memberId: string): MemberSpec => ({ ...testMember(memberId), cartridgeType: 'php' });

/** Starts "processes" in the fake table: workload pid N leads group N, its agent is N + 1. */
class FakeLauncher implements Launcher {
  readonly requests: LaunchRequest[] = [];
  next = 1_000;
  agentDiesAtOnce = false;
  constructor(private readonly table: FakeProcessTable) {}
  async launch(request: LaunchRequest) {
    this.requests.push(request);
    const pid = this.next;
    this.next += 10;
    this.table.add({ pid });
    if (!this.agentDiesAtOnce) this.table.add({ pid: pid + 1, pgid: pid });
    return { pid, port: 40_000 + pid, agentPid: pid + 1 };
  }
}

function setup(extra: Partial<LocalIaasOptions> = {}) {
  const table = new FakeProcessTable();
  const launcher = new FakeLauncher(table);
  const logger = createMemoryLogger();
  const runDir = mkdtempSync(path.join(os.tmpdir(), 'faultline-iaas-'));
  const iaas = createLocalIaas({
    runDir,
    agent,
    memberKey: TEST_MEMBER_KEY,
    processTable: table,
    launcher,
    logger,
    ...extra,
  });
  return { table, launcher, logger, iaas };
}

describe('local iaas (fake processes)', () => {
  beforeEach(() => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance', 'Date'] }));
  afterEach(() => vi.useRealTimers());

  it('spawns a member and records its group, pids and start times as plain JSON', async () => {
    const { iaas, table, launcher } = setup();
    const instance = await iaas.spawn(spec('m-1'));
    expect(instance).toMatchObject({ memberId: 'm-1', clusterId: 'php', driver: 'local' });
    expect(instance.address).toEqual({ host: '127.0.0.1', port: 41_000 });
    expect(localHandle(instance)).toEqual({
      bootId: 'boot-1',
      pgid: 1_000,
      workload: { pid: 1_000, startTime: table.stat(1_000)?.startTime },
      agent: { pid: 1_001, startTime: table.stat(1_001)?.startTime },
    });
    expect(JSON.parse(JSON.stringify(instance))).toEqual(instance);
    // The member's credential (its broker password too) travels in the environment, never in the instance.
    const credential = launcher.requests[0]?.env.FAULTLINE_MEMBER_CREDENTIAL ?? '';
    expect(credential).toMatch(/^m-1:php:/);
    expect(JSON.stringify(instance)).not.toContain(credential.slice(-43));
    expect(launcher.requests[0]?.env.FAULTLINE_WORKLOAD_LATENCY_MS).toBe('20');
    expect(await iaas.isRunning('m-1')).toBe(true);
    expect((await iaas.list()).map((m) => m.memberId)).toEqual(['m-1']);
  });

  it('issues each member its credential at spawn, for its agent only: never in the instance or a log', async () => {
    const { iaas, launcher, logger } = setup();
    const instance = await iaas.spawn(spec('m-1'));
    const credential = launcher.requests[0]?.env.FAULTLINE_MEMBER_CREDENTIAL;
    expect(verifyMemberCredential(TEST_MEMBER_KEY, credential)).toEqual({
      ok: true,
      value: { memberId: 'm-1', clusterId: 'php', networkPartitionId: 'np-1' },
    });
    const mac = String(credential).split(':')[3] as string;
    expect(JSON.stringify(instance)).not.toContain(mac);
    expect(JSON.stringify(await iaas.list())).not.toContain(mac);
    expect(JSON.stringify(logger.records)).not.toContain(mac);
    // Without the key it spawns nothing.
    const without = setup({ memberKey: undefined });
    await expect(without.iaas.spawn(spec('m-2'))).rejects.toMatchObject({
      code: 'FL_ERR_CONFIG_INVALID',
      message: expect.stringContaining('security.memberKeyFile'),
    });
    expect(without.launcher.requests).toEqual([]);
  });

  it('refuses a member id it already runs, and a malformed spec with every bad field named', async () => {
    const { iaas, logger } = setup();
    await iaas.spawn(spec('m-1'));
    await expect(iaas.spawn(spec('m-1'))).rejects.toMatchObject({ code: 'FL_ERR_MEMBER_EXISTS' });
    const bad = { ...spec('../etc'), workload: { latencyMs: -1 } };
    await expect(iaas.spawn(bad)).rejects.toMatchObject({
      code: 'FL_ERR_MEMBER_SPEC_INVALID',
      issues: [expect.stringMatching(/^memberId/), expect.stringMatching(/^workload\.latencyMs/)],
    });
    expect(iaas.counters.invalidInput).toBe(1);
    expect(logger.events()).toContain('local_iaas.spec_refused');
  });

  it('refuses a spawn with malformed agent settings, every bad field named, and spawns nothing without any', async () => {
    const { iaas, launcher, logger } = setup({
      agent: { ...agent, spEndpoints: [], brokers: [{ name: '../a', host: 'h', port: 1 }] },
    });
    await expect(iaas.spawn(spec('m-1'))).rejects.toMatchObject({
      code: 'FL_ERR_MEMBER_SPEC_INVALID',
      issues: [expect.stringMatching(/^agent\.spEndpoints/), expect.stringMatching(/^agent\.brokers\[0\]\.name/)],
    });
    expect(iaas.counters.invalidInput).toBe(1);
    expect(logger.events()).toContain('local_iaas.spec_refused');
    const without = setup({ agent: undefined });
    await expect(without.iaas.spawn(spec('m-1'))).rejects.toMatchObject({ code: 'FL_ERR_CONFIG_INVALID' });
    expect([...launcher.requests, ...without.launcher.requests]).toEqual([]);
  });

  it('starts members with an allow-listed environment: a few variables of its own, HOME, and the member’s', async () => {
    const { iaas, launcher } = setup({
      agentMain: '/dist/main.js',
      memberLogLevel: 'debug',
      defaultLatencyMs: 7,
      env: {
        PATH: '/usr/bin',
        LANG: 'C.UTF-8',
        TZ: '',
        FAULTLINE_CONFIG: '/etc/faultline.yaml',
        FAULTLINE_AGENT_STAT_INTERVAL_MS: '99',
        FAULTLINE_BROKERS_CREDENTIALS_SP_PASSWORD_FILE: '/run/secrets/sp',
        DATABASE_URL: 'postgres://u:secret@db/x',
        PGPASSWORD: 'secret',
        NODE_OPTIONS: '--require /tmp/hook.js',
        HOME: '/root',
      },
    });
    await iaas.spawn({ ...spec('m-1'), workload: { latencyMs: 5 } });
    await iaas.spawn(spec('m-2'));
    const [first, second] = launcher.requests;
    // Everything the member writes is in its own folder, which is also its HOME.
    const workDir = first?.workDir ?? '';
    expect(path.basename(workDir)).toBe('member-m-1');
    expect(first?.readyFile).toBe(path.join(workDir, 'ready.json'));
    expect(first?.outputFile).toBe(path.join(path.dirname(workDir), 'logs', 'member-m-1.jsonl'));
    expect(first?.env).toEqual({
      PATH: '/usr/bin',
      LANG: 'C.UTF-8',
      HOME: workDir,
      ...encodeMemberEnv({
        member: { ...spec('m-1') },
        credential: issueMemberCredential(TEST_MEMBER_KEY, spec('m-1')),
        agent,
        workload: {
          host: '127.0.0.1',
          latencyMs: 5,
          readyFile: path.join(workDir, 'ready.json'),
          agentMain: '/dist/main.js',
        },
        outboxDir: path.join(workDir, 'outbox'),
        // Its agent records its metrics port in its own folder: no shared folder is named to it.
        metricsPortFile: path.join(workDir, 'agent-metrics-port'),
        // Its logs go to stdout, the file the driver opens: no log folder of the platform's is named to it.
        logDir: undefined,
        logLevel: 'debug',
      }),
    });
    expect(second?.env.FAULTLINE_WORKLOAD_LATENCY_MS).toBe('7');
    expect(second?.env.HOME).toBe(second?.workDir);
    // Without PATH of its own, a member still gets one.
    const bare = setup({ env: {} });
    await bare.iaas.spawn(spec('m-3'));
    expect(bare.launcher.requests[0]?.env.PATH).toBe('/usr/local/bin:/usr/bin:/bin');
  });

  it('fails a spawn whose agent died at once, and stops what had started', async () => {
    const { iaas, table, launcher } = setup();
    launcher.agentDiesAtOnce = true;
    await expect(iaas.spawn(spec('m-1'))).rejects.toBeInstanceOf(SpawnError);
    expect(table.has(1_000)).toBe(false);
    expect(await iaas.list()).toEqual([]);
    expect(iaas.counters).toMatchObject({ spawned: 0, spawnFailed: 1 });
  });

  it('gives any other failure of a spawn its code', async () => {
    const { iaas, launcher } = setup();
    launcher.launch = async () => {
      throw new Error('EACCES: permission denied');
    };
    await expect(iaas.spawn(spec('m-1'))).rejects.toMatchObject({
      code: 'FL_ERR_SPAWN_FAILED',
      message: 'member m-1 did not start: EACCES: permission denied',
    });
    expect(iaas.counters.spawnFailed).toBe(1);
  });

  it('says the instance runs while only its agent is gone, and not once the workload is', async () => {
    const { iaas, table } = setup();
    await iaas.spawn(spec('m-1'));
    table.exit(1_001);
    expect(await iaas.isRunning('m-1')).toBe(true);
    table.exit(1_000, { zombie: true });
    expect(await iaas.isRunning('m-1')).toBe(false);
    expect(await iaas.isRunning('nobody')).toBe(false);
  });

  it('terminates idempotently: concurrent calls share one stop, later ones say unknown', async () => {
    const { iaas, table } = setup();
    await iaas.spawn(spec('m-1'));
    const [first, second] = await Promise.all([iaas.terminate('m-1'), iaas.terminate('m-1')]);
    expect(first).toBe(second);
    expect(first.outcome).toBe('terminated');
    expect(table.signals.filter((s) => s.signal === 'SIGTERM')).toHaveLength(1);
    expect((await iaas.terminate('m-1')).outcome).toBe('unknown');
    expect(await iaas.list()).toEqual([]);
    expect(iaas.counters.terminated).toBe(1);
  });

  it('removes its target file when it stops a member, not another’s; with metrics off it names no port file', async () => {
    const { iaas, launcher, table } = setup();
    await iaas.spawn(spec('m-1'));
    const workDir = launcher.requests[0]?.workDir ?? '';
    expect(launcher.requests[0]?.env.FAULTLINE_AGENT_METRICS_PORT_FILE).toBe(path.join(workDir, 'agent-metrics-port'));
    // The targets folder is the driver's (agent-targets.test.ts): what it wrote for this member goes with it.
    const dir = path.join(path.dirname(workDir), 'agent-targets');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'agent-m-1.json'), '[]');
    writeFileSync(path.join(dir, 'agent-m-2.json'), '[]');
    table.exit(1_001);
    expect((await iaas.terminate('m-1')).outcome).toBe('terminated');
    expect(existsSync(path.join(dir, 'agent-m-1.json'))).toBe(false);
    // Another member's is the sync's business.
    expect(existsSync(path.join(dir, 'agent-m-2.json'))).toBe(true);
    expect(iaas.counters).toMatchObject({ targetFileFailed: 0, targetsRemoved: 1 });

    const off = setup({ agent: { ...agent, metrics: false } });
    await off.iaas.spawn(spec('m-3'));
    expect(off.launcher.requests[0]?.env).toMatchObject({ FAULTLINE_AGENT_METRICS: 'false' });
    expect(off.launcher.requests[0]?.env).not.toHaveProperty('FAULTLINE_AGENT_METRICS_PORT_FILE');
    expect(Object.keys(off.launcher.requests[0]?.env ?? {}).filter((key) => key.includes('TARGETS'))).toEqual([]);
  });

  it('says already-gone for a member that died by itself, and forgets it', async () => {
    const { iaas, table } = setup();
    await iaas.spawn(spec('m-1'));
    table.exit(1_000);
    table.exit(1_001);
    expect((await iaas.terminate('m-1')).outcome).toBe('already-gone');
    expect(table.signals).toEqual([]);
    expect(await iaas.list()).toEqual([]);
  });

  it('kills a member that ignores SIGTERM after the grace period it was given', async () => {
    const { iaas, table, launcher } = setup();
    launcher.launch = async () => {
      table.add({ pid: 500, ignoresTerm: true });
      table.add({ pid: 501, pgid: 500, ignoresTerm: true });
      return { pid: 500, port: 8080, agentPid: 501 };
    };
    await iaas.spawn(spec('m-1'));
    const result = iaas.terminate('m-1', { graceMs: 2_000 });
    await vi.advanceTimersByTimeAsync(2_100);
    await expect(result).resolves.toMatchObject({ outcome: 'killed' });
    expect((await result).elapsedMs).toBeGreaterThanOrEqual(2_000);
    expect(iaas.counters.killed).toBe(1);
  });

  it('adopts what still runs, reports the rest gone, and refuses what is not its own', async () => {
    const first = setup();
    const alive = await first.iaas.spawn(spec('alive'));
    const exited = await first.iaas.spawn(spec('exited'));
    const reused = await first.iaas.spawn(spec('reused'));
    const orphan = await first.iaas.spawn(spec('orphan'));
    await first.iaas.close();
    const { table } = first;
    table.exit(localHandle(exited)?.workload.pid ?? 0);
    table.exit(localHandle(exited)?.agent?.pid ?? 0);
    const reusedPid = localHandle(reused)?.workload.pid ?? 0;
    table.exit(reusedPid);
    table.exit(reusedPid + 1);
    table.add({ pid: reusedPid, startTime: 7 }); // someone else's process now
    table.exit(localHandle(orphan)?.workload.pid ?? 0); // its agent lingers
    const rows = JSON.parse(JSON.stringify([alive, exited, reused, orphan, { ...alive, driver: 'ec2' }, 42]));

    const second = createLocalIaas({ runDir: '/nonexistent', processTable: table, launcher: first.launcher });
    const result = await second.adopt(rows);
    expect(result.adopted.map((m) => m.memberId)).toEqual(['alive']);
    expect(result.gone).toEqual([
      { memberId: 'exited', reason: 'the workload exited' },
      { memberId: 'reused', reason: `pid ${reusedPid} now belongs to another process` },
      { memberId: 'orphan', reason: 'the workload exited' },
    ]);
    expect(result.invalid.map((i) => i.index)).toEqual([4, 5]);
    expect(result.invalid[0]?.reason).toMatch(/driver "ec2" is not local/);
    expect(table.has(reusedPid)).toBe(true); // the stranger is untouched
    expect(table.has((localHandle(orphan)?.pgid ?? 0) + 1)).toBe(false); // the lingering agent was stopped
    expect(second.counters).toMatchObject({ adopted: 1, adoptedGone: 3, invalidInput: 2 });
    expect(await second.isRunning('alive')).toBe(true);
    // Adopting twice is harmless: a known member stays as it is.
    expect((await second.adopt([rows[0]])).adopted.map((m) => m.memberId)).toEqual(['alive']);
    expect(second.counters.adopted).toBe(1);
    expect((await second.terminate('alive')).outcome).toBe('terminated');
  });

  it('refuses every call after close, and close is idempotent', async () => {
    const { iaas } = setup();
    await iaas.close();
    await iaas.close();
    await expect(iaas.spawn(spec('m-1'))).rejects.toMatchObject({ code: 'FL_ERR_CLOSED' });
    await expect(iaas.terminate('m-1')).rejects.toMatchObject({ code: 'FL_ERR_CLOSED' });
    await expect(iaas.isRunning('m-1')).rejects.toMatchObject({ code: 'FL_ERR_CLOSED' });
  });
});

describe('resolveLocalIaasOptions', () => {
  it('runs the members’ scripts from this checkout, or from the runtime folder it is given', () => {
    const here = resolveLocalIaasOptions({ runDir: '/x/members' });
    expect(here.runtimeDir).toBe(REPO_ROOT);
    expect(here.workloadMain).toBe(path.join(REPO_ROOT, 'packages/cloud-controller/dist/workload-main.js'));
    expect(here.agentMain).toBe(path.join(REPO_ROOT, 'packages/cartridge-agent/dist/main.js'));
    const copy = resolveLocalIaasOptions({ runDir: '/x/members', runtimeDir: '/srv/rt' });
    expect(copy.workloadMain).toBe('/srv/rt/packages/cloud-controller/dist/workload-main.js');
    expect(copy.agentMain).toBe('/srv/rt/packages/cartridge-agent/dist/main.js');
    // A script named explicitly wins; an explicit undefined keeps the default (config values pass straight through).
    expect(resolveLocalIaasOptions({ runDir: '/m', runtimeDir: undefined }).runtimeDir).toBe(REPO_ROOT);
    expect(resolveLocalIaasOptions({ runDir: '/m', runtimeDir: '/srv/rt', agentMain: '/a.js' }).agentMain).toBe(
      '/a.js',
    );
  });
});
