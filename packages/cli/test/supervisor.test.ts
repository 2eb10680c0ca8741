import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT, systemClock } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import { freePort } from '@faultline/test-support';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ServiceFailedError } from '../src/errors.js';
import { portAnswers } from '../src/probes.js';
import { type ServiceSpec, Supervisor } from '../src/supervisor.js';
import type { SupervisorOptions } from '../src/supervisor-options.js';

/*
 * The supervisor over real processes and real signals: a service built on
 * runMain (core's dist) that serves `GET /` on a port, or fails its start
 * with a ConfigError (exit 2).
 */

const CORE = JSON.stringify(path.join(REPO_ROOT, 'packages/core/dist/index.js'));
const serviceScript = (port: number, mode: 'serve' | 'bad-config') => `
import http from 'node:http';
import { ConfigError, createLogger, runMain } from ${CORE};
await runMain(
  () => createLogger({ service: 'probe', console: 'none' }),
  async () => {
    if (${JSON.stringify(mode)} === 'bad-config') throw ConfigError.forKey('probe.port', 'no such port');
    const server = http.createServer((_, res) => res.end('ok'));
    await new Promise((resolve) => server.listen(${port}, '127.0.0.1', resolve));
    return { close: () => new Promise((resolve) => server.close(resolve)) };
  },
);
`;

async function answers(port: number, signal?: AbortSignal): Promise<boolean> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/`, { signal: signal ?? AbortSignal.timeout(500) })).ok;
  } catch {
    return false;
  }
}

const service = (name: string, port: number, mode: 'serve' | 'bad-config' = 'serve'): ServiceSpec => ({
  name,
  command: process.execPath,
  args: ['--input-type=module', '-e', serviceScript(port, mode)],
  ready: (signal) => answers(port, signal),
});

/** Whether a process `pid` exists (and is no zombie). */
function running(pid: number): boolean {
  try {
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');
  } catch {
    return false;
  }
}

const supervisors: Supervisor[] = [];
function supervisor(extra: Partial<SupervisorOptions> = {}) {
  const log = createMemoryLogger();
  const fatal: ServiceFailedError[] = [];
  const s = new Supervisor({
    clock: systemClock,
    logger: log,
    restartInitialMs: 200,
    livenessIntervalMs: 200,
    livenessTimeoutMs: 300,
    livenessFailureThreshold: 3,
    stopGraceMs: 2_000,
    write: () => {},
    onFatal: (error) => fatal.push(error),
    ...extra,
  });
  supervisors.push(s);
  return { s, log, fatal };
}

afterEach(async () => {
  for (const s of supervisors.splice(0)) await s.stopAll();
});

describe('the supervisor over real processes', () => {
  it('does not restart a service that exits 2 (bad configuration) once it was up, and says which and why', async () => {
    const port = await freePort();
    const { s, log, fatal } = supervisor();
    const spec = service('probe', port);
    await s.start(spec);
    // Its configuration is now bad: the next start of it would exit 2, and so does this one.
    const pid = s.pid('probe') as number;
    spec.args.splice(0, spec.args.length, '--input-type=module', '-e', serviceScript(port, 'bad-config'));
    process.kill(pid, 'SIGKILL');
    await vi.waitFor(() => expect(fatal).toHaveLength(1), { timeout: 10_000 });
    expect(fatal[0]?.message).toMatch(/^probe exited with code 2 \(configuration error\): probe\.port: no such port/);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(log.events().filter((e) => e === 'supervisor.service_restarting')).toHaveLength(1);
    expect(s.list()[0]).toMatchObject({ state: 'failed', pid: undefined });
  });

  it('kills a service that stops answering (SIGSTOP) and starts it again', async () => {
    const port = await freePort();
    const { s, log } = supervisor();
    await s.start(service('probe', port));
    const hung = s.pid('probe') as number;
    process.kill(hung, 'SIGSTOP');
    await vi.waitFor(
      () => {
        expect(running(hung)).toBe(false);
        expect(s.list()[0]).toMatchObject({ state: 'up', restarts: 1 });
      },
      { timeout: 15_000, interval: 100 },
    );
    expect(log.events()).toContain('supervisor.service_hung');
    expect(await answers(port)).toBe(true);
  });

  it('keeps the last words of a service that floods stderr and exits 2 at once: its reason is read before its exit is acted on', async () => {
    // More than a pipe holds, each write blocking until it is in the pipe (fs.writeSync on the fd
    // process.stderr never touched): node often sees the exit while the end of it is still unread.
    const script = `
      const fs = require('node:fs');
      for (let i = 0; i < 2000; i++) fs.writeSync(2, 'noise ' + i + ' ' + 'x'.repeat(200) + '\\n');
      fs.writeSync(2, 'probe.port: no such port');
      process.exit(2);
    `;
    const { s } = supervisor();
    const errors = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        s.start({ name: `flood-${i}`, command: process.execPath, args: ['-e', script], ready: async () => false }).then(
          () => undefined,
          (error: unknown) => error as Error,
        ),
      ),
    );
    for (const error of errors) {
      expect(error).toMatchObject({ code: 'FL_ERR_SERVICE_FAILED' });
      expect(error?.message).toMatch(/probe\.port: no such port; the stack stopped$/);
    }
  });

  it('survives output that arrives after a stopped service exited (a child of it in its own session still writes)', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faultline-late-output-'));
    const file = path.join(dir, 'logs', 'pg.log');
    const port = await freePort();
    // Like a PostgreSQL backend: setsid() (detached), the service's stderr inherited, outliving it.
    const script = `
      const { spawn } = require('node:child_process');
      const late = "let i = 0; setInterval(() => process.stderr.write('late ' + i++ + ' ' + 'x'.repeat(2000) + '\\n'), 1); setTimeout(() => process.exit(0), 2000)";
      spawn(process.execPath, ['-e', late], { detached: true, stdio: ['ignore', 'inherit', 'inherit'] });
      require('node:net').createServer().listen(${port}, '127.0.0.1');
      process.on('SIGTERM', () => { process.stderr.write('stopping\\n'); process.exit(0); });
    `;
    const { s } = supervisor({ outputDrainMs: 200 });
    await s.start({
      name: 'pg',
      command: process.execPath,
      args: ['-e', script],
      outputFile: file,
      console: false,
      ready: (signal) => portAnswers('127.0.0.1', port, signal),
    });
    await s.stopAll();
    // The late writes reach a closed file: dropped, not an uncaught 'write after end'.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    expect(readFileSync(file, 'utf8')).toContain('stopping\n');
    rmSync(dir, { recursive: true, force: true });
  });

  it('leaves no service behind when the supervisor itself is killed with -9', async () => {
    const port = await freePort();
    // A supervisor in a process of its own (cli's dist), started as `stack up` starts it.
    const script = `
      import { Supervisor } from ${JSON.stringify(path.join(REPO_ROOT, 'packages/cli/dist/index.js'))};
      import { systemClock, nullLogger } from ${CORE};
      const s = new Supervisor({ clock: systemClock, logger: nullLogger, write: () => {} });
      const answers = async () => { try { return (await fetch('http://127.0.0.1:${port}/')).ok; } catch { return false; } };
      await s.start({ name: 'probe', command: process.execPath, args: ['--input-type=module', '-e', ${JSON.stringify(serviceScript(port, 'serve'))}], ready: answers });
      process.stdout.write(String(s.pid('probe')) + '\\n');
      setInterval(() => {}, 1000);
    `;
    const parent = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const pid = await new Promise<number>((resolve) => parent.stdout.once('data', (c) => resolve(Number(String(c)))));
    expect(running(pid)).toBe(true);
    parent.kill('SIGKILL');
    // Its stdin pipe ends with the supervisor: runMain closes it.
    await vi.waitFor(() => expect(running(pid)).toBe(false), { timeout: 10_000, interval: 100 });
    expect(await answers(port)).toBe(false);
  });
});
