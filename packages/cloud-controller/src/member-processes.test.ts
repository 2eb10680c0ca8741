import { nullLogger, systemClock } from '@faultline/core';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  checkLocalHandle,
  type LocalHandle,
  ownsGroup,
  processState,
  type StopGroupOptions,
  stopGroup,
} from './member-processes.js';
import { FakeProcessTable } from './testing/index.js';

/** A member as the driver records it: workload 100 leads group 100, agent 101 is in it. */
function member(table: FakeProcessTable, workload = { ignoresTerm: false }): LocalHandle {
  const w = table.add({ pid: 100, ignoresTerm: workload.ignoresTerm });
  const a = table.add({ pid: 101, pgid: 100 });
  return {
    bootId: table.bootId(),
    pgid: 100,
    workload: { pid: 100, startTime: w.startTime },
    agent: { pid: 101, startTime: a.startTime },
  };
}

describe('process state', () => {
  it('is running, stopped (SIGSTOP: still an instance) or gone (exited, zombie)', () => {
    const table = new FakeProcessTable();
    const handle = member(table);
    expect(processState(table, handle, handle.workload)).toBe('running');
    table.kill(100, 'SIGSTOP');
    expect(processState(table, handle, handle.workload)).toBe('stopped');
    table.exit(100, { zombie: true });
    expect(processState(table, handle, handle.workload)).toBe('gone');
    table.exit(100);
    expect(processState(table, handle, handle.workload)).toBe('gone');
    expect(processState(table, handle, null)).toBe('gone');
  });

  it('owns its group only through a recorded process still in it: one that left it (setsid) vouches for nothing', () => {
    const table = new FakeProcessTable();
    const handle = member(table);
    expect(ownsGroup(table, handle)).toBe(true);
    table.exit(100);
    // The recorded agent is alive with its start time, but now leads a session of its own.
    const agent = table.stat(101);
    table.exit(101);
    table.add({ pid: 101, pgid: 101, startTime: agent?.startTime });
    expect(ownsGroup(table, handle)).toBe(false);
  });

  it('does not take a reused pid for the member: the start time differs', () => {
    const table = new FakeProcessTable();
    const handle = member(table);
    table.exit(100);
    table.add({ pid: 100, startTime: 999_999 }); // another program got pid 100
    expect(table.stat(100)).toBeDefined();
    expect(processState(table, handle, handle.workload)).toBe('gone');
  });

  it('counts nothing as running after a reboot, even an equal pid and start time', () => {
    const table = new FakeProcessTable();
    const handle = member(table);
    table.reboot();
    table.add({ pid: 100, startTime: handle.workload.startTime });
    expect(processState(table, handle, handle.workload)).toBe('gone');
  });

  it('owns the group while the workload or the agent lives', () => {
    const table = new FakeProcessTable();
    const handle = member(table);
    table.exit(100);
    expect(ownsGroup(table, handle)).toBe(true); // the agent lingers
    table.exit(101);
    expect(ownsGroup(table, handle)).toBe(false);
  });
});

describe('stored handles', () => {
  it('accepts a handle as recorded and names what is wrong in others', () => {
    const table = new FakeProcessTable();
    expect(checkLocalHandle(member(table))).toEqual([]);
    expect(checkLocalHandle({ ...member(table), agent: null })).toEqual([]);
    expect(checkLocalHandle('x')).toEqual(['handle: must be an object']);
    const issues = checkLocalHandle({ bootId: '', pgid: 1, workload: { pid: 7, startTime: -1 }, agent: {} });
    expect(issues.join('\n')).toMatch(/handle\.bootId/);
    expect(issues.join('\n')).toMatch(/handle\.pgid/);
    expect(issues.join('\n')).toMatch(/handle\.workload\.startTime/);
    expect(issues.join('\n')).toMatch(/handle\.agent\.pid/);
    expect(checkLocalHandle({ ...member(table), pgid: 555 })).toEqual([
      'handle.pgid: must be the workload pid (the group leader)',
    ]);
  });
});

describe('stopGroup', () => {
  beforeEach(() => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance', 'Date'] }));
  afterEach(() => vi.useRealTimers());

  const options = (table: FakeProcessTable): StopGroupOptions => ({
    table,
    clock: systemClock,
    log: nullLogger,
    graceMs: 5_000,
    pollMs: 50,
    killWaitMs: 1_000,
  });

  it('sends SIGTERM then SIGCONT to the whole group; a group that stops is terminated', async () => {
    const table = new FakeProcessTable();
    const handle = member(table);
    await expect(stopGroup(handle, options(table))).resolves.toBe('terminated');
    expect(table.signals).toEqual([
      { target: -100, signal: 'SIGTERM' },
      { target: -100, signal: 'SIGCONT' },
    ]);
    expect(table.groupMembers(100)).toEqual([]);
  });

  it('stops a SIGSTOPped group without waiting for the grace period (SIGCONT delivers the pending SIGTERM)', async () => {
    const table = new FakeProcessTable();
    const handle = member(table);
    table.kill(-100, 'SIGSTOP');
    await expect(stopGroup(handle, options(table))).resolves.toBe('terminated');
    expect(table.signals.map((s) => s.signal)).not.toContain('SIGKILL');
  });

  it('sends SIGKILL to the group once the grace period is over, not before', async () => {
    const table = new FakeProcessTable();
    const handle = member(table, { ignoresTerm: true });
    const outcome = stopGroup(handle, options(table));
    await vi.advanceTimersByTimeAsync(4_900);
    expect(table.signals.map((s) => s.signal)).toEqual(['SIGTERM', 'SIGCONT']);
    expect(table.groupMembers(100)).toEqual([100]); // the agent obeyed SIGTERM, the workload did not
    await vi.advanceTimersByTimeAsync(200);
    await expect(outcome).resolves.toBe('killed');
    expect(table.signals.at(-1)).toEqual({ target: -100, signal: 'SIGKILL' });
    expect(table.groupMembers(100)).toEqual([]);
  });

  it('kills an agent left behind by a workload that died by itself', async () => {
    const table = new FakeProcessTable();
    const handle = member(table);
    table.exit(100);
    await expect(stopGroup(handle, options(table))).resolves.toBe('terminated');
    expect(table.has(101)).toBe(false);
  });

  it('never signals a group none of whose recorded processes is alive (its id may be someone else’s)', async () => {
    const table = new FakeProcessTable();
    const handle = member(table);
    table.exit(100);
    table.exit(101);
    table.add({ pid: 100, startTime: 1 }); // a stranger now leads a group 100
    await expect(stopGroup(handle, options(table))).resolves.toBe('already-gone');
    expect(table.signals).toEqual([]);
    expect(table.has(100)).toBe(true);
  });

  it('reports stuck when processes survive SIGKILL', async () => {
    const table = new FakeProcessTable();
    const handle = member(table, { ignoresTerm: true });
    table.kill = (target, signal) => {
      table.signals.push({ target, signal });
      return true; // uninterruptible: nothing happens
    };
    const outcome = stopGroup(handle, options(table));
    await vi.advanceTimersByTimeAsync(6_100);
    await expect(outcome).resolves.toBe('stuck');
  });
});
