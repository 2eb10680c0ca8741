import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { processesOf, sleep, stackConfig, stackDir, stackPorts, stackProbe, startStack } from './harness.js';

/*
 * Issue 16 on the real stack, what judges a member's health: the second
 * witness, the probes, and maintenance mode.
 *
 * Cluster `web` has the second witness on (README "Autoscaler → Second
 * witness"): a member whose agent alone is killed (`faultline chaos
 * kill-agent`) is kept, its agent restarted by the cloud controller in the
 * same instance; its stats resume and it stays Active. (Without the witness,
 * stack.test.ts's kill-agent scenario: the instance is terminated and
 * replaced.)
 *
 * Cluster `probed` has probes of its own (README "Probes"): its workload
 * paused (SIGSTOP to that one process: a stop-the-world pause, its agent runs
 * on) past two liveness checks and resumed before the third is not killed;
 * a readiness check failing takes it out of service (shown by `stack status`),
 * not down; paused for good, it is faulted (ports_not_open) and replaced.
 *
 * Cluster `maint` (README "Maintenance mode"): a member killed while its
 * cluster is in maintenance is not replaced until the maintenance is off, then
 * it is replaced once. Only `faultline` commands act: `maintenance on|off`
 * writes the registry through the supervisor, the acting autoscaler reads it
 * at its ticks.
 *
 * One stack for the three (a stack takes its time to start); each scenario
 * acts on its own cluster. Judged by `stack status`, the autoscaler's log and
 * the member's own log.
 */

/** `stack status --json` with the fields the maintenance scenario reads beyond the harness's. */
interface MaintenanceStatus {
  clusters: {
    id: string;
    maintenance: { by: string; reason: string; since: string } | null;
    members: { memberId: string; state: string; held: string | null }[];
  }[];
}

/** The fault timeout of stackConfig (cep.faultTimeoutMs). */
const FAULT_TIMEOUT_MS = 4_000;
/** The `probed` cluster's liveness probe: long between checks, so the test can act between two of them. */
const LIVENESS = { type: 'http', periodMs: 3_000, timeoutMs: 500, failureThreshold: 3 } as const;

/** Process group of a pid (field 5 of /proc/<pid>/stat). */
function pgidOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
}

describe('second witness, probes and maintenance on the full stack', () => {
  let dir: string;
  let stack: ChildProcess;
  const probe = stackProbe(() => dir);
  const { cli, records, actions, spawns, waitFor, status } = probe;
  const maintStatus = async () =>
    (JSON.parse(await cli('stack', 'status', '--json')) as MaintenanceStatus).clusters.find((c) => c.id === 'maint');
  /** While it exists, the `probed` members' readiness check fails. */
  const unready = () => path.join(dir, 'unready');

  beforeAll(async () => {
    dir = stackDir('faultline-e2e-health-');
    const config = stackConfig('aedes', await stackPorts(), {
      clusters: [
        { id: 'web', cartridgeType: 'php', min: 3, max: 3, secondWitness: { enabled: true } },
        {
          id: 'probed',
          cartridgeType: 'php',
          min: 1,
          max: 1,
          probes: {
            liveness: LIVENESS,
            // argv, no shell line: sh runs `test`, the file's path is its $0.
            readiness: {
              type: 'exec',
              command: ['/bin/sh', '-c', 'test ! -e "$0"', path.join(dir, 'unready')],
              periodMs: 1_000,
              failureThreshold: 1,
            },
          },
        },
        { id: 'maint', cartridgeType: 'php', min: 1, max: 1 },
      ],
    });
    ({ child: stack } = await startStack(dir, config, probe));
    await waitFor(async () => ((await activeIds()).length === 5 ? true : undefined), '5 active members');
  });

  afterAll(async () => {
    if (stack && stack.exitCode === null) {
      stack.kill('SIGTERM');
      await new Promise((resolve) => stack.once('exit', resolve));
    }
    rmSync(dir, { recursive: true, force: true });
  });

  const of = (memberId: string) => actions().filter((a) => a.memberId === memberId);
  const activeIds = async (clusterId?: string) =>
    (await status()).clusters
      .filter((c) => clusterId === undefined || c.id === clusterId)
      .flatMap((c) => c.members.filter((m) => m.state === 'Active').map((m) => m.memberId));

  it('kill-agent: the same member stays, its agent restarted (AgentRestarted), no terminate, its stats resume', async () => {
    const members = (await activeIds()).sort();
    const spawnsBefore = spawns().length;
    // One of `web` (the cluster with the witness on), not a random one of the stack.
    const [web] = await activeIds('web');
    const line = await cli('chaos', 'kill-agent', web as string);
    const memberId = /agent of (\S+)/.exec(line)?.[1] as string;
    expect(memberId).toBe(web);

    const restarted = await waitFor(
      () => of(memberId).find((a) => a.action === 'AgentRestarted'),
      'AgentRestarted',
      40_000,
    );
    expect(restarted.reason).toMatch(
      /^(MemberFault \(timeout, silent \d+ ms\)|absent: no member summary listed it for \d+ ms); second witness: its workload answers the cloud controller's probe, only its agent was silent: its workload started one: a new agent \(pid \d+\) runs in its process group; the instance is kept$/,
    );
    // Its new agent reports: past two more fault timeouts (and the absence rule's bound) it is still kept, Active.
    await sleep(3 * FAULT_TIMEOUT_MS);
    expect(of(memberId).map((a) => a.action)).toEqual(['MemberSpawnAction', 'AgentRestarted']);
    expect(actions().some((a) => a.action === 'MemberTerminateAction')).toBe(false);
    expect(spawns()).toHaveLength(spawnsBefore);
    expect((await activeIds()).sort()).toEqual(members);

    // The registry's instance names the new agent: the chaos command finds it running, and kills it too.
    const again = await cli('chaos', 'kill-agent', memberId);
    expect(again).toMatch(new RegExp(`^killed the agent of ${memberId} \\(pid \\d+\\); its instance still runs$`));
    expect(/pid (\d+)/.exec(again)?.[1]).not.toBe(/pid (\d+)/.exec(line)?.[1]);
    await waitFor(
      () => (of(memberId).filter((a) => a.action === 'AgentRestarted').length === 2 ? true : undefined),
      'a second AgentRestarted',
      40_000,
    );
    await sleep(2 * FAULT_TIMEOUT_MS);
    expect(actions().some((a) => a.action === 'MemberTerminateAction')).toBe(false);
    expect((await activeIds()).sort()).toEqual(members);
  }, 150_000);

  /** What a member's agent and workload wrote (`.faultline/logs/member-<id>.jsonl`). */
  const memberLog = (memberId: string): { event?: string; message?: string; failuresInRow?: number }[] => {
    const file = path.join(dir, '.faultline/logs', `member-${memberId}.jsonl`);
    if (!existsSync(file)) return [];
    return readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l));
  };
  /** The liveness failures in a row the member's agent last logged (0 when none since it last passed). */
  const livenessFailures = (memberId: string) =>
    memberLog(memberId)
      .filter((r) => r.event === 'agent.probe_check_failed' && r.message?.startsWith('liveness'))
      .map((r) => r.failuresInRow ?? 0);
  /** The member's workload: the leader of its process group, running in its folder. */
  const workloadPid = (memberId: string) => {
    const found = processesOf(dir).filter((p) => p.cwd.includes(memberId) && pgidOf(p.pid) === p.pid);
    if (found.length !== 1) throw new Error(`${found.length} workload processes of ${memberId}`);
    return (found[0] as { pid: number }).pid;
  };
  const probedMember = async () => {
    const [memberId] = await activeIds('probed');
    if (!memberId) throw new Error('no active member in cluster probed');
    return memberId;
  };
  const statusOf = async (memberId: string) =>
    (await cli('stack', 'status', '--json').then(JSON.parse)).clusters
      .flatMap((c: { members: { memberId: string }[] }) => c.members)
      .find((m: { memberId: string }) => m.memberId === memberId) as
      | { state: string; outOfService: { since: string; reason: string | null } | null }
      | undefined;

  it('liveness threshold 3: a workload that misses two checks and answers again is kept', async () => {
    const memberId = await probedMember();
    const pid = workloadPid(memberId);
    const before = livenessFailures(memberId).length;
    process.kill(pid, 'SIGSTOP');
    try {
      // Resumed as soon as its agent counted the second miss in a row: the third check is 2.5 s away.
      await waitFor(
        () => (livenessFailures(memberId).slice(before).includes(2) ? true : undefined),
        'two liveness misses in a row',
        20_000,
      );
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    expect(livenessFailures(memberId).slice(before)).toEqual([1, 2]);
    // Past two more checks and the fault timeout: it answered, nothing was said down, nothing acted.
    await sleep(2 * LIVENESS.periodMs + FAULT_TIMEOUT_MS);
    expect(livenessFailures(memberId).slice(before)).toEqual([1, 2]);
    expect(memberLog(memberId).some((r) => r.event === 'agent.liveness_failed')).toBe(false);
    expect(
      actions()
        .filter((a) => a.memberId === memberId)
        .map((a) => a.action),
    ).toEqual(['MemberSpawnAction']);
    expect(await activeIds('probed')).toEqual([memberId]);
  }, 60_000);

  it('readiness failing: out of service in stack status, kept, and back in service once it passes', async () => {
    const memberId = await probedMember();
    writeFileSync(unready(), '');
    try {
      const out = await waitFor(async () => (await statusOf(memberId))?.outOfService ?? undefined, 'out of service');
      expect(out.reason).toBe('/bin/sh: exit 1');
      expect((await statusOf(memberId))?.state).toBe('Active');
      expect(await cli('stack', 'status')).toMatch(new RegExp(`${memberId} +Active {2}\\(out of service since `));
      await sleep(2 * FAULT_TIMEOUT_MS);
      expect(
        actions()
          .filter((a) => a.memberId === memberId)
          .map((a) => a.action),
      ).toEqual(['MemberSpawnAction']);
    } finally {
      rmSync(unready(), { force: true });
    }
    await waitFor(async () => ((await statusOf(memberId))?.outOfService === null ? true : undefined), 'in service');
  }, 60_000);

  it('liveness: a workload that stops answering is faulted (ports_not_open), terminated and replaced', async () => {
    const memberId = await probedMember();
    const pid = workloadPid(memberId);
    const spawnsBefore = spawns().length;
    process.kill(pid, 'SIGSTOP');
    try {
      const terminated = await waitFor(
        () => actions().find((a) => a.memberId === memberId && a.action === 'MemberTerminateAction'),
        'the member terminated',
        40_000,
      );
      expect(terminated.reason).toMatch(/ports_not_open/);
      expect(memberLog(memberId).some((r) => r.event === 'agent.liveness_failed')).toBe(true);
    } finally {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // terminated meanwhile
      }
    }
    await waitFor(async () => {
      const ids = await activeIds('probed');
      return ids.length === 1 && ids[0] !== memberId ? true : undefined;
    }, 'its replacement active');
    expect(spawns().length).toBe(spawnsBefore + 1);
  }, 90_000);

  it('a member killed in maintenance is not replaced until maintenance is off, then replaced once', async () => {
    const said = await cli('maintenance', 'on', 'maint', '--reason', 'e2e: kernel upgrade');
    expect(said).toMatch(/^cluster maint in maintenance since /);
    // The acting autoscaler has read the row at a tick.
    const on = await waitFor(
      () => actions().find((a) => a.action === 'MaintenanceOn' && a.clusterId === 'maint'),
      'MaintenanceOn',
      10_000,
    );
    expect(on.reason).toMatch(/kernel upgrade; .*the minimum rule and the scaling rule pause$/);

    const [memberId] = await activeIds('maint');
    if (!memberId) throw new Error('no active member in cluster maint');
    expect(await cli('chaos', 'kill-member', memberId)).toContain(memberId);
    const killedAt = new Date().toISOString();
    const member = async () => (await maintStatus())?.members.find((m) => m.memberId === memberId);
    await waitFor(async () => ((await member())?.held === 'maintenance' ? true : undefined), 'its fault held');
    // Well past the fault timeout and the absence window: the SP has declared it faulted long ago.
    await sleep(5 * FAULT_TIMEOUT_MS);
    expect(spawns().filter((a) => a.timestamp >= killedAt && a.clusterId === 'maint')).toEqual([]);
    /** Decisions on the killed member since the kill (its own spawn came long before). */
    const onIt = () => actions().filter((a) => a.memberId === memberId && a.timestamp >= killedAt);
    expect(onIt()).toEqual([]);
    const held = await maintStatus();
    expect(held?.maintenance).toMatchObject({ reason: 'e2e: kernel upgrade' });
    expect(held?.members).toHaveLength(1);
    expect(await member()).toMatchObject({ state: 'Active', held: 'maintenance' });
    const table = await cli('stack', 'status');
    expect(table).toMatch(/MAINTENANCE by \S+ since \d\d:\d\d:\d\d: e2e: kernel upgrade/);
    expect(table).toContain(`${memberId.padEnd(24)} Active  (fault held: maintenance)`);
    // The SP declared the fault meanwhile (and re-announces it): logged, held, not acted on.
    const declared = [...records('sp-1'), ...records('sp-2')];
    expect(declared.some((r) => r.event === 'cep.member_fault' && r.memberId === memberId)).toBe(true);
    expect(records('autoscaler').some((r) => r.event === 'autoscaler.fault_held' && r.memberId === memberId)).toBe(
      true,
    );
    expect(await cli('maintenance', 'status')).toMatch(/\nmaint +\(whole cluster\) .* e2e: kernel upgrade$/);

    const offAt = new Date().toISOString();
    expect(await cli('maintenance', 'off', 'maint')).toMatch(/^cluster maint out of maintenance/);
    await waitFor(
      () => actions().find((a) => a.action === 'MaintenanceOff' && a.timestamp >= offAt),
      'MaintenanceOff',
      10_000,
    );
    const removed = await waitFor(
      () => actions().find((a) => a.memberId === memberId && a.action === 'MemberRemoved'),
      'the killed member removed',
      10_000,
    );
    expect(removed.reason).toMatch(/held in maintenance and verified: its instance is gone/);
    await waitFor(() => spawns().find((a) => a.timestamp >= offAt), 'its replacement', 10_000);
    await waitFor(async () => ((await activeIds('maint')).length === 1 ? true : undefined), 'its replacement active');
    await sleep(2 * FAULT_TIMEOUT_MS); // a second spawn or a second removal would show by now
    expect(spawns().filter((a) => a.timestamp >= killedAt && a.clusterId === 'maint')).toHaveLength(1);
    expect(onIt().map((a) => a.action)).toEqual(['MemberRemoved']);
    expect((await maintStatus())?.maintenance).toBeNull();
  });
});
