import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep, stackConfig, stackDir, stackPorts, stackProbe, startStack } from './harness.js';

/*
 * Issue 16, a second witness before a kill, on the real stack (README
 * "Autoscaler → Second witness"): with `clusters[].secondWitness.enabled`, a
 * member whose agent alone is killed (`faultline chaos kill-agent`) is kept,
 * its agent restarted by the cloud controller in the same instance; its stats
 * resume and it stays Active. Judged by `stack status` and by what the
 * autoscaler writes to its log. (Without the witness, stack.test.ts's
 * kill-agent scenario: the instance is terminated and replaced.)
 */

/** The fault timeout of stackConfig (cep.faultTimeoutMs). */
const FAULT_TIMEOUT_MS = 4_000;

describe('second witness on the full stack', () => {
  let dir: string;
  let stack: ChildProcess;
  const probe = stackProbe(() => dir);
  const { cli, actions, spawns, waitFor, status, threeActive } = probe;

  beforeAll(async () => {
    dir = stackDir('faultline-e2e-witness-');
    const config = stackConfig('aedes', await stackPorts(), {
      clusters: [{ id: 'web', cartridgeType: 'php', min: 3, max: 3, secondWitness: { enabled: true } }],
    });
    ({ child: stack } = await startStack(dir, config, probe));
    await threeActive();
  });

  afterAll(async () => {
    if (stack && stack.exitCode === null) {
      stack.kill('SIGTERM');
      await new Promise((resolve) => stack.once('exit', resolve));
    }
    rmSync(dir, { recursive: true, force: true });
  });

  const of = (memberId: string) => actions().filter((a) => a.memberId === memberId);
  const activeIds = async () =>
    (await status()).clusters.flatMap((c) => c.members.filter((m) => m.state === 'Active').map((m) => m.memberId));

  it('kill-agent: the same member stays, its agent restarted (AgentRestarted), no terminate, its stats resume', async () => {
    const members = (await activeIds()).sort();
    const spawnsBefore = spawns().length;
    const line = await cli('chaos', 'kill-agent');
    const memberId = /agent of (\S+)/.exec(line)?.[1] as string;
    expect(members).toContain(memberId);

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
});
