import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { systemClock } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import { freePort } from '@faultline/test-support';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { execCheck, execProbeEnv, httpCheck, ProbeRunner, probeCheckFor, tcpCheck } from '../src/index.js';
import { waitFor } from './helpers.js';

/*
 * The probes' checks (README "Probes") against real servers and real
 * commands on loopback: an HTTP path and status, a TCP connect, a command's
 * exit code; and a deadline, on fake time, that closes what a check holds.
 */
describe('probe checks', () => {
  const cleanups: (() => Promise<unknown> | unknown)[] = [];
  afterEach(async () => {
    vi.useRealTimers();
    for (const fn of cleanups.splice(0).reverse()) await fn();
  });

  /** An HTTP server on loopback: `/ready` 200, `/stats` 503, `/hang` never answers. Counts open sockets. */
  async function workload() {
    const open = new Set<net.Socket>();
    const paths: string[] = [];
    const server = http.createServer((req, res) => {
      paths.push(req.url ?? '');
      if (req.url === '/ready') res.writeHead(200).end('ok');
      else if (req.url === '/stats') res.writeHead(503).end('busy');
      else if (req.url !== '/hang') res.writeHead(404).end();
    });
    server.on('connection', (socket: net.Socket) => {
      open.add(socket);
      socket.once('close', () => open.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(resolve));
    });
    return { port: (server.address() as net.AddressInfo).port, open, paths };
  }

  const signal = () => new AbortController().signal;

  /** Waits for real I/O while timers are fake: turns of the event loop (setImmediate is left real), bounded. */
  async function settled(predicate: () => boolean, what: string) {
    for (let i = 0; i < 200_000 && !predicate(); i++) await new Promise((resolve) => setImmediate(resolve));
    if (!predicate()) throw new Error(`timed out waiting for ${what}`);
  }

  it('http: GET the path, pass on the expected status only', async () => {
    const { port, paths } = await workload();
    const on = (path: string, expectStatus = 200) =>
      httpCheck({ host: '127.0.0.1', port, path, expectStatus })(signal());
    expect(await on('/ready')).toEqual({ ok: true });
    expect(await on('/stats')).toEqual({ ok: false, reason: 'GET /stats: HTTP 503, expected 200' });
    expect(await on('/stats', 503)).toEqual({ ok: true });
    expect(paths).toEqual(['/ready', '/stats', '/stats']);
    const closed = await httpCheck({ host: '127.0.0.1', port: await freePort(), path: '/', expectStatus: 200 })(
      signal(),
    );
    expect(closed).toMatchObject({ ok: false, reason: expect.stringMatching(/^GET \/: connect ECONNREFUSED/) });
  });

  it('http: a workload that never answers fails at the deadline (fake time), and its connection is closed', async () => {
    const { port, open, paths } = await workload();
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date', 'performance'] });
    const changes: string[] = [];
    const runner = new ProbeRunner({
      kind: 'liveness',
      check: httpCheck({ host: '127.0.0.1', port, path: '/hang', expectStatus: 200 }),
      periodMs: 60_000,
      timeoutMs: 2_000,
      failureThreshold: 1,
      successThreshold: 1,
      initial: 'passing',
      clock: systemClock,
      logger: createMemoryLogger(),
      onChange: (state, reason) => changes.push(`${state}: ${reason}`),
    });
    cleanups.push(() => runner.stop());
    runner.start();
    await settled(() => paths.length === 1 && open.size === 1, 'the request to arrive');
    await vi.advanceTimersByTimeAsync(1_999);
    expect(changes).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(changes).toEqual(['failing: no answer within 2000 ms']);
    expect(runner.counters).toEqual({ checks: 1, failures: 1, timeouts: 1 });
    await settled(() => open.size === 0, 'the check to close its connection');
  });

  it('tcp: passes on a connect, fails on a refused one', async () => {
    const { port, open } = await workload();
    expect(await tcpCheck({ host: '127.0.0.1', port })(signal())).toEqual({ ok: true });
    await waitFor(() => open.size === 0, 'the check to close its connection');
    const refused = await tcpCheck({ host: '127.0.0.1', port: await freePort() })(signal());
    expect(refused).toMatchObject({ ok: false, reason: expect.stringMatching(/ECONNREFUSED/) });
  });

  describe('exec', () => {
    const node = process.execPath;
    const run = (args: string[], env: Record<string, string> = {}, maxOutputBytes = 4_096) =>
      execCheck({ command: [node, ...args], env, maxOutputBytes });

    it('passes on exit 0 and fails on any other, with its output', async () => {
      expect(await run(['-e', 'process.exit(0)'])(signal())).toEqual({ ok: true });
      expect(await run(['-e', 'console.error("not ready"); process.exit(3)'])(signal())).toEqual({
        ok: false,
        reason: `${node}: exit 3: not ready`,
      });
      // An argv, never a shell line: `;` and `$(…)` are plain characters of one argument.
      const argv = await run(['-e', 'process.exit(process.argv[1] === "a; $(touch x)" ? 0 : 1)', 'a; $(touch x)'])(
        signal(),
      );
      expect(argv).toEqual({ ok: true });
    });

    it('fails, never throws, on a program that does not exist', async () => {
      const missing = await execCheck({ command: ['/nonexistent/probe'], env: {}, maxOutputBytes: 100 })(signal());
      expect(missing).toMatchObject({
        ok: false,
        reason: expect.stringMatching(/^\/nonexistent\/probe: spawn .*ENOENT/),
      });
    });

    it('keeps at most maxOutputBytes of its output', async () => {
      const loud = await run(
        ['-e', 'process.stdout.write("x".repeat(1 << 20)); process.exitCode = 1'],
        {},
        64,
      )(signal());
      expect(loud.ok).toBe(false);
      expect(loud.ok ? '' : loud.reason).toBe(`${node}: exit 1: ${'x'.repeat(64)}`);
    });

    /** Whether a process runs (a zombie, dead but not yet reaped, does not). */
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');
      } catch {
        return false;
      }
    };

    /**
     * Runs `script` as a check that never ends; once the process that writes its pid to the file
     * `pidFile` has, aborts the check at its deadline: that process's pid.
     */
    const abortedAtDeadline = async (script: (pidFile: string) => string) => {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'faultline-exec-probe-'));
      cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
      const pidFile = path.join(dir, 'pid');
      const controller = new AbortController();
      const pending = run(['-e', script(pidFile)])(controller.signal);
      await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8') !== '', 'the command to start');
      const pid = Number(readFileSync(pidFile, 'utf8'));
      controller.abort();
      expect(await pending).toEqual({ ok: false, reason: 'aborted at its deadline' });
      return pid;
    };
    const writesItsPid = (pidFile: string) =>
      `require("fs").writeFileSync(${JSON.stringify(pidFile)}, String(process.pid)); setInterval(() => {}, 1000)`;

    it('is killed at its deadline, with whatever it started keeping nothing waiting', async () => {
      const pid = await abortedAtDeadline(writesItsPid);
      await waitFor(() => !alive(pid), 'the command to be killed');
    });

    it('at its deadline, what the command started goes too (a shell and its children), not only the command', async () => {
      // A check that starts a command of its own and waits on it, as `sh -c 'curl …; test …'` does.
      const pid = await abortedAtDeadline(
        (pidFile) =>
          `require("child_process").spawn(process.execPath, ["-e", ${JSON.stringify(writesItsPid(pidFile))}], { stdio: "ignore" }); setInterval(() => {}, 1000)`,
      );
      await waitFor(() => !alive(pid), 'the grandchild to be killed');
    });

    it('gets PATH, HOME, the member and its workload, never the member credential', async () => {
      const env = execProbeEnv(
        {
          PATH: '/usr/bin:/bin',
          HOME: '/home/member',
          FAULTLINE_MEMBER_CREDENTIAL: 'php-m-1:php:np-1:secret',
          FAULTLINE_BROKERS: 'a@127.0.0.1:1883',
          NODE_OPTIONS: '--require /tmp/x.js',
        },
        { memberId: 'php-m-1', clusterId: 'php', workload: { host: '127.0.0.1', port: 41_000 } },
      );
      expect(env).toEqual({
        PATH: '/usr/bin:/bin',
        HOME: '/home/member',
        FAULTLINE_MEMBER_ID: 'php-m-1',
        FAULTLINE_CLUSTER_ID: 'php',
        FAULTLINE_WORKLOAD_HOST: '127.0.0.1',
        FAULTLINE_WORKLOAD_PORT: '41000',
      });
      const script =
        'process.exit(process.env.FAULTLINE_WORKLOAD_PORT === "41000" && !process.env.FAULTLINE_MEMBER_CREDENTIAL ? 0 : 1)';
      expect(await run(['-e', script], env)(signal())).toEqual({ ok: true });
    });
  });

  it('probeCheckFor: the workload host always, its port unless the probe names one', async () => {
    const { port, paths } = await workload();
    const other = await workload();
    const workloadAt = { host: '127.0.0.1', port };
    const exec = { env: {} };
    const http1 = probeCheckFor(
      { type: 'http', path: '/ready', expectStatus: 200, timeoutMs: 1, successThreshold: 1, failureThreshold: 3 },
      workloadAt,
      exec,
    );
    expect(await http1(signal())).toEqual({ ok: true });
    expect(paths).toEqual(['/ready']);
    const http2 = probeCheckFor(
      {
        type: 'http',
        path: '/ready',
        port: other.port,
        expectStatus: 200,
        timeoutMs: 1,
        successThreshold: 1,
        failureThreshold: 3,
      },
      workloadAt,
      exec,
    );
    expect(await http2(signal())).toEqual({ ok: true });
    expect(other.paths).toEqual(['/ready']);
    const tcp = probeCheckFor(
      { type: 'tcp', timeoutMs: 1, successThreshold: 1, failureThreshold: 3 },
      workloadAt,
      exec,
    );
    expect(await tcp(signal())).toEqual({ ok: true });
  });
});
