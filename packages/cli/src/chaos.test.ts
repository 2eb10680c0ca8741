import { type ChildProcess, spawn } from 'node:child_process';
import { linuxProcessTable } from '@faultline/cloud-controller';
import { systemClock } from '@faultline/core';
import type pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { type ChaosContext, parseChaosRequest, runChaos } from './chaos.js';
import type { Supervisor } from './supervisor.js';

describe('parseChaosRequest', () => {
  it('takes pause-sp --seconds from 1 to 60, 5 without it', () => {
    expect(parseChaosRequest({ action: 'pause-sp', target: 'active' }).seconds).toBe(5);
    expect(parseChaosRequest({ action: 'pause-sp', target: 'active', seconds: '1' }).seconds).toBe(1);
    expect(parseChaosRequest({ action: 'pause-sp', target: 'active', seconds: '60' }).seconds).toBe(60);
    expect(parseChaosRequest({ action: 'pause-sp', target: 'active', seconds: 60 }).seconds).toBe(60);
  });

  it.each(['0', '-1', '61', '1e9', '2.5', 'abc', 'Infinity', '', ' ', '0x10'])(
    'refuses --seconds %j with a usage error',
    (seconds) => {
      expect(() => parseChaosRequest({ action: 'pause-sp', target: 'active', seconds })).toThrow(
        expect.objectContaining({ code: 'FL_ERR_USAGE', message: expect.stringContaining('--seconds') }),
      );
    },
  );

  it.each([
    ['an array', [5]],
    ['a boolean', true],
    ['an object', { toString: 'x' }],
  ])('refuses --seconds as %s', (_, seconds) => {
    expect(() => parseChaosRequest({ action: 'pause-sp', target: 'active', seconds })).toThrow(
      expect.objectContaining({ code: 'FL_ERR_USAGE' }),
    );
  });

  it.each(['\u001b]0;pwned\u0007', 'php-1\u001b[2J', '../x', 'a/b', 'x'.repeat(129), '-rf'])(
    'refuses a target that is not an id: %j',
    (target) => {
      expect(() => parseChaosRequest({ action: 'kill-member', target })).toThrow(
        expect.objectContaining({ code: 'FL_ERR_USAGE' }),
      );
    },
  );

  it('refuses an action that is not one of its own, and a target that is not a string', () => {
    for (const action of ['constructor', '__proto__', 'toString', 'nope']) {
      expect(() => parseChaosRequest({ action })).toThrow(expect.objectContaining({ code: 'FL_ERR_USAGE' }));
    }
    expect(() => parseChaosRequest({ action: 'kill-member', target: ['php-1'] })).toThrow(
      expect.objectContaining({ code: 'FL_ERR_USAGE' }),
    );
    expect(parseChaosRequest({ action: 'kill-member', target: 'php-1' }).target).toBe('php-1');
    expect(parseChaosRequest({ action: 'kill-member' }).target).toBeUndefined();
  });
});

describe('chaos kill-agent', () => {
  const children: ChildProcess[] = [];
  afterEach(() => {
    for (const child of children.splice(0)) child.kill('SIGKILL');
  });

  /** A real process that only waits: a stand-in for a workload or an agent. */
  const idle = (): ChildProcess => {
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { detached: true, stdio: 'ignore' });
    children.push(child);
    return child;
  };
  const exited = (child: ChildProcess, ms: number) =>
    new Promise<boolean>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve(true);
      const timer = setTimeout(() => resolve(false), ms);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  const startTimeOf = (pid: number) => {
    const stat = linuxProcessTable.stat(pid);
    if (!stat) throw new Error(`no process ${pid}`);
    return stat.startTime;
  };

  /** The registry as the CLI reads it: one member whose handle records `agentStartTime` for the agent. */
  const contextWith = (workload: ChildProcess, agent: ChildProcess, agentStartTime: number): ChaosContext => {
    const workloadPid = workload.pid as number;
    const instance = {
      driver: 'local',
      handle: {
        bootId: linuxProcessTable.bootId(),
        pgid: workloadPid,
        workload: { pid: workloadPid, startTime: startTimeOf(workloadPid) },
        agent: { pid: agent.pid as number, startTime: agentStartTime },
      },
    };
    const row = {
      member_id: 'php-1',
      cluster_id: 'php',
      cluster_instance_id: 'php-1',
      network_partition_id: 'np-1',
      partition_id: 'p-1',
      cartridge_type: 'php',
      state: 'Active',
      instance,
      reason: null,
      created_at: 0,
      activated_at: 0,
      terminated_at: null,
    };
    const pool = { query: async () => ({ rows: [row] }) } as unknown as pg.Pool;
    return { pool, supervisor: {} as Supervisor, spNodes: [], clock: systemClock };
  };

  it('kills the recorded agent when its pid and start time still name it', async () => {
    const workload = idle();
    const agent = idle();
    const context = contextWith(workload, agent, startTimeOf(agent.pid as number));
    await expect(runChaos(parseChaosRequest({ action: 'kill-agent', target: 'php-1' }), context)).resolves.toContain(
      'killed the agent of php-1',
    );
    expect(await exited(agent, 5_000)).toBe(true);
    expect(await exited(workload, 100)).toBe(false);
  });

  it('never signals a pid that now belongs to another process (another start time)', async () => {
    const workload = idle();
    const other = idle();
    // The recorded agent exited and its pid went to `other`: same pid, another start time.
    const context = contextWith(workload, other, startTimeOf(other.pid as number) + 1);
    await expect(runChaos(parseChaosRequest({ action: 'kill-agent', target: 'php-1' }), context)).rejects.toMatchObject(
      { code: 'FL_ERR_CHAOS_NO_TARGET', message: 'member php-1 has no running agent' },
    );
    expect(await exited(other, 300)).toBe(false);
  });
});
