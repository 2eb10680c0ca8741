import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ServiceSpec } from './supervisor.js';
import { type FakeProcesses, superviseFakes } from './testing/index.js';

/*
 * PostgreSQL under the supervisor, on fake time (README "The supervisor"):
 * a crash recovery is progress, never cut off by a ready deadline or a
 * liveness kill; a postmaster that must go gets SIGINT, SIGQUIT and only then
 * SIGKILL, its children first (each calls setsid(), so the group kill misses them).
 */

/** The embedded PostgreSQL's spec, as embedded-postgres.ts makes it, with probes the test drives. */
function postgres(
  processes: FakeProcesses,
  answers: { ready: boolean; recovering: boolean },
  extra: Partial<ServiceSpec> = {},
): ServiceSpec {
  const running = () => processes.of('postgres').at(-1)?.alive ?? false;
  return {
    name: 'postgres',
    command: '/opt/pg/bin/postgres',
    args: ['-D', '/data', 'postgres'],
    ready: async () => running() && answers.ready,
    starting: async () => running() && answers.recovering,
    fatalExitCodes: [],
    stopSignals: ['SIGINT', 'SIGQUIT'],
    killSignals: ['SIGINT', 'SIGQUIT'],
    killChildren: true,
    ...extra,
  };
}

describe('the supervisor and PostgreSQL', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('waits for a first start that recovers (57P03) past the ready timeout, and is ready when it is', async () => {
    const { processes, supervisor, events } = superviseFakes();
    const answers = { ready: false, recovering: true };
    let started = false;
    void supervisor.start(postgres(processes, answers)).then(() => {
      started = true;
    });
    // Six times the ready timeout (10 s) of WAL replay.
    await vi.advanceTimersByTimeAsync(60_000);
    expect(started).toBe(false);
    expect(processes.of('postgres')).toHaveLength(1);
    expect(processes.signals).toEqual([]);
    expect(events('supervisor.service_recovering')).toHaveLength(1);
    answers.ready = true;
    await vi.advanceTimersByTimeAsync(200);
    expect(started).toBe(true);
    expect(supervisor.list()[0]).toMatchObject({ state: 'up', restarts: 0 });
  });

  it('does not kill a restarted PostgreSQL that recovers, however long, nor one whose recovery shows progress', async () => {
    const { processes, supervisor, events } = superviseFakes();
    const answers = { ready: true, recovering: false };
    await supervisor.start(postgres(processes, answers));
    answers.ready = false;
    answers.recovering = true;
    processes.last('postgres').exit(null, 'SIGKILL'); // kill -9: the next start replays the WAL
    await vi.advanceTimersByTimeAsync(1_000 + 120_000);
    const recovering = processes.last('postgres');
    expect(processes.of('postgres')).toHaveLength(2);
    expect(recovering.alive).toBe(true);
    expect(processes.signals.filter((s) => Math.abs(s.target) === recovering.pid)).toEqual([]);
    expect(events('supervisor.service_not_back')).toEqual([]);
    answers.ready = true;
    await vi.advanceTimersByTimeAsync(200);
    expect(supervisor.list()[0]).toMatchObject({ state: 'up', pid: recovering.pid, restarts: 1 });
  });

  it('counts the ready deadline from the last progress: one that stops making progress is stopped 10 s later', async () => {
    const { processes, supervisor, events } = superviseFakes();
    const answers = { ready: true, recovering: false };
    await supervisor.start(postgres(processes, answers));
    answers.ready = false;
    answers.recovering = true;
    processes.last('postgres').exit(null, 'SIGKILL');
    await vi.advanceTimersByTimeAsync(1_000 + 30_000);
    answers.recovering = false;
    await vi.advanceTimersByTimeAsync(9_500);
    expect(events('supervisor.service_not_back')).toEqual([]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(events('supervisor.service_not_back')).toHaveLength(1);
  });

  it('counts no liveness failure while a ready PostgreSQL recovers (a backend crashed, the postmaster lives)', async () => {
    const { processes, supervisor, events } = superviseFakes();
    const answers = { ready: true, recovering: false };
    await supervisor.start(postgres(processes, answers));
    const postmaster = processes.last('postgres');
    answers.ready = false;
    answers.recovering = true;
    await vi.advanceTimersByTimeAsync(120_000);
    expect(events('supervisor.liveness_failed')).toEqual([]);
    expect(events('supervisor.service_hung')).toEqual([]);
    expect(events('supervisor.service_recovering')).toHaveLength(1);
    expect(postmaster.alive).toBe(true);
    expect(processes.signals).toEqual([]);
    answers.ready = true;
    await vi.advanceTimersByTimeAsync(20_000);
    expect(supervisor.list()[0]).toMatchObject({ state: 'up', pid: postmaster.pid, restarts: 0 });
  });

  it('stops a hung PostgreSQL with SIGINT, SIGQUIT, then SIGKILL: never SIGKILL first', async () => {
    const { processes, supervisor, events } = superviseFakes();
    const answers = { ready: true, recovering: false };
    await supervisor.start(postgres(processes, answers));
    const postmaster = processes.last('postgres');
    postmaster.onStopSignal = 'ignores';
    answers.ready = false;
    // Three failed probes, 5 s apart (each fails at once: the connection is refused).
    await vi.advanceTimersByTimeAsync(15_100);
    expect(events('supervisor.service_hung')).toHaveLength(1);
    expect(processes.signals).toEqual([
      { target: -postmaster.pid, signal: 'SIGCONT' },
      { target: postmaster.pid, signal: 'SIGINT' },
    ]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(processes.signals.at(-1)).toEqual({ target: postmaster.pid, signal: 'SIGQUIT' });
    expect(postmaster.alive).toBe(true);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(postmaster.signalCode).toBe('SIGKILL');
  });

  it('kills a postmaster’s children, each in a session of its own, before the postmaster itself', async () => {
    const { processes, supervisor } = superviseFakes();
    const answers = { ready: true, recovering: false };
    await supervisor.start(postgres(processes, answers));
    answers.ready = false;
    processes.last('postgres').exit(null, 'SIGKILL');
    await vi.advanceTimersByTimeAsync(1_000);
    // The restarted postmaster hangs in its start, its backends and checkpointer (setsid()) with it.
    const postmaster = processes.last('postgres');
    postmaster.onStopSignal = 'ignores';
    const backends = [processes.addDescendant(postmaster.pid), processes.addDescendant(postmaster.pid)];
    await vi.advanceTimersByTimeAsync(10_000 + 2 * 1_000 + 200);
    expect(postmaster.signalCode).toBe('SIGKILL');
    expect(backends.map((b) => b.alive)).toEqual([false, false]);
    const at = (target: number) => processes.signals.findIndex((s) => s.target === target && s.signal === 'SIGKILL');
    for (const backend of backends) {
      expect(at(backend.pid)).toBeGreaterThanOrEqual(0);
      expect(at(backend.pid)).toBeLessThan(at(-postmaster.pid));
    }
    // Stopped first: it forks no new backend between the listing and the kill.
    expect(processes.signals.findIndex((s) => s.signal === 'SIGSTOP')).toBeLessThan(at(backends[0]?.pid as number));
  });

  it('takes a service’s own ready timeout over the supervisor’s', async () => {
    const { processes, supervisor, service, events } = superviseFakes();
    let ready = true;
    await supervisor.start(service('sp-1', { ready: async () => ready, readyTimeoutMs: 30_000 }));
    ready = false;
    processes.last('sp-1').exit(1);
    await vi.advanceTimersByTimeAsync(1_000 + 20_000);
    expect(events('supervisor.service_not_back')).toEqual([]);
    await vi.advanceTimersByTimeAsync(10_100);
    expect(events('supervisor.service_not_back')).toHaveLength(1);
    // A Faultline service that does not come back is killed at once: it would not close either.
    expect(processes.of('sp-1')[1]?.signalCode).toBe('SIGKILL');
  });
});
