import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FakeProcessTable } from '@faultline/cloud-controller/testing';
import { type Clock, systemClock } from '@faultline/core';
import { afterEach, describe, expect, it } from 'vitest';
import { StackRunningError } from './errors.js';
import { kernelLockName, StackLock } from './stack-lock.js';

const lockFile = () => path.join(mkdtempSync(path.join(os.tmpdir(), 'faultline-lock-')), 'run', 'supervisor.lock');

/** Two supervisors (pids 100 and 200) on one machine. */
function machine() {
  const table = new FakeProcessTable();
  table.add({ pid: 100, startTime: 5_000 });
  table.add({ pid: 200, startTime: 6_000 });
  return table;
}

const holderOf = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;

/** What a supervisor that died leaves: its file, naming it; the kernel has closed its socket. */
function leftBy(file: string, holder: { pid: number; startTime: number; bootId?: string }) {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify({ bootId: 'boot-1', ...holder }), { mode: 0o600 });
}

const held: StackLock[] = [];
const acquire = async (...args: Parameters<typeof StackLock.acquire>) => {
  const lock = await StackLock.acquire(...args);
  held.push(lock);
  return lock;
};

afterEach(() => {
  for (const lock of held.splice(0)) lock.release();
});

describe('StackLock', () => {
  it('is created with O_EXCL naming its holder by pid, start time and boot, mode 0600', async () => {
    const file = lockFile();
    const table = machine();
    const lock = await acquire({ file, table, clock: systemClock, pid: 100 });
    expect(holderOf(file)).toEqual({ pid: 100, startTime: 5_000, bootId: 'boot-1' });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(lock.replaced).toBeUndefined();
    lock.release();
    expect(existsSync(file)).toBe(false);
    // Released: the next one takes it.
    await acquire({ file, table, clock: systemClock, pid: 200 });
  });

  it('refuses a second supervisor while the holder lives, naming its pid', async () => {
    const file = lockFile();
    const table = machine();
    await acquire({ file, table, clock: systemClock, pid: 100 });
    const error = await StackLock.acquire({ file, table, clock: systemClock, pid: 200 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StackRunningError);
    expect(error).toMatchObject({ code: 'FL_ERR_STACK_RUNNING', context: { pid: 100 } });
    expect(holderOf(file).pid).toBe(100);
  });

  it('refuses a second supervisor while the holder lives even when its file was removed or replaced', async () => {
    // The race of the file-only lock: two supervisors that found the same stale file could each remove
    // what the other had just written, and both go on. The kernel's half cannot be removed from under its holder.
    const file = lockFile();
    const table = machine();
    await acquire({ file, table, clock: systemClock, pid: 100 });
    rmSync(file);
    await expect(StackLock.acquire({ file, table, clock: systemClock, pid: 200 })).rejects.toBeInstanceOf(
      StackRunningError,
    );
    leftBy(file, { pid: 300, startTime: 1 }); // a stale holder, written over the live one's
    await expect(StackLock.acquire({ file, table, clock: systemClock, pid: 200 })).rejects.toBeInstanceOf(
      StackRunningError,
    );
  });

  it('takes over a lock whose holder died (kill -9), and says whose it was', async () => {
    const file = lockFile();
    const table = machine();
    leftBy(file, { pid: 100, startTime: 5_000 });
    table.kill(100, 'SIGKILL');
    const lock = await acquire({ file, table, clock: systemClock, pid: 200 });
    expect(lock.replaced).toEqual({ pid: 100, startTime: 5_000, bootId: 'boot-1' });
    expect(holderOf(file).pid).toBe(200);
  });

  it('takes over a lock whose pid now belongs to another process (a recycled pid)', async () => {
    const file = lockFile();
    const table = machine();
    leftBy(file, { pid: 100, startTime: 5_000 });
    table.exit(100);
    table.add({ pid: 100, startTime: 9_999 }); // another process, same pid
    table.add({ pid: 300, startTime: 10_000 });
    expect((await acquire({ file, table, clock: systemClock, pid: 300 })).replaced?.pid).toBe(100);
  });

  it('takes over a lock from before a reboot, whatever runs under its pid now', async () => {
    const file = lockFile();
    const table = machine();
    leftBy(file, { pid: 100, startTime: 5_000, bootId: 'boot-1' });
    table.reboot();
    table.add({ pid: 100, startTime: 5_000 }); // same pid and start time, another boot
    table.add({ pid: 200, startTime: 6_000 });
    expect((await acquire({ file, table, clock: systemClock, pid: 200 })).replaced?.pid).toBe(100);
  });

  it('still refuses a file naming a live holder the socket does not see (another network namespace)', async () => {
    const file = lockFile();
    const table = machine();
    leftBy(file, { pid: 100, startTime: 5_000 });
    await expect(StackLock.acquire({ file, table, clock: systemClock, pid: 200 })).rejects.toMatchObject({
      code: 'FL_ERR_STACK_RUNNING',
      context: { pid: 100 },
    });
    // Refused, it holds nothing: the holder's own start is not in its way.
    await acquire({ file: `${file}.other`, table, clock: systemClock, pid: 100 });
  });

  it('counts an empty lock file as held while young (its writer is writing it), stale after', async () => {
    const file = lockFile();
    const table = machine();
    (await StackLock.acquire({ file, table, clock: systemClock, pid: 100 })).release();
    writeFileSync(file, '');
    await expect(StackLock.acquire({ file, table, clock: systemClock, pid: 200 })).rejects.toBeInstanceOf(
      StackRunningError,
    );
    const later: Clock = { ...systemClock, now: () => Date.now() + 6_000 };
    const lock = await acquire({ file, table, clock: later, pid: 200 });
    expect(lock.replaced).toBeUndefined();
    expect(holderOf(file).pid).toBe(200);
  });

  it('releases only its own lock file', async () => {
    const file = lockFile();
    const table = machine();
    const first = await acquire({ file, table, clock: systemClock, pid: 100 });
    leftBy(file, { pid: 200, startTime: 6_000 }); // written by someone else meanwhile
    first.release();
    expect(holderOf(file).pid).toBe(200);
  });

  it('is given back by the kernel when its holder is killed with -9', async () => {
    const file = lockFile();
    // Another process holding the folder's kernel lock, as a supervisor does.
    const holder = spawn(
      process.execPath,
      [
        '-e',
        `require('node:net').createServer().listen({ path: ${JSON.stringify(kernelLockName(file))}, exclusive: true }, () => process.stdout.write('held\\n'));`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise((resolve) => holder.stdout.once('data', resolve));
    const table = machine();
    await expect(StackLock.acquire({ file, table, clock: systemClock, pid: 200 })).rejects.toBeInstanceOf(
      StackRunningError,
    );
    holder.kill('SIGKILL');
    await new Promise((resolve) => holder.once('exit', resolve));
    await acquire({ file, table, clock: systemClock, pid: 200 });
    expect(holderOf(file).pid).toBe(200);
  });
});
