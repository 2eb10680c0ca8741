import type { ChildProcess } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { postmasterOf } from '@faultline/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { processesOf, sleep, stackConfig, stackDir, stackPorts, stackProbe, startStack } from './harness.js';

/*
 * The stack supervisor under strain (README "The stack: run it, break it,
 * watch it"): the embedded PostgreSQL killed with -9 comes back on its own
 * data; the supervisor killed with -9 leaves nothing a new `stack up` would
 * double; Ctrl-C to the whole process group of the stack script leaves no
 * process. One folder, two stacks in turn: the second adopts what the first
 * left.
 */

/** Process group of a pid (field 5 of /proc/<pid>/stat). */
function groupOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
}

function alive(pid: number): boolean {
  try {
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');
  } catch {
    return false;
  }
}

describe('the stack supervisor, end to end (aedes brokers)', () => {
  let dir: string;
  let stack: ChildProcess | undefined;
  const probe = stackProbe(() => dir);
  const { records, actions, spawns, waitFor, status, activeMembers, threeActive } = probe;
  const pgDataDir = () => path.join(dir, '.faultline/pg');
  /** The stack's platform services (members run below .faultline/members, PostgreSQL in its data folder). */
  const services = () =>
    processesOf(dir).filter((p) => !p.cwd.includes('/.faultline/members/') && !p.cwd.startsWith(pgDataDir()));
  const autoscalers = (id: string) => processesOf(dir).filter((p) => p.cmdline.includes(`dist/main.js --node ${id}`));
  const workloads = () => processesOf(dir).filter((p) => p.cmdline.includes('workload-main.js'));

  beforeAll(async () => {
    dir = stackDir('faultline-e2e-supervisor-');
    ({ child: stack } = await startStack(dir, stackConfig('aedes', await stackPorts()), probe));
    await threeActive();
  });

  afterAll(async () => {
    // Whatever a failed scenario left: this folder's processes, PostgreSQL included.
    for (const p of processesOf(dir)) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('kill -9 of the embedded PostgreSQL: it comes back, one SP node is ACTIVE, a member killed meanwhile is replaced once', async () => {
    const before = await activeMembers();
    const victim = before[0]?.memberId as string;
    const postmaster = postmasterOf(pgDataDir()) as number;
    expect(postmaster).toBeDefined();
    const victimGroup = groupOf(
      processesOf(dir).find((p) => p.cwd.endsWith(`/member-${victim}`) && p.cmdline.includes('workload-main.js'))
        ?.pid as number,
    );
    const killedAt = Date.now();
    process.kill(postmaster, 'SIGKILL');
    // While the database is down: the fault must wait for it, and then be handled once.
    process.kill(-victimGroup, 'SIGKILL');
    const back = await waitFor(async () => {
      const next = postmasterOf(pgDataDir());
      const sp = (await status()).sp;
      return next !== undefined && next !== postmaster && sp.filter((s) => s.role === 'ACTIVE').length === 1
        ? Date.now()
        : undefined;
    }, 'PostgreSQL back and one SP node ACTIVE');
    process.stdout.write(`PostgreSQL killed → an ACTIVE SP node: ${back - killedAt} ms\n`);
    // The other node follows it as passive: the pair is whole again.
    await waitFor(
      async () =>
        (await status()).sp
          .map((s) => s.role)
          .sort()
          .join() === 'ACTIVE,PASSIVE'
          ? true
          : undefined,
      'the other SP node PASSIVE',
    );
    await waitFor(
      () => actions().find((a) => a.memberId === victim && a.action === 'MemberRemoved'),
      'the killed member removed',
      60_000,
    );
    await threeActive();
    await sleep(6_000); // longer than the fault timeout and a few monitor ticks: a second replacement would show now
    // Replaced once: one spawn since the kill, whichever autoscaler node acted (the lease may move in the outage).
    const since = new Date(killedAt).toISOString();
    // A failure shows what the autoscaler pair did meanwhile and what the registry holds.
    const story = async () =>
      JSON.stringify(
        {
          autoscaler: records('autoscaler')
            .filter((r) => r.timestamp >= since)
            .map((r) => [r.timestamp, r.node, r.event, r.action, r.memberId, r.reason ?? r.message]),
          members: (await status()).clusters.flatMap((c) => c.members.map((m) => [m.memberId, m.state])),
        },
        null,
        1,
      );
    // A spawn decided while the database was down is never started (its registry write failed; it is removed as
    // "spawn not started"): a decision, not a replacement.
    const notStarted = new Set(
      actions()
        .filter((a) => a.action === 'MemberRemoved' && String(a.reason ?? '').startsWith('spawn not started'))
        .map((a) => a.memberId),
    );
    expect(
      spawns().filter((a) => a.timestamp >= since && !notStarted.has(a.memberId)),
      await story(),
    ).toHaveLength(1);
    expect((await activeMembers()).map((m) => m.memberId)).not.toContain(victim);
    expect((await status()).services.find((s) => s.name === 'postgres')).toMatchObject({ state: 'up', restarts: 1 });
  });

  it('kill -9 of the supervisor, then stack up: one autoscaler pair, no orphan, the members adopted', async () => {
    const members = (await activeMembers()).map((m) => m.memberId).sort();
    expect(members).toHaveLength(3);
    const old = services().map((p) => p.pid);
    const oldSupervisor = stack?.pid as number;
    // One service hung when its supervisor dies: it cannot see its stdin end, the next supervisor must stop it.
    const hung = autoscalers('autoscaler-a')[0]?.pid as number;
    process.kill(hung, 'SIGSTOP');
    stack?.kill('SIGKILL');
    await new Promise((resolve) => stack?.once('exit', resolve));
    // At once, while its services may still be closing: the new stack must not run beside them.
    ({ child: stack } = await startStack(dir, stackConfig('aedes', await stackPorts()), probe, {
      detached: true,
      script: true,
    }));
    expect(records('supervisor').map((r) => r.event)).toContain('stack.stale_lock');
    expect(records('supervisor').find((r) => r.event === 'stack.leftovers_stopped')).toMatchObject({
      services: expect.arrayContaining(['autoscaler-a']),
    });
    for (const id of ['autoscaler-a', 'autoscaler-b']) expect(autoscalers(id), id).toHaveLength(1);
    expect(old.filter(alive)).toEqual([]);
    expect(alive(oldSupervisor)).toBe(false);
    const postmasters = processesOf(dir).filter((p) => /\/postgres -D /.test(p.cmdline));
    expect(postmasters).toHaveLength(1);
    // Its PostgreSQL, recorded, was stopped with care by the careful path alone: a fast shutdown, no SIGKILL.
    const events = records('supervisor').map((r) => r.event);
    expect(events).toContain('stack.leftover_postgres_stopping');
    expect(events).not.toContain('stack.leftover_postgres_killed');
    expect(
      records('supervisor').filter(
        (r) => r.event === 'stack.leftover_stopping' && (r as { service?: string }).service === 'postgres',
      ),
    ).toEqual([]);
    await threeActive();
    await sleep(3_000); // a monitor tick or two: a doubled member would show now
    expect((await activeMembers()).map((m) => m.memberId).sort()).toEqual(members);
    expect(workloads()).toHaveLength(3);
    // Adopted: nothing of the old members was spawned again.
    const last =
      records('supervisor')
        .filter((r) => r.event === 'stack.stale_lock')
        .at(-1)?.timestamp ?? '';
    expect(spawns().filter((a) => a.timestamp >= last)).toEqual([]);
  });

  it('Ctrl-C to the whole process group of the stack script leaves no process: no service, no member, no PostgreSQL', async () => {
    expect(workloads()).toHaveLength(3);
    const group = stack?.pid as number;
    process.kill(-group, 'SIGINT');
    await new Promise((resolve) => stack?.once('exit', resolve));
    expect(processesOf(dir)).toEqual([]);
    expect(postmasterOf(pgDataDir())).toBeUndefined();
    expect(records('supervisor').map((r) => r.event)).toContain('stack.members_terminated');
  });
});
