import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createMemoryLogger } from '@faultline/core/testing';
import type { AgentSettings } from '@faultline/protocol';
import { TEST_MEMBER_KEY, testMember } from '@faultline/protocol/testing';
import { afterEach, describe, expect, it } from 'vitest';
import type { MemberInstance, MemberSpec } from './iaas.js';
import { AGENT_RESTART_SIGNAL, type Launcher, type LaunchRequest, type ReadyReport } from './launcher.js';
import { createLocalIaas } from './local-iaas.js';
import type { LocalIaasOptions } from './local-iaas-options.js';
import { localHandle } from './local-instance.js';
import { FakeProcessTable } from './testing/index.js';

/*
 * restartAgent() of the local driver on a fake process table (README
 * "Autoscaler → Second witness"): the workload is asked by a signal to its
 * pid, checked by start time, and the driver waits, on its clock, for a ready
 * report naming a live agent of the member's group. Real time, short bounds.
 */
const agent: AgentSettings = {
  spEndpoints: [{ host: '127.0.0.1', port: 7611 }],
  brokers: [{ name: 'a', host: '127.0.0.1', port: 1883 }],
};

const spec = (memberId: string): MemberSpec => ({ ...testMember(memberId), cartridgeType: 'php' });

const dirs: string[] = [];

/** Workload pid N leads group N, its agent is N + 1; each writes its ready file as the real workload does. */
class FakeLauncher implements Launcher {
  readonly requests: LaunchRequest[] = [];
  next = 1_000;
  /** What the workloads write: an earlier version wrote no `agentRestarts`. */
  restartable = true;
  constructor(private readonly table: FakeProcessTable) {}
  async launch(request: LaunchRequest) {
    this.requests.push(request);
    const pid = this.next;
    this.next += 10;
    this.table.add({ pid });
    this.table.add({ pid: pid + 1, pgid: pid, ppid: pid });
    const report: ReadyReport = { pid, port: 40_000 + pid, agentPid: pid + 1 };
    if (this.restartable) report.agentRestarts = 0;
    mkdirSync(request.workDir, { recursive: true });
    writeFileSync(request.readyFile, JSON.stringify(report));
    return { pid, port: report.port, agentPid: pid + 1 };
  }
}

function setup(extra: Partial<LocalIaasOptions> = {}) {
  const table = new FakeProcessTable();
  const launcher = new FakeLauncher(table);
  const logger = createMemoryLogger();
  const runDir = mkdtempSync(path.join(os.tmpdir(), 'faultline-restart-'));
  dirs.push(runDir);
  const iaas = createLocalIaas({
    runDir,
    agent,
    memberKey: TEST_MEMBER_KEY,
    processTable: table,
    launcher,
    logger,
    pollMs: 5,
    agentRestartTimeoutMs: 300,
    ...extra,
  });
  /** What the member's workload does on the driver's request: a new agent only when its own is gone. */
  const playWorkload = (workloadPid: number, readyFile: string, options: { answers?: boolean } = {}) => {
    let agentPid = workloadPid + 1;
    let restarts = 0;
    table.onSignal = (target, signal) => {
      if (target !== workloadPid || signal !== AGENT_RESTART_SIGNAL || options.answers === false) return;
      if (table.stat(agentPid)) return;
      agentPid = workloadPid + 5 + restarts;
      restarts += 1;
      table.add({ pid: agentPid, pgid: workloadPid, ppid: workloadPid });
      const report: ReadyReport = { pid: workloadPid, port: 40_000 + workloadPid, agentPid, agentRestarts: restarts };
      writeFileSync(`${readyFile}.tmp`, JSON.stringify(report));
      renameSync(`${readyFile}.tmp`, readyFile);
    };
  };
  const sent = () => table.signals.filter((s) => s.signal === AGENT_RESTART_SIGNAL);
  return { table, launcher, logger, iaas, runDir, playWorkload, sent };
}

afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('local iaas: restartAgent', () => {
  it('a member whose agent was SIGKILLed: its workload starts a new one, whose pid is recorded and returned', async () => {
    const { iaas, table, launcher, runDir, playWorkload, sent, logger } = setup();
    await iaas.spawn(spec('m-1'));
    playWorkload(1_000, launcher.requests[0]?.readyFile as string);
    table.kill(1_001, 'SIGKILL');
    const result = await iaas.restartAgent('m-1');
    expect(result).toMatchObject({ outcome: 'restarted', instance: { memberId: 'm-1' } });
    if (result.outcome !== 'restarted') throw new Error('not restarted');
    expect(result.reason).toBe('its workload started one: a new agent (pid 1005) runs in its process group');
    const agentRef = { pid: 1_005, startTime: table.stat(1_005)?.startTime };
    expect(localHandle(result.instance)?.agent).toEqual(agentRef);
    // Known so from now on: in memory, and in the record a later life discovers.
    expect(localHandle((await iaas.list())[0] as MemberInstance)?.agent).toEqual(agentRef);
    const record = JSON.parse(readFileSync(path.join(runDir, 'instances', 'member-m-1.json'), 'utf8'));
    expect(record.handle.agent).toEqual(agentRef);
    expect(sent()).toEqual([{ target: 1_000, signal: AGENT_RESTART_SIGNAL }]);
    expect(iaas.counters).toMatchObject({ agentsRestarted: 1, agentRestartsFailed: 0 });
    expect(logger.records.find((r) => r.event === 'local_iaas.agent_restarted')?.fields).toMatchObject({
      memberId: 'm-1',
      agentPid: 1_005,
      previousAgentPid: 1_001,
    });
    // Its new agent runs now: a second request starts none.
    expect(await iaas.restartAgent('m-1')).toEqual({
      outcome: 'running',
      reason: 'its agent (pid 1005) still runs: none was started',
    });
    expect(sent()).toHaveLength(1);
  });

  it('a member whose agent still runs: nothing is asked, nothing started', async () => {
    const { iaas, launcher, playWorkload, sent, table } = setup();
    await iaas.spawn(spec('m-1'));
    playWorkload(1_000, launcher.requests[0]?.readyFile as string);
    expect(await iaas.restartAgent('m-1')).toEqual({
      outcome: 'running',
      reason: 'its agent (pid 1001) still runs: none was started',
    });
    expect(sent()).toEqual([]);
    expect(table.groupMembers(1_000)).toEqual([1_000, 1_001]);
  });

  it('requests at once share one restart: one signal, one new agent', async () => {
    const { iaas, launcher, playWorkload, sent, table } = setup();
    await iaas.spawn(spec('m-1'));
    playWorkload(1_000, launcher.requests[0]?.readyFile as string);
    table.kill(1_001, 'SIGKILL');
    const [a, b] = await Promise.all([iaas.restartAgent('m-1'), iaas.restartAgent('m-1')]);
    expect(a).toEqual(b);
    expect(a.outcome).toBe('restarted');
    expect(sent()).toHaveLength(1);
    expect(table.groupMembers(1_000)).toEqual([1_000, 1_005]);
  });

  it('an agent an earlier request started (its answer lost) is found and recorded, without asking again', async () => {
    const { iaas, launcher, sent, table } = setup();
    await iaas.spawn(spec('m-1'));
    table.kill(1_001, 'SIGKILL');
    table.add({ pid: 1_007, pgid: 1_000, ppid: 1_000 });
    const readyFile = launcher.requests[0]?.readyFile as string;
    writeFileSync(readyFile, JSON.stringify({ pid: 1_000, port: 41_000, agentPid: 1_007, agentRestarts: 1 }));
    const result = await iaas.restartAgent('m-1');
    expect(result).toMatchObject({ outcome: 'restarted', reason: expect.stringMatching(/^found started earlier/) });
    expect(sent()).toEqual([]);
  });

  it('never records as its agent a process the ready file names that is not the workload’s own child', async () => {
    const { iaas, launcher, table } = setup();
    await iaas.spawn(spec('m-1'));
    table.kill(1_001, 'SIGKILL');
    // In the member's group, but not the workload's child (a decoy the member's code started elsewhere).
    table.add({ pid: 1_007, pgid: 1_000, ppid: 1 });
    const readyFile = launcher.requests[0]?.readyFile as string;
    writeFileSync(readyFile, JSON.stringify({ pid: 1_000, port: 41_000, agentPid: 1_007, agentRestarts: 1 }));
    const result = await iaas.restartAgent('m-1');
    expect(result).not.toMatchObject({ reason: expect.stringMatching(/^found started earlier/) });
  });

  it('a gone member says gone: its workload exited, its pid reused, or never known; nothing is signalled', async () => {
    const { iaas, table, sent } = setup();
    await iaas.spawn(spec('m-1'));
    await iaas.spawn(spec('m-2'));
    table.exit(1_000);
    table.exit(1_001);
    expect(await iaas.restartAgent('m-1')).toEqual({ outcome: 'gone', reason: 'the workload exited' });
    // m-2's workload pid now belongs to another process (another start time): never signalled.
    table.exit(1_010);
    table.add({ pid: 1_010, startTime: 5 });
    expect(await iaas.restartAgent('m-2')).toEqual({
      outcome: 'gone',
      reason: 'pid 1010 now belongs to another process',
    });
    expect(await iaas.restartAgent('never')).toEqual({ outcome: 'gone', reason: 'the driver does not know it' });
    expect(sent()).toEqual([]);
  });

  it('fails, bounded, when the workload cannot or does not start one; the member is left as it is', async () => {
    const { iaas, table, launcher, playWorkload, sent } = setup();
    // A workload started by an earlier version has no handler: it is never sent the signal.
    launcher.restartable = false;
    await iaas.spawn(spec('old'));
    table.kill(1_001, 'SIGKILL');
    expect(await iaas.restartAgent('old')).toEqual({
      outcome: 'failed',
      reason: 'its workload cannot start a new agent (it was started by an earlier version)',
    });
    expect(sent()).toEqual([]);
    // One that does not answer: failed after agentRestartTimeoutMs.
    launcher.restartable = true;
    await iaas.spawn(spec('mute'));
    playWorkload(1_010, launcher.requests[1]?.readyFile as string, { answers: false });
    table.kill(1_011, 'SIGKILL');
    const started = Date.now();
    expect(await iaas.restartAgent('mute')).toEqual({
      outcome: 'failed',
      reason: 'no new agent reported within 300 ms',
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(sent().map((s) => s.target)).toEqual([1_010]);
    // A stopped workload cannot start anything.
    await iaas.spawn(spec('hung'));
    table.kill(1_021, 'SIGKILL');
    table.kill(1_020, 'SIGSTOP');
    expect(await iaas.restartAgent('hung')).toMatchObject({
      outcome: 'failed',
      reason: expect.stringMatching(/stopped/),
    });
    expect(iaas.counters.agentRestartsFailed).toBe(3);
    expect(await iaas.isRunning('mute')).toBe(true);
  });

  it('a member being terminated is not repaired', async () => {
    const { iaas, table, launcher, playWorkload } = setup();
    await iaas.spawn(spec('m-1'));
    playWorkload(1_000, launcher.requests[0]?.readyFile as string, { answers: false });
    table.kill(1_001, 'SIGKILL');
    const restart = iaas.restartAgent('m-1');
    await iaas.terminate('m-1', { graceMs: 50 });
    expect(await restart).toMatchObject({ outcome: expect.stringMatching(/^(failed|gone)$/) });
    expect(await iaas.list()).toEqual([]);
  });
});
