import type { ChildProcess } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BROKER_KINDS,
  processesOf,
  sleep,
  stackConfig,
  stackDir,
  stackPorts,
  stackProbe,
  startStack,
} from './harness.js';

/*
 * The stack as a user runs it (`faultline stack up`, what `npm run stack`
 * starts), in its own folder and ports, broken with the chaos commands, and
 * judged by what the autoscaler writes to its log. Short but proportionate
 * timings through the config file.
 */

// The same scenarios against two Mosquitto brokers (brokers.kind: mosquitto) when it is installed.
describe.each(BROKER_KINDS)('the full stack, end to end (%s brokers)', (kind) => {
  let dir: string;
  let stack: ChildProcess;
  let config: { autoscaler: { nodes: { id: string; healthPort: number }[] } };
  const probe = stackProbe(() => dir);
  const { cli, records, actions, spawns, waitFor, status, threeActive } = probe;

  beforeAll(async () => {
    dir = stackDir('faultline-e2e-');
    config = stackConfig(kind, await stackPorts()) as typeof config;
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

  /** The fault-handling records for a member, in log order. */
  const handled = (memberId: string) =>
    actions().filter(
      (a) => a.memberId === memberId && ['MemberTerminateAction', 'MemberRemoved'].includes(a.action ?? ''),
    );
  const respawnAfter = (after: string) =>
    // At or after: the rules may respawn in the same millisecond as the removal.
    spawns().find((a) => a.timestamp >= after && a.clusterId === 'web');

  it('kill-member: MemberFault, removed, a replacement spawned', async () => {
    const line = await cli('chaos', 'kill-member');
    const memberId = /member (\S+)/.exec(line)?.[1] as string;
    const removed = await waitFor(() => handled(memberId).find((a) => a.action === 'MemberRemoved'), 'MemberRemoved');
    expect(handled(memberId).map((a) => a.action)).toEqual(['MemberRemoved']); // dead: nothing to terminate
    await waitFor(() => respawnAfter(removed.timestamp), 'a replacement');
    await threeActive();
  });

  it('kill-agent: the still-running instance is terminated, then respawned', async () => {
    const line = await cli('chaos', 'kill-agent');
    const memberId = /agent of (\S+)/.exec(line)?.[1] as string;
    await waitFor(() => handled(memberId).find((a) => a.action === 'MemberRemoved'), 'MemberRemoved');
    expect(handled(memberId).map((a) => a.action)).toEqual(['MemberTerminateAction', 'MemberRemoved']);
    await threeActive();
  });

  it('hang-member: fault, the stopped group terminated, respawned', async () => {
    const line = await cli('chaos', 'hang-member');
    const memberId = /member (\S+)/.exec(line)?.[1] as string;
    await waitFor(() => handled(memberId).find((a) => a.action === 'MemberRemoved'), 'MemberRemoved');
    expect(handled(memberId).map((a) => a.action)).toEqual(['MemberTerminateAction', 'MemberRemoved']);
    await threeActive();
  });

  it('kill-broker a, then b after a returns: a fault in each outage handled once', async () => {
    for (const broker of ['a', 'b']) {
      await cli('chaos', 'kill-broker', broker);
      const line = await cli('chaos', 'kill-member');
      const memberId = /member (\S+)/.exec(line)?.[1] as string;
      await waitFor(
        () => handled(memberId).find((a) => a.action === 'MemberRemoved'),
        `MemberRemoved during broker ${broker}'s outage`,
      );
      await threeActive();
      expect(handled(memberId)).toHaveLength(1);
      await sleep(3_000); // the supervisor brings the broker back before the next round
    }
  });

  it('kill-sp active: the passive takes over, no false MemberFault, the old node rejoins as passive', async () => {
    const before = (await status()).sp;
    const active = before.find((s) => s.role === 'ACTIVE');
    const faultsBefore = records('autoscaler').filter((r) => r.action === 'MemberRemoved').length;
    await cli('chaos', 'kill-sp', 'active');
    const after = await waitFor(async () => {
      const sp = (await status()).sp;
      const next = sp.find((s) => s.role === 'ACTIVE');
      const old = sp.find((s) => s.node === active?.node);
      return next && next.node !== active?.node && old?.role === 'PASSIVE' ? sp : undefined;
    }, 'the passive active and the old node back as passive');
    expect(after.find((s) => s.role === 'ACTIVE')?.epoch).toBeGreaterThan(active?.epoch ?? 0);
    await sleep(6_000); // longer than the fault timeout: a false fault would show now
    expect(records('autoscaler').filter((r) => r.action === 'MemberRemoved')).toHaveLength(faultsBefore);
  });

  it('kill -9 of the acting autoscaler during a member fault: the other acts within the lease + 1 s, the member replaced once', async () => {
    /** Each autoscaler node's role from its health endpoint; undefined when it does not answer. */
    const roles = async () =>
      Promise.all(
        config.autoscaler.nodes.map(async (n) => {
          const answer = await fetch(`http://127.0.0.1:${n.healthPort}/health`, { signal: AbortSignal.timeout(500) })
            .then((r) => r.json() as Promise<{ role: string }>)
            .catch(() => undefined);
          return { id: n.id, role: answer?.role };
        }),
      );
    const acting = await waitFor(
      async () => (await roles()).find((n) => n.role === 'ACTIVE'),
      'an autoscaler node acting',
    );
    const pid = processesOf(dir).find((p) => p.cmdline.includes(`autoscaler/dist/main.js --node ${acting.id}`))?.pid;
    expect(pid).toBeDefined();
    const line = await cli('chaos', 'kill-member');
    const memberId = /member (\S+)/.exec(line)?.[1] as string;
    const killedAt = Date.now();
    process.kill(pid as number, 'SIGKILL');
    const other = await waitFor(
      async () => (await roles()).find((n) => n.id !== acting.id && n.role === 'ACTIVE'),
      'the other autoscaler node acting',
      10_000,
    );
    const takeoverMs = Date.now() - killedAt;
    // The lease (1 s × 2) runs from the dead node's last renewal, at most one interval before the kill.
    expect(takeoverMs).toBeLessThanOrEqual(2_000 + 1_000);
    const removed = await waitFor(
      () => handled(memberId).find((a) => a.action === 'MemberRemoved'),
      'MemberRemoved by the other node',
    );
    await threeActive();
    await sleep(6_000); // longer than the fault timeout and a few monitor ticks: a second action would show now
    expect(handled(memberId).filter((a) => a.action === 'MemberRemoved')).toHaveLength(1);
    const replacements = spawns().filter((a) => a.clusterId === 'web' && a.timestamp >= removed.timestamp);
    // On a failure, what the pair did since the kill: which node made each spawn and why.
    const since = actions().filter((a) => a.timestamp >= new Date(killedAt).toISOString());
    expect(replacements, JSON.stringify(since, null, 1)).toHaveLength(1);
    // The supervisor brought the killed node back, standing by.
    await waitFor(async () => {
      const now = await roles();
      return now.find((n) => n.id === acting.id)?.role === 'PASSIVE' &&
        now.find((n) => n.id === other.id)?.role === 'ACTIVE'
        ? true
        : undefined;
    }, 'the killed node back as PASSIVE');
    console.info(`autoscaler takeover after kill -9 of the acting node: ${takeoverMs} ms (${kind})`);
  });

  it('stack down: no process of the stack and no member left', async () => {
    const pids = (await status()).clusters.flatMap((c) => c.members).length;
    expect(pids).toBe(3);
    const exited = new Promise((resolve) => stack.once('exit', resolve));
    // `stack down` returns once the stack has stopped: nothing is left the moment it returns.
    const said = await cli('stack', 'down');
    expect(said).toMatch(/stopped in \d+\.\d s/);
    // Every process of the stack runs in the stack's folder: services in it, members and agents in theirs below it.
    const leftovers = processesOf(dir);
    expect(leftovers).toEqual([]);
    await exited;
    expect(records('supervisor').map((r) => r.event)).toContain('stack.members_terminated');
    expect(existsSync(path.join(dir, '.faultline/run/control.json'))).toBe(false);
  });
});
