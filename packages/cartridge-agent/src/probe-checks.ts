import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { DEFAULTS, type ProbeConfig, type StartupProbeConfig } from '@faultline/core';
import type { Endpoint } from '@faultline/protocol';

/*
 * The checks a probe runs (README "Probes"): an HTTP GET, a TCP connect, a
 * command. A check only says whether it passed; its deadline is the probe
 * runner's, which aborts `signal` when it passes, and the check then lets go
 * of what it holds (closes its connection, kills its command).
 */

export type CheckOutcome = { ok: true } | { ok: false; reason: string };

/** One check; resolves with its outcome (never rejects), and gives up promptly once `signal` aborts. */
export type ProbeCheck = (signal: AbortSignal) => Promise<CheckOutcome>;

const ABORTED: CheckOutcome = { ok: false, reason: 'aborted at its deadline' };

const reasonOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

/**
 * Settles a check once: the first of its outcome and the abort wins, and
 * `release` runs whichever wins (closing what the check holds).
 */
function settleOnce(signal: AbortSignal, release: () => void) {
  let settled = false;
  let resolveCheck: (outcome: CheckOutcome) => void = () => {};
  const promise = new Promise<CheckOutcome>((resolve) => {
    resolveCheck = resolve;
  });
  const onAbort = () => done(ABORTED);
  const done = (outcome: CheckOutcome) => {
    if (settled) return;
    settled = true;
    signal.removeEventListener('abort', onAbort);
    release();
    resolveCheck(outcome);
  };
  if (signal.aborted) done(ABORTED);
  else signal.addEventListener('abort', onAbort, { once: true });
  return {
    promise,
    done,
    get settled() {
      return settled;
    },
  };
}

export interface HttpCheckOptions extends Endpoint {
  path: string;
  expectStatus: number;
}

/**
 * GET `path` on a fresh connection (no keep-alive: the connect is part of the
 * check); passes when the status line says `expectStatus`. The body is not
 * read: the connection is closed as soon as the status is known.
 */
export function httpCheck(options: HttpCheckOptions): ProbeCheck {
  return (signal) => {
    let req: http.ClientRequest | undefined;
    const check = settleOnce(signal, () => req?.destroy());
    if (check.settled) return check.promise;
    req = http.get(
      {
        host: options.host,
        port: options.port,
        path: options.path,
        agent: false,
        headers: { 'user-agent': 'faultline-agent' },
      },
      (res) => {
        const status = res.statusCode ?? 0;
        res.resume();
        check.done(
          status === options.expectStatus
            ? { ok: true }
            : { ok: false, reason: `GET ${options.path}: HTTP ${status}, expected ${options.expectStatus}` },
        );
      },
    );
    req.on('error', (error) => check.done({ ok: false, reason: `GET ${options.path}: ${error.message}` }));
    return check.promise;
  };
}

/** A TCP connect to `host:port`: passes once it is established, then closes it. */
export function tcpCheck(options: Endpoint): ProbeCheck {
  return (signal) => {
    let socket: net.Socket | undefined;
    const check = settleOnce(signal, () => socket?.destroy());
    if (check.settled) return check.promise;
    socket = net.connect({ host: options.host, port: options.port });
    socket.once('connect', () => check.done({ ok: true }));
    socket.once('error', (error) =>
      check.done({ ok: false, reason: `connect to port ${options.port}: ${error.message}` }),
    );
    return check.promise;
  };
}

export interface ExecCheckOptions {
  /** argv: the program and its arguments, run without a shell. */
  command: readonly string[];
  /** Its whole environment (the agent's own is not passed: it holds the member credential). */
  env: Readonly<Record<string, string>>;
  /** @default the agent's working folder (the member's own) */
  cwd?: string;
  /** Output (stdout and stderr) kept for the failure reason; the rest is read and dropped. */
  maxOutputBytes: number;
}

/** Descendants of a process looked at, at most (a fork bomb in a check is not walked for ever). */
const MAX_DESCENDANTS = 256;

/** The children of every thread of `pid` (Linux), space-separated; throws when it cannot be read. */
function childrenOf(pid: number): string {
  let text = '';
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      text += ` ${readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8')}`;
    } catch {
      // a thread that ended meanwhile
    }
  }
  return text;
}

/**
 * The processes `pid` started, and theirs, breadth first (Linux: the
 * `children` of each of a process's threads); none where that cannot be read.
 */
export function descendantsOf(pid: number, read: (pid: number) => string = childrenOf): number[] {
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0 && found.length < MAX_DESCENDANTS) {
    const parent = queue.shift() as number;
    let text: string;
    try {
      text = read(parent);
    } catch {
      continue;
    }
    for (const word of text.split(' ')) {
      const child = Number(word);
      if (!Number.isSafeInteger(child) || child <= 1 || found.includes(child)) continue;
      found.push(child);
      queue.push(child);
      if (found.length >= MAX_DESCENDANTS) break;
    }
  }
  return found;
}

function sendSignal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // gone meanwhile, or not ours
  }
}

/**
 * Stops `pid` and everything it started (SIGSTOP, walked again until nothing
 * new turns up, at most a few times: a stopped process forks no more), and
 * returns the descendants found, to be killed with it. Read from a tree that
 * runs, the list could miss a process forked meanwhile.
 */
function freezeTree(pid: number): number[] {
  sendSignal(pid, 'SIGSTOP');
  const known = new Set<number>();
  for (let round = 0; round < 4; round++) {
    const fresh = descendantsOf(pid).filter((p) => !known.has(p));
    if (fresh.length === 0) break;
    for (const p of fresh) {
      sendSignal(p, 'SIGSTOP');
      known.add(p);
    }
  }
  return [...known];
}

/**
 * Runs `command` as the agent's own user (the member's) in its folder; passes
 * on exit 0. Its output is read, the first `maxOutputBytes` kept for the
 * failure reason. At the deadline it is killed (SIGKILL) and its pipes closed,
 * so a child of it that holds them keeps nothing waiting. It stays in the
 * member's process group: a member terminated mid-check takes it along.
 */
export function execCheck(options: ExecCheckOptions): ProbeCheck {
  const [program, ...args] = options.command;
  return (signal) => {
    let child: ChildProcess | undefined;
    const release = () => {
      if (child && child.exitCode === null && child.signalCode === null) {
        // What it started goes too, found before it dies (its orphans would leave its tree): a check
        // killed at its deadline leaves nothing running in the member.
        const tree = child.pid === undefined ? [] : freezeTree(child.pid);
        child.kill('SIGKILL');
        for (const pid of tree) sendSignal(pid, 'SIGKILL');
      }
      child?.stdout?.destroy();
      child?.stderr?.destroy();
    };
    const check = settleOnce(signal, release);
    if (check.settled) return check.promise;
    if (program === undefined) {
      check.done({ ok: false, reason: 'no command' });
      return check.promise;
    }
    const output: Buffer[] = [];
    let kept = 0;
    const keep = (chunk: Buffer) => {
      if (kept >= options.maxOutputBytes) return;
      const part = chunk.subarray(0, options.maxOutputBytes - kept);
      kept += part.length;
      output.push(part);
    };
    try {
      child = spawn(program, args, {
        env: { ...options.env },
        stdio: ['ignore', 'pipe', 'pipe'],
        shell: false,
        windowsHide: true,
        ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
      });
    } catch (error) {
      check.done({ ok: false, reason: `${program}: ${reasonOf(error)}` });
      return check.promise;
    }
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    child.once('error', (error) => check.done({ ok: false, reason: `${program}: ${error.message}` }));
    // A pass at its exit: a child of the command that keeps the pipes open must not hold it back. A
    // failure once its output is read too (its pipes closed), for the reason; the deadline bounds that.
    child.once('exit', (code) => {
      if (code === 0) check.done({ ok: true });
    });
    child.once('close', (code, exitSignal) => {
      if (code === 0) return check.done({ ok: true });
      const text = Buffer.concat(output).toString('utf8').trim();
      const how = code === null ? `killed by ${exitSignal}` : `exit ${code}`;
      check.done({ ok: false, reason: `${program}: ${how}${text ? `: ${text}` : ''}` });
    });
    return check.promise;
  };
}

/** The variables of the agent's environment an exec probe gets, besides the member's ids and workload address. */
const EXEC_PASSED_ENV: readonly string[] = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'LC_CTYPE', 'LC_MESSAGES', 'TZ'];

/**
 * An exec probe's environment: `PATH`, `HOME`, the locale and time zone of
 * `base`, and what a check may want to know (its member and cluster, where
 * its workload listens). Never the member credential, nor anything else the
 * agent was given.
 */
export function execProbeEnv(
  base: NodeJS.ProcessEnv,
  about: { memberId: string; clusterId: string; workload: Endpoint },
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const key of EXEC_PASSED_ENV) {
    const value = base[key];
    if (value !== undefined && value !== '') env[key] = value;
  }
  return {
    ...env,
    FAULTLINE_MEMBER_ID: about.memberId,
    FAULTLINE_CLUSTER_ID: about.clusterId,
    FAULTLINE_WORKLOAD_HOST: about.workload.host,
    FAULTLINE_WORKLOAD_PORT: String(about.workload.port),
  };
}

/** The check a configured probe runs against `workload` (its host always; its port unless the probe names one). */
export function probeCheckFor(
  probe: ProbeConfig | StartupProbeConfig,
  workload: Endpoint,
  exec: Pick<ExecCheckOptions, 'env' | 'cwd'> & { maxOutputBytes?: number },
): ProbeCheck {
  switch (probe.type) {
    case 'http':
      return httpCheck({
        host: workload.host,
        port: probe.port ?? workload.port,
        // Resolved by the schema; the fallback only for a value built by hand.
        path: probe.path ?? DEFAULTS.probes.livenessPath,
        expectStatus: probe.expectStatus,
      });
    case 'tcp':
      return tcpCheck({ host: workload.host, port: probe.port ?? workload.port });
    case 'exec':
      return execCheck({
        command: probe.command,
        env: exec.env,
        ...(exec.cwd === undefined ? {} : { cwd: exec.cwd }),
        maxOutputBytes: exec.maxOutputBytes ?? DEFAULTS.probes.execMaxOutputBytes,
      });
  }
}
