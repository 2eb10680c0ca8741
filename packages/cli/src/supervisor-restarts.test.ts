import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SUPERVISED_ENV } from '@faultline/core';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ServiceFailedError } from './errors.js';
import { ServiceRecords } from './service-records.js';
import { FakeProcesses, superviseFakes } from './testing/index.js';

/*
 * The supervisor's restart policy and liveness checks on fake time, over fake
 * processes (testing/fake-processes.ts): what it spawns, the signals it sends,
 * when, and what it logs.
 */

const setup = superviseFakes;

describe('Supervisor restarts', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('starts every service in its own process group with a stdin pipe and the supervised flag', async () => {
    const { processes, supervisor, service } = setup();
    await supervisor.start(service('sp-1'));
    const child = processes.last('sp-1');
    expect(child.options.detached).toBe(true);
    expect(child.options.stdio).toEqual(['pipe', 'pipe', 'pipe']);
    expect(child.options.env?.[SUPERVISED_ENV]).toBe('1');
    expect(supervisor.list()).toEqual([{ name: 'sp-1', pid: child.pid, state: 'up', restarts: 0 }]);
  });

  it('restarts a dying service after 1 s, 2 s, 4 s, then the cap, and from 1 s again after it stayed up', async () => {
    const { processes, supervisor, service, events } = setup();
    await supervisor.start(service('sp-1'));
    const restartAfter = async (): Promise<number> => {
      const before = processes.of('sp-1').length;
      processes.last('sp-1').exit(1);
      let waited = 0;
      while (processes.of('sp-1').length === before) {
        await vi.advanceTimersByTimeAsync(100);
        waited += 100;
        if (waited > 60_000) throw new Error('never restarted');
      }
      // Up again before the next death: its readiness is polled right after the spawn.
      await vi.advanceTimersByTimeAsync(0);
      return waited;
    };
    expect(await restartAfter()).toBe(1_000);
    expect(await restartAfter()).toBe(2_000);
    expect(await restartAfter()).toBe(4_000);
    expect(await restartAfter()).toBe(8_000);
    expect(await restartAfter()).toBe(8_000);
    expect(events('supervisor.service_restarting').map((r) => r.delayMs)).toEqual([1_000, 2_000, 4_000, 8_000, 8_000]);
    // Up for the reset period: the next death is a first one again.
    await vi.advanceTimersByTimeAsync(30_000);
    expect(await restartAfter()).toBe(1_000);
    expect(supervisor.list()[0]).toMatchObject({ state: 'up', restarts: 6 });
  });

  it('does not restart a service that exits 2: the stack is told to stop, with the service and its reason', async () => {
    const { processes, supervisor, service, fatal, events } = setup();
    await supervisor.start(service('sp-1'));
    const child = processes.last('sp-1');
    child.stderr.write('invalid configuration:\n  - streamProcessor.nodes: no node sp-9\n');
    await vi.advanceTimersByTimeAsync(0);
    child.exit(2);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(processes.of('sp-1')).toHaveLength(1);
    expect(supervisor.list()[0]).toMatchObject({ state: 'failed', pid: undefined, restarts: 0 });
    expect(fatal).toHaveLength(1);
    expect(fatal[0]).toBeInstanceOf(ServiceFailedError);
    expect(fatal[0]?.code).toBe('FL_ERR_SERVICE_FAILED');
    expect(fatal[0]?.message).toMatch(/^sp-1 exited with code 2 .*streamProcessor\.nodes: no node sp-9/);
    expect(events('supervisor.service_failed')).toHaveLength(1);
    expect(events('supervisor.service_restarting')).toHaveLength(0);
  });

  it('fails start() with a ServiceFailedError when the service exits 2 before it is ready', async () => {
    const { processes, supervisor, service, fatal } = setup();
    const started = supervisor.start(service('sp-1', { ready: async () => false }));
    const failed = expect(started).rejects.toMatchObject({ code: 'FL_ERR_SERVICE_FAILED' });
    processes.last('sp-1').stderr.write('security.memberKeyFile: missing\n');
    await vi.advanceTimersByTimeAsync(0);
    processes.last('sp-1').exit(2);
    await vi.advanceTimersByTimeAsync(200);
    await failed;
    await vi.advanceTimersByTimeAsync(60_000);
    expect(processes.of('sp-1')).toHaveLength(1);
    expect(fatal).toEqual([]);
  });

  it('restarts a service whose exit code is not fatal for it (PostgreSQL, Mosquitto: none is)', async () => {
    const { processes, supervisor, service, fatal } = setup();
    await supervisor.start(service('postgres', { fatalExitCodes: [] }));
    processes.last('postgres').exit(2);
    await vi.advanceTimersByTimeAsync(1_100);
    expect(processes.of('postgres')).toHaveLength(2);
    expect(fatal).toEqual([]);
  });

  it('kills a ready service that stops answering (SIGSTOP) after the failure threshold, and restarts it', async () => {
    const { processes, supervisor, service, events } = setup();
    await supervisor.start(service('autoscaler-a'));
    const hung = processes.last('autoscaler-a');
    // Healthy probes for a while: nothing happens.
    await vi.advanceTimersByTimeAsync(20_000);
    expect(events('supervisor.liveness_failed')).toHaveLength(0);
    processes.kill(hung.pid, 'SIGSTOP');
    // Probes every 5 s after the last ended, each failing after 2 s: 3 failures take 3 × 7 s at most.
    await vi.advanceTimersByTimeAsync(14_000);
    expect(hung.alive).toBe(true);
    expect(events('supervisor.liveness_failed').map((r) => r.failures)).toEqual([1, 2]);
    await vi.advanceTimersByTimeAsync(7_000);
    expect(events('supervisor.service_hung')).toHaveLength(1);
    expect(hung.signalCode).toBe('SIGKILL');
    // To its process group: it may have children (PostgreSQL's backends).
    expect(processes.signals).toContainEqual({ target: -hung.pid, signal: 'SIGKILL' });
    // Restarted through the usual backoff.
    await vi.advanceTimersByTimeAsync(1_000);
    const next = processes.last('autoscaler-a');
    expect(next.pid).not.toBe(hung.pid);
    await vi.advanceTimersByTimeAsync(100);
    expect(supervisor.list()[0]).toMatchObject({ state: 'up', pid: next.pid, restarts: 1 });
  });

  it('kills a running service whose health probe stops answering (a blocked event loop): each probe times out', async () => {
    const { processes, supervisor, service, events } = setup();
    let blocked = false;
    await supervisor.start(
      service('sp-1', { live: () => (blocked ? new Promise<boolean>(() => {}) : Promise.resolve(true)) }),
    );
    const stuck = processes.last('sp-1');
    blocked = true;
    // Probe 1 starts at 5 s and fails at 7 s; probe 2 at 12–14 s; probe 3 at 19–21 s.
    await vi.advanceTimersByTimeAsync(20_900);
    expect(stuck.alive).toBe(true);
    expect(events('supervisor.liveness_failed').map((r) => r.failures)).toEqual([1, 2]);
    await vi.advanceTimersByTimeAsync(200);
    expect(stuck.signalCode).toBe('SIGKILL');
    blocked = false;
    await vi.advanceTimersByTimeAsync(1_100);
    expect(supervisor.list()[0]).toMatchObject({ state: 'up', restarts: 1 });
    expect(events('supervisor.service_hung')).toHaveLength(1);
  });

  it('resets the failure count on an answered probe: only failures in a row count', async () => {
    const { processes, supervisor, service, events } = setup();
    let answers = [false, false, true, false, false, true];
    await supervisor.start(
      service('sp-1', {
        live: async () => answers.shift() ?? true,
      }),
    );
    await vi.advanceTimersByTimeAsync(60_000);
    expect(events('supervisor.liveness_failed').map((r) => r.failures)).toEqual([1, 2, 1, 2]);
    expect(events('supervisor.service_hung')).toHaveLength(0);
    expect(processes.of('sp-1')).toHaveLength(1);
    answers = [];
  });

  it('kills and restarts a restarted service that is not ready in time', async () => {
    const { processes, supervisor, service, events } = setup();
    let ready = true;
    await supervisor.start(service('sp-1', { ready: async () => ready }));
    ready = false;
    processes.last('sp-1').exit(1);
    await vi.advanceTimersByTimeAsync(1_000 + 10_000 + 100);
    expect(events('supervisor.service_not_back')).toHaveLength(1);
    expect(processes.of('sp-1')[1]?.signalCode).toBe('SIGKILL');
    ready = true;
    await vi.advanceTimersByTimeAsync(2_000 + 100);
    expect(processes.of('sp-1')).toHaveLength(3);
    expect(supervisor.list()[0]).toMatchObject({ state: 'up', restarts: 2 });
  });

  it('stops with the service’s own signals in turn (PostgreSQL: SIGINT, SIGQUIT), then SIGKILL to its group', async () => {
    const { processes, supervisor, service } = setup();
    await supervisor.start(service('postgres', { stopSignals: ['SIGINT', 'SIGQUIT'] }));
    const pg = processes.last('postgres');
    pg.onStopSignal = 'ignores';
    processes.kill(pg.pid, 'SIGSTOP');
    const stopped = supervisor.stopAll();
    await vi.advanceTimersByTimeAsync(0);
    expect(processes.signals.slice(-2)).toEqual([
      { target: -pg.pid, signal: 'SIGCONT' },
      { target: pg.pid, signal: 'SIGINT' },
    ]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(processes.signals.at(-1)).toEqual({ target: pg.pid, signal: 'SIGQUIT' });
    expect(pg.alive).toBe(true);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(processes.signals.at(-1)).toEqual({ target: -pg.pid, signal: 'SIGKILL' });
    await stopped;
    // Stopped on purpose: nothing restarts it, nothing probes it.
    await vi.advanceTimersByTimeAsync(60_000);
    expect(processes.of('postgres')).toHaveLength(1);
    expect(supervisor.list()[0]).toMatchObject({ state: 'stopped', pid: undefined });
  });

  it('keeps what stopAll is told to keep, and stops it on the next call', async () => {
    const { processes, supervisor, service } = setup();
    await supervisor.start(service('postgres'));
    await supervisor.start(service('sp-1'));
    await supervisor.stopAll({ keep: ['postgres'] });
    expect(processes.last('sp-1').alive).toBe(false);
    expect(processes.last('postgres').alive).toBe(true);
    // Dying now (the supervisor is stopping) it is not restarted.
    processes.last('postgres').exit(1);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(processes.of('postgres')).toHaveLength(1);
    await supervisor.stopAll();
  });

  it('records each running service’s pid and start time in the run folder, and forgets it when it exits', async () => {
    const processes = new FakeProcesses();
    const records = new ServiceRecords(
      path.join(mkdtempSync(path.join(os.tmpdir(), 'faultline-sup-')), 'services.json'),
      processes,
    );
    const { supervisor, service } = setup({ records }, processes);
    await supervisor.start(service('broker-a'));
    await supervisor.start(service('postgres', { stopSignals: ['SIGINT', 'SIGQUIT'] }));
    const broker = processes.last('broker-a').pid;
    const pg = processes.last('postgres').pid;
    expect(records.read()).toEqual([
      { name: 'broker-a', pid: broker, startTime: broker * 10, bootId: 'boot-1', stopSignal: 'SIGTERM' },
      { name: 'postgres', pid: pg, startTime: pg * 10, bootId: 'boot-1', stopSignal: 'SIGINT' },
    ]);
    processes.last('broker-a').exit(1);
    await vi.advanceTimersByTimeAsync(0);
    expect(records.read().map((r) => r.name)).toEqual(['postgres']);
    await vi.advanceTimersByTimeAsync(1_100);
    expect(records.read().map((r) => r.name)).toEqual(['postgres', 'broker-a']);
    const stopped = supervisor.stopAll();
    await vi.advanceTimersByTimeAsync(0);
    await stopped;
    expect(records.read()).toEqual([]);
  });
});
