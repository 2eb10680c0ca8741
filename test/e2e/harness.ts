import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from '@faultline/core';
import { SPAWNS } from '@faultline/nemesis';
import { freePort } from '@faultline/test-support';

/*
 * What the end-to-end suites share: a stack in a folder of its own with its
 * own ports and short, proportionate timings, started as a user starts it
 * (`faultline stack up`), and read through the CLI and the services' logs.
 */

const run = promisify(execFile);
const CLI = path.join(REPO_ROOT, 'packages/cli/dist/main.js');
const STACK_SCRIPT = path.join(REPO_ROOT, 'scripts/stack.mjs');
export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Mosquitto too when it is installed. */
export const BROKER_KINDS = spawnSync('mosquitto', ['-h']).error === undefined ? ['aedes', 'mosquitto'] : ['aedes'];

/** One JSON-lines log record, the fields the suites read. */
type LogRecord = {
  event: string;
  message: string;
  action?: string;
  memberId?: string;
  /** The node of a pair that wrote it (both autoscaler nodes write one log). */
  node?: string;
  clusterId?: string;
  reason?: string;
  timestamp: string;
};

interface StackStatus {
  services: { name: string; pid: number | null; state: string; restarts: number }[];
  sp: { node: string; role: string; epoch: number | null; thriftPort: number }[];
  clusters: { id: string; members: { memberId: string; state: string }[] }[];
}

/** A fresh folder for a stack; as root, initdb runs as the `postgres` user, which must be able to reach it. */
export function stackDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  chmodSync(dir, 0o755);
  return dir;
}

/**
 * Eleven free ports: PostgreSQL, brokers a and b, then thrift, sync and status of sp-1 and of sp-2,
 * then the health ports of autoscaler-a and autoscaler-b.
 */
export async function stackPorts(): Promise<number[]> {
  return Promise.all(Array.from({ length: 11 }, () => freePort()));
}

/** The suites' faultline.yaml: short timings, one cluster of min = max = 3 (no scaling behind a scenario's back). */
export function stackConfig(kind: string, ports: readonly number[], extra: Record<string, unknown> = {}): object {
  const p = (i: number) => ports[i] as number;
  return {
    database: { embeddedPort: p(0) },
    brokers: {
      kind,
      nodes: [
        { name: 'a', port: p(1) },
        { name: 'b', port: p(2) },
      ],
    },
    messaging: { pingIntervalMs: 500, resubscribeIntervalMs: 2_000, republishIntervalMs: 3_000 },
    streamProcessor: {
      nodes: [
        { id: 'sp-1', thriftPort: p(3), syncPort: p(4), statusPort: p(5) },
        { id: 'sp-2', thriftPort: p(6), syncPort: p(7), statusPort: p(8) },
      ],
    },
    cep: { faultTimeoutMs: 4_000, windowMs: 20_000, summaryIntervalMs: 2_000 },
    agent: { statIntervalMs: 500 },
    autoscaler: {
      monitorIntervalMs: 1_000,
      pendingTimeoutMs: 30_000,
      backoffInitialMs: 1_000,
      nodes: [
        { id: 'autoscaler-a', healthPort: p(9) },
        { id: 'autoscaler-b', healthPort: p(10) },
      ],
    },
    clusters: [{ id: 'web', cartridgeType: 'php', min: 3, max: 3 }],
    // The web console on a port the system picks: `faultline console` tells which.
    console: { port: 0 },
    ...extra,
  };
}

/** Reading a stack in `dir`: its CLI, its services' logs, its status. */
export function stackProbe(dir: () => string) {
  // `stack status` exits 3 when the stack is degraded (a scenario breaks it on purpose): its output is the answer.
  const cli = async (...args: string[]) => {
    try {
      return (await run(process.execPath, [CLI, ...args], { cwd: dir() })).stdout.trim();
    } catch (error) {
      const failed = error as { code?: number; stdout?: string };
      if (failed.code === 3 && failed.stdout !== undefined) return failed.stdout.trim();
      throw error;
    }
  };
  const records = (service: string): LogRecord[] => {
    const file = path.join(dir(), '.faultline/logs', `${service}.jsonl`);
    if (!existsSync(file)) return [];
    return readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as LogRecord);
  };
  const waitFor = async <T>(
    probe: () => T | undefined | Promise<T | undefined>,
    what: string,
    timeoutMs = 40_000,
  ): Promise<T> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await probe();
      if (value) return value;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(200);
    }
  };
  const status = async () => JSON.parse(await cli('stack', 'status', '--json')) as StackStatus;
  const actions = () => records('autoscaler').filter((r) => r.action);
  const activeMembers = async () =>
    (await status()).clusters.flatMap((c) => c.members).filter((m) => m.state === 'Active');
  return {
    cli,
    records,
    actions,
    /**
     * Every spawn of the autoscaler, whichever rule made it: below min and
     * under load, the scaling rule's ScaleUpAction can be the one that fills
     * the gap a removed member left, before the minimum rule's turn.
     */
    spawns: () => actions().filter((a) => SPAWNS.has(a.action ?? '')),
    waitFor,
    status,
    activeMembers,
    threeActive: () =>
      waitFor(async () => ((await activeMembers()).length === 3 ? true : undefined), '3 active members'),
  };
}

/**
 * `faultline stack up --config <dir>/faultline.yaml` with `config`, resolved
 * once it says the stack is up; `detached` gives it its own process group, as
 * a terminal gives a foreground command (Ctrl-C is SIGINT to the whole group);
 * `script` starts it through scripts/stack.mjs, as `npm run stack` does.
 */
export async function startStack(
  dir: string,
  config: object,
  probe: ReturnType<typeof stackProbe>,
  options: { detached?: boolean; script?: boolean } = {},
): Promise<{ child: ChildProcess; console: () => string }> {
  const file = path.join(dir, 'faultline.yaml');
  writeFileSync(file, JSON.stringify(config));
  // `script`: through scripts/stack.mjs, what `npm run stack` runs after its build.
  const argv = options.script ? [STACK_SCRIPT, '--config', file] : [CLI, 'stack', 'up', '--config', file];
  const child = spawn(process.execPath, argv, {
    cwd: dir,
    detached: options.detached ?? false,
  });
  let output = '';
  child.stdout?.on('data', (c: Buffer) => {
    output += c.toString();
  });
  child.stderr?.on('data', (c: Buffer) => {
    output += c.toString();
  });
  await probe
    .waitFor(
      () => {
        if (child.exitCode !== null) throw new Error(`the stack exited (${child.exitCode})`);
        return output.includes('The stack is up') || undefined;
      },
      'the stack to come up',
      110_000,
    )
    .catch((error) => {
      throw new Error(`${(error as Error).message}; its console ended with:\n${output.slice(-3_000)}`);
    });
  return { child, console: () => output };
}

/**
 * The processes of a stack in `dir`: those whose working folder is `dir` or
 * below it (services, members' folders, PostgreSQL's data folder) or whose
 * command line names one of `names`.
 */
export function processesOf(
  dir: string,
  names: readonly string[] = [],
): { pid: number; cmdline: string; cwd: string }[] {
  const real = realpathSync(dir);
  const found: { pid: number; cmdline: string; cwd: string }[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cwd = readlinkSync(`/proc/${entry}/cwd`);
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
      if (cmdline === '') continue; // a zombie, already dead
      if (cwd === real || cwd.startsWith(`${real}/`) || names.some((name) => cmdline.includes(name))) {
        found.push({ pid: Number(entry), cmdline, cwd });
      }
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found;
}
