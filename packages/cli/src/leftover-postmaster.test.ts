import { describe, expect, it } from 'vitest';
import { ownerOf } from './leftover-postmaster.js';
import type { ServiceRecord } from './service-records.js';
import { FakeProcesses } from './testing/index.js';

/*
 * Whose a PostgreSQL found running on the data folder is (the integration
 * test, test/embedded-postgres.test.ts, runs the same over real processes).
 */

function machine() {
  const processes = new FakeProcesses();
  // Another supervisor (a live process), and the postmaster it started.
  processes.spawn('node', ['stack.js', 'other-supervisor'], {});
  const supervisor = processes.last('other-supervisor');
  const postmaster = processes.addDescendant(supervisor.pid);
  const record = (pid: number, startTime = pid * 10): ServiceRecord => ({
    name: 'postgres',
    pid,
    startTime,
    bootId: 'boot-1',
    stopSignal: 'SIGINT',
  });
  return { processes, supervisor, postmaster, record };
}

describe('ownerOf (a leftover postmaster)', () => {
  it('is another supervisor’s while its live parent holds its stdin pipe: not ours to stop', () => {
    const { processes, supervisor, postmaster } = machine();
    expect(ownerOf(postmaster.pid, { table: processes, records: [], holdsStdin: () => true })).toEqual({
      kind: 'supervised',
      parent: supervisor.pid,
    });
    // Nor when that cannot be told (its descriptors unreadable, its stdin no pipe).
    expect(ownerOf(postmaster.pid, { table: processes, records: [], holdsStdin: () => undefined })).toMatchObject({
      kind: 'supervised',
    });
  });

  it('is an orphan once its parent is init, or a subreaper that does not hold its pipe', () => {
    const { processes, supervisor, postmaster } = machine();
    expect(ownerOf(postmaster.pid, { table: processes, records: [], holdsStdin: () => false })).toEqual({
      kind: 'orphan',
    });
    supervisor.kill('SIGKILL');
    expect(ownerOf(postmaster.pid, { table: processes, records: [], holdsStdin: () => true })).toEqual({
      kind: 'orphan',
    });
  });

  it('is ours when this folder’s records name it by pid and start time, whoever its parent', () => {
    const { processes, postmaster, record } = machine();
    expect(
      ownerOf(postmaster.pid, { table: processes, records: [record(postmaster.pid)], holdsStdin: () => true }),
    ).toEqual({ kind: 'recorded' });
    // A record of another process that had the pid before: not this one.
    expect(
      ownerOf(postmaster.pid, { table: processes, records: [record(postmaster.pid, 1)], holdsStdin: () => true }),
    ).toMatchObject({ kind: 'supervised' });
  });
});
