import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FakeProcessTable } from '@faultline/cloud-controller/testing';
import { systemClock } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type ServiceRecord, ServiceRecords, stopLeftovers } from './service-records.js';

const recordsFile = () => path.join(mkdtempSync(path.join(os.tmpdir(), 'faultline-records-')), 'run', 'services.json');

describe('ServiceRecords', () => {
  it('keeps pid, start time and boot of each service in a 0600 file, and drops one when it exits', () => {
    const table = new FakeProcessTable();
    table.add({ pid: 10, startTime: 111 });
    table.add({ pid: 11, startTime: 222 });
    const file = recordsFile();
    const records = new ServiceRecords(file, table);
    expect(records.add('sp-1', 10, 'SIGTERM')).toBe(true);
    expect(records.add('postgres', 11, 'SIGINT')).toBe(true);
    expect(records.add('gone', 12, 'SIGTERM')).toBe(false);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    // What the next supervisor reads, through another instance.
    expect(new ServiceRecords(file, table).read()).toEqual([
      { name: 'sp-1', pid: 10, startTime: 111, bootId: 'boot-1', stopSignal: 'SIGTERM' },
      { name: 'postgres', pid: 11, startTime: 222, bootId: 'boot-1', stopSignal: 'SIGINT' },
    ]);
    records.remove('sp-1', 99); // an older process of the service: its newer record stays
    records.remove('postgres', 11);
    expect(records.read().map((r) => r.name)).toEqual(['sp-1']);
    records.clear();
    expect(records.read()).toEqual([]);
  });

  it('reads nothing from a missing or damaged file', () => {
    const file = recordsFile();
    const records = new ServiceRecords(file, new FakeProcessTable());
    expect(records.read()).toEqual([]);
    records.clear();
    writeFileSync(file, '[{"name":"sp-1","pid":"x"}, 7, {"torn');
    expect(records.read()).toEqual([]);
  });
});

describe('stopLeftovers', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  const record = (name: string, pid: number, startTime: number, stopSignal: NodeJS.Signals = 'SIGTERM') =>
    ({ name, pid, startTime, bootId: 'boot-1', stopSignal }) satisfies ServiceRecord;

  it('stops what a dead supervisor left: SIGCONT to its group, the stop signal, SIGKILL after the grace', async () => {
    vi.useFakeTimers();
    const table = new FakeProcessTable();
    table.add({ pid: 10, startTime: 1, state: 'T' }); // sp-1, paused: SIGTERM waits for SIGCONT
    table.add({ pid: 11, startTime: 2, ignoresTerm: true }); // an autoscaler stuck in its close
    table.add({ pid: 12, startTime: 3 }); // postgres…
    table.add({ pid: 13, pgid: 12, startTime: 4 }); // …and a backend of it
    const log = createMemoryLogger();
    const stopping = stopLeftovers(
      [record('sp-1', 10, 1), record('autoscaler-a', 11, 2), record('postgres', 12, 3, 'SIGINT')],
      { table, clock: systemClock, logger: log, graceMs: 5_000 },
    );
    await vi.advanceTimersByTimeAsync(200);
    expect(table.has(10)).toBe(false);
    expect(table.has(11)).toBe(true);
    // To each member of its group, by pid.
    expect(table.signals).toContainEqual({ target: 10, signal: 'SIGCONT' });
    expect(table.signals).toContainEqual({ target: 12, signal: 'SIGINT' });
    await vi.advanceTimersByTimeAsync(5_000);
    expect((await stopping).sort()).toEqual(['autoscaler-a', 'postgres', 'sp-1']);
    expect(table.has(11)).toBe(false);
    expect(table.has(13)).toBe(false); // the group went with its leader
    expect(log.events()).toContain('stack.leftover_killed');
  });

  it('never signals a recycled pid, nor a process of another boot', async () => {
    const table = new FakeProcessTable();
    table.add({ pid: 10, startTime: 999 }); // not the recorded process
    table.add({ pid: 11, startTime: 2 });
    const stopped = await stopLeftovers([record('sp-1', 10, 1), { ...record('sp-2', 11, 2), bootId: 'boot-0' }], {
      table,
      clock: systemClock,
      logger: createMemoryLogger(),
      graceMs: 1_000,
    });
    expect(stopped).toEqual([]);
    expect(table.signals.filter((s) => s.signal !== 0)).toEqual([]);
  });

  it('never signals a process group by its id: a reused pid may lead a new one once the old group is empty', async () => {
    // The recorded sp-1 (pid 10) stops on SIGTERM, and its pid goes at once to a new, unrelated group leader.
    class ReusingTable extends FakeProcessTable {
      override kill(target: number, signal: NodeJS.Signals | 0): boolean {
        const delivered = super.kill(target, signal);
        if (target === 10 && signal === 'SIGTERM' && !this.has(10)) {
          this.add({ pid: 10, startTime: 50 });
          this.add({ pid: 11, pgid: 10, startTime: 51 });
        }
        return delivered;
      }
    }
    const table = new ReusingTable();
    table.add({ pid: 10, startTime: 1 });
    await stopLeftovers([record('sp-1', 10, 1)], {
      table,
      clock: systemClock,
      logger: createMemoryLogger(),
      graceMs: 1_000,
    });
    expect(table.has(10)).toBe(true);
    expect(table.has(11)).toBe(true);
    expect(table.signals.filter((s) => s.target < 0)).toEqual([]);
  });

  it('kills only the members of a gone leader’s group that are no older than it', async () => {
    const table = new FakeProcessTable();
    table.add({ pid: 21, pgid: 20, startTime: 5 }); // started after the leader: its own
    table.add({ pid: 22, pgid: 20, startTime: 3 }); // older than the leader: not of this service
    await stopLeftovers([record('broker-a', 20, 4)], {
      table,
      clock: systemClock,
      logger: createMemoryLogger(),
      graceMs: 1_000,
    });
    expect(table.has(21)).toBe(false);
    expect(table.has(22)).toBe(true);
  });

  it('leaves the services it is told to skip (PostgreSQL, which is stopped with care elsewhere)', async () => {
    vi.useFakeTimers();
    const table = new FakeProcessTable();
    table.add({ pid: 12, startTime: 3, ignoresTerm: true }); // postgres, slow to stop
    table.add({ pid: 13, pgid: 12, startTime: 4 }); // a backend
    const log = createMemoryLogger();
    const stopping = stopLeftovers([record('postgres', 12, 3, 'SIGINT')], {
      table,
      clock: systemClock,
      logger: log,
      graceMs: 10_000,
      skip: ['postgres'],
    });
    await vi.advanceTimersByTimeAsync(30_000);
    expect(await stopping).toEqual([]);
    expect(table.has(12)).toBe(true);
    expect(table.has(13)).toBe(true);
    expect(table.signals).toEqual([]);
    expect(log.events()).toEqual([]);
  });

  it('kills what is left of the group of a leader that is already gone (PostgreSQL’s backends)', async () => {
    const table = new FakeProcessTable();
    table.add({ pid: 21, pgid: 20, startTime: 5 });
    await stopLeftovers([record('postgres', 20, 4, 'SIGINT')], {
      table,
      clock: systemClock,
      logger: createMemoryLogger(),
      graceMs: 1_000,
    });
    expect(table.has(21)).toBe(false);
  });
});
