import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from '@faultline/core';
import { freePort } from '@faultline/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const CLI = path.join(REPO_ROOT, 'packages/cli/dist/main.js');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

type Record_ = {
  event: string;
  message: string;
  action?: string;
  memberId?: string;
  clusterId?: string;
  reason?: string;
  timestamp: string;
};

/*
 * The stack as a user runs it (`faultline stack up`, what `npm run stack`
 * starts), in its own folder and ports, broken with the chaos commands, and
 * judged by what the autoscaler writes to its log. Short but proportionate
 * timings through the config file.
 */
// The same scenarios against two Mosquitto brokers (brokers.kind: mosquitto) when it is installed.
const KINDS = spawnSync('mosquitto', ['-h']).error === undefined ? ['aedes', 'mosquitto'] : ['aedes'];

describe.each(KINDS)('the full stack, end to end (%s brokers)', (kind) => {
  let dir: string;
  let stack: ChildProcess;
  let console_ = '';

  const cli = async (...args: string[]) => (await run(process.execPath, [CLI, ...args], { cwd: dir })).stdout.trim();
  const records = (service: string): Record_[] => {
    const file = path.join(dir, '.faultline/logs', `${service}.jsonl`);
    if (!existsSync(file)) return [];
    return readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record_);
  };
  const actions = () => records('autoscaler').filter((r) => r.action);
  const waitFor = async <T>(
    probe: () => T | undefined | Promise<T | undefined>,
    what: string,
    timeoutMs = 40_000,
  ): Promise<T> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await probe();
      if (value) return value;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(200);
    }
  };
  const status = async () =>
    JSON.parse(await cli('stack', 'status', '--json')) as {
      sp: { node: string; role: string; epoch: number | null }[];
      clusters: { id: string; members: { memberId: string; state: string }[] }[];
    };
  const activeMembers = async () =>
    (await status()).clusters.flatMap((c) => c.members).filter((m) => m.state === 'Active');

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'faultline-e2e-'));
    // As root, initdb runs as the `postgres` user, which must be able to reach the data folder.
    chmodSync(dir, 0o755);
    const ports = await Promise.all(Array.from({ length: 9 }, () => freePort()));
    const p = (i: number) => ports[i] as number;
    writeFileSync(
      path.join(dir, 'faultline.yaml'),
      JSON.stringify({
        database: { embeddedPort: p(0) },
        brokers: {
          kind,
          nodes: [
            { name: 'a', port: p(1) },
            { name: 'b', port: p(2) },
          ],
        },
        messaging: { pingIntervalMs: 500, resubscribeIntervalMs: 2_000, republishIntervalMs: 3_000 },
        streamProcessor: {
          nodes: [
            { id: 'sp-1', thriftPort: p(3), syncPort: p(4), statusPort: p(5) },
            { id: 'sp-2', thriftPort: p(6), syncPort: p(7), statusPort: p(8) },
          ],
        },
        cep: { faultTimeoutMs: 4_000, windowMs: 20_000, summaryIntervalMs: 2_000 },
        agent: { statIntervalMs: 500 },
        autoscaler: { monitorIntervalMs: 1_000, pendingTimeoutMs: 30_000, backoffInitialMs: 1_000 },
        // min = max: the scaling rule cannot add or remove members behind the scenarios' back.
        clusters: [{ id: 'web', cartridgeType: 'php', min: 3, max: 3 }],
      }),
    );
    stack = spawn(process.execPath, [CLI, 'stack', 'up', '--config', path.join(dir, 'faultline.yaml')], { cwd: dir });
    stack.stdout?.on('data', (c: Buffer) => {
      console_ += c.toString();
    });
    stack.stderr?.on('data', (c: Buffer) => {
      console_ += c.toString();
    });
    await waitFor(
      () => {
        if (stack.exitCode !== null) throw new Error(`the stack exited (${stack.exitCode})`);
        return console_.includes('The stack is up') || undefined;
      },
      'the stack to come up',
      110_000,
    ).catch((error) => {
      throw new Error(`${(error as Error).message}; its console ended with:\n${console_.slice(-3_000)}`);
    });
    await waitFor(async () => ((await activeMembers()).length === 3 ? true : undefined), '3 active members');
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
    actions().find((a) => a.action === 'MemberSpawnAction' && a.timestamp > after && a.clusterId === 'web');

  it('kill-member: MemberFault, removed, a replacement spawned', async () => {
    const line = await cli('chaos', 'kill-member');
    const memberId = /member (\S+)/.exec(line)?.[1] as string;
    const removed = await waitFor(() => handled(memberId).find((a) => a.action === 'MemberRemoved'), 'MemberRemoved');
    expect(handled(memberId).map((a) => a.action)).toEqual(['MemberRemoved']); // dead: nothing to terminate
    await waitFor(() => respawnAfter(removed.timestamp), 'a replacement');
    await waitFor(async () => ((await activeMembers()).length === 3 ? true : undefined), '3 active members again');
  });

  it('kill-agent: the still-running instance is terminated, then respawned', async () => {
    const line = await cli('chaos', 'kill-agent');
    const memberId = /agent of (\S+)/.exec(line)?.[1] as string;
    await waitFor(() => handled(memberId).find((a) => a.action === 'MemberRemoved'), 'MemberRemoved');
    expect(handled(memberId).map((a) => a.action)).toEqual(['MemberTerminateAction', 'MemberRemoved']);
    await waitFor(async () => ((await activeMembers()).length === 3 ? true : undefined), '3 active members again');
  });

  it('hang-member: fault, the stopped group terminated, respawned', async () => {
    const line = await cli('chaos', 'hang-member');
    const memberId = /member (\S+)/.exec(line)?.[1] as string;
    await waitFor(() => handled(memberId).find((a) => a.action === 'MemberRemoved'), 'MemberRemoved');
    expect(handled(memberId).map((a) => a.action)).toEqual(['MemberTerminateAction', 'MemberRemoved']);
    await waitFor(async () => ((await activeMembers()).length === 3 ? true : undefined), '3 active members again');
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
      await waitFor(async () => ((await activeMembers()).length === 3 ? true : undefined), '3 active members again');
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

  it('stack down: no process of the stack and no member left', async () => {
    const pids = (await status()).clusters.flatMap((c) => c.members).length;
    expect(pids).toBe(3);
    await cli('stack', 'down');
    await new Promise((resolve) => stack.once('exit', resolve));
    // Every process of the stack (services, members, agents) runs in the stack's folder.
    const real = realpathSync(dir);
    const leftovers = readdirSync('/proc')
      .filter((pid) => /^\d+$/.test(pid) && Number(pid) !== process.pid)
      .filter((pid) => {
        try {
          return readlinkSync(`/proc/${pid}/cwd`) === real;
        } catch {
          return false;
        }
      });
    expect(leftovers).toEqual([]);
    expect(records('supervisor').map((r) => r.event)).toContain('stack.members_terminated');
    expect(existsSync(path.join(dir, '.faultline/run/control.json'))).toBe(false);
  });
});
