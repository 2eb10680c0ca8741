import { type ChildProcess, execFile, spawn } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  mkdtempSync,
  openSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type pg from 'pg';
import { check, harmedAt, lastHealedAt, recoveryProblems } from './checker.js';
import { Injector } from './inject.js';
import type { InjectedFault, Observation, Snapshot, Violation } from './model.js';
import {
  type LiveRow,
  openRegistry,
  readHistory,
  readLive,
  serviceReadySince,
  stackPaths,
  takeSnapshot,
} from './observe.js';
import { signalRef, stackProcs } from './procs.js';
import { formatReport } from './report.js';
import { generateSchedule, type PlannedFault } from './schedule.js';
import { clustersFor, PORT_COUNT, quietBound, stackConfig, TIMINGS, type Timings } from './stack-config.js';

/** The checkout: packages/nemesis/{src,dist}/run.* is three folders down. */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const CLI = path.join(REPO_ROOT, 'packages/cli/dist/main.js');
const run = promisify(execFile);

/** How long the stack has to come up, and its members to become Active. */
const STACK_UP_TIMEOUT_MS = 150_000;
const MEMBERS_UP_TIMEOUT_MS = 90_000;
/** A killed service not logged ready again within this is a fault that never healed. */
const HEAL_TIMEOUT_MS = 60_000;
/** `stack down` (members terminated, services stopped, PostgreSQL last) gets this long. */
const STACK_DOWN_TIMEOUT_MS = 90_000;
/** How often the registry is read (member targets) and snapshots are taken while waiting for recovery. */
const POLL_MS = 1_000;

export interface NemesisOptions {
  minutes: number;
  seed: string;
  brokerKind?: 'aedes' | 'mosquitto';
  clusters?: 1 | 2;
  /** Keep the stack's folder even when nothing was found. */
  keep?: boolean;
  /** Progress lines. @default stdout */
  write?: (line: string) => void;
  /** Aborts the schedule: the stack is then stopped and the run resolves (with what was seen). */
  signal?: AbortSignal;
  timings?: Timings;
}

export interface NemesisResult {
  seed: string;
  dir: string;
  kept: boolean;
  aborted: boolean;
  schedule: PlannedFault[];
  observation: Observation;
  violations: Violation[];
  report: string;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, Math.max(0, ms));
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

/** Distinct free loopback ports. */
async function freePorts(n: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < n; i += 1) {
      const server = net.createServer();
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => resolve());
      });
      servers.push(server);
    }
    return servers.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  }
}

/** SIGCONT then SIGKILL to every process of the stack in `dir`, synchronously (the last resort, also on exit). */
export function killStackProcesses(dir: string): number {
  let count = 0;
  let procs: ReturnType<typeof stackProcs> = [];
  try {
    procs = stackProcs(dir);
  } catch {
    return 0;
  }
  for (const p of procs) {
    const ref = { pid: p.pid, startTime: p.startTime };
    signalRef(ref, 'SIGCONT');
    if (signalRef(ref, 'SIGKILL')) count += 1;
  }
  return count;
}

/**
 * One nemesis run: a stack of its own in a fresh folder, the seed's fault
 * schedule against it, the quiet period, the checker. The stack is stopped
 * whatever happens (abort, exception); the folder is removed unless kept or
 * a violation was found.
 */
export async function runNemesis(options: NemesisOptions): Promise<NemesisResult> {
  const write = options.write ?? ((line: string) => process.stdout.write(`${line}\n`));
  const timings = options.timings ?? TIMINGS;
  const kind = options.brokerKind ?? 'aedes';
  const clusters = clustersFor(options.clusters ?? 1);
  const durationMs = Math.round(options.minutes * 60_000);
  const bound = quietBound(timings);
  const schedule = generateSchedule(options.seed, { durationMs });
  const signal = options.signal;

  const dir = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'faultline-nemesis-')));
  // As root, initdb runs as the postgres user, which must reach the folder.
  chmodSync(dir, 0o755);
  const paths = stackPaths(dir);
  const ports = await freePorts(PORT_COUNT);
  const config = stackConfig(kind, ports, clusters, timings);
  const configFile = path.join(dir, 'faultline.yaml');
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  const spNodes = [
    { id: 'sp-1', statusPort: ports[5] as number },
    { id: 'sp-2', statusPort: ports[8] as number },
  ];
  const autoscalerNodes = [
    { id: 'autoscaler-a', healthPort: ports[9] as number },
    { id: 'autoscaler-b', healthPort: ports[10] as number },
  ];
  const header = `nemesis: seed ${options.seed}, ${options.minutes} min of faults, ${kind} brokers, clusters ${clusters
    .map((c) => `${c.id} (min = max = ${c.min})`)
    .join(', ')}; stack in ${dir}`;
  write(header);
  write(
    `nemesis: repeat with: npm run nemesis -- --minutes ${options.minutes} --seed ${options.seed} --broker-kind ${kind}${
      options.clusters === 2 ? ' --clusters 2' : ''
    }`,
  );

  const consoleFile = path.join(dir, 'stack-console.log');
  const consoleFd = openSync(consoleFile, 'a', 0o600);
  let stack: ChildProcess | undefined;
  let stackExited: Promise<void> = Promise.resolve();
  let pool: pg.Pool | undefined;
  let injector: Injector | undefined;
  let poller: NodeJS.Timeout | undefined;
  const faults: InjectedFault[] = [];
  const snapshots: Snapshot[] = [];
  let live: LiveRow[] = [];
  const scheduleStartedAt = Date.now();
  let scheduleEndedAt = scheduleStartedAt;
  let downAt = scheduleStartedAt;
  let leftoverAfterDown: { pid: number; cmdline: string }[] = [];
  let history: Awaited<ReturnType<typeof readHistory>> = { actions: [], context: [], tableRead: false };
  let recovered: Snapshot | undefined;
  let started = false;
  let scheduleOrigin: number | undefined;

  const stopStack = async () => {
    injector?.continueAll();
    if (poller) clearInterval(poller);
    if (stack && stack.exitCode === null && stack.signalCode === null) {
      write('nemesis: faultline stack down');
      await run(process.execPath, [CLI, 'stack', 'down'], { cwd: dir, timeout: 20_000 }).catch(() => {
        stack?.kill('SIGTERM'); // no control endpoint yet (still starting): the supervisor's own stop
      });
      const giveUp = new AbortController();
      await Promise.race([stackExited, sleep(STACK_DOWN_TIMEOUT_MS, giveUp.signal)]);
      giveUp.abort(); // no timer left to keep the process alive
      if (stack.exitCode === null && stack.signalCode === null) {
        write('nemesis: the stack did not stop in time; killing its processes');
      }
    }
    downAt = Date.now();
    await sleep(1_000); // processes signalled on the way down finish exiting
    leftoverAfterDown = stackProcs(dir).map((p) => ({ pid: p.pid, cmdline: p.cmdline }));
    const killed = killStackProcesses(dir);
    if (killed > 0) write(`nemesis: killed ${killed} process(es) left behind`);
    await pool?.end().catch(() => {});
    pool = undefined;
  };

  try {
    stack = spawn(process.execPath, [CLI, 'stack', 'up', '--config', configFile], {
      cwd: dir,
      detached: true, // its own process group: a Ctrl-C reaches the nemesis, which stops the stack in order
      stdio: ['ignore', consoleFd, consoleFd],
    });
    const child = stack;
    stackExited = new Promise((resolve) => child.once('exit', () => resolve()));
    write(`nemesis: starting the stack (console: ${consoleFile})`);
    const upBy = Date.now() + STACK_UP_TIMEOUT_MS;
    while (!readFileSync(consoleFile, 'utf8').includes('The stack is up')) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error('the stack exited while starting');
      if (Date.now() > upBy || signal?.aborted) throw new Error('the stack did not come up in time');
      await sleep(250);
    }
    pool = openRegistry(paths, ports[0] as number);
    const registry = pool;
    const membersBy = Date.now() + MEMBERS_UP_TIMEOUT_MS;
    for (;;) {
      const s = await takeSnapshot(registry, paths).catch(() => undefined);
      if (s && recoveryProblems(s, clusters, new Set()).length === 0) break;
      if (Date.now() > membersBy || signal?.aborted) throw new Error('the members did not become Active in time');
      await sleep(500);
    }
    started = true;
    live = await readLive(registry);
    poller = setInterval(() => {
      readLive(registry).then(
        (rows) => {
          live = rows;
        },
        () => {}, // paused or restarting: keep the last answer
      );
    }, POLL_MS);
    injector = new Injector({ paths, spNodes, autoscalerNodes, liveMembers: () => live });

    // The schedule.
    const origin = Date.now();
    scheduleOrigin = origin;
    write(`nemesis: stack up, members Active; ${schedule.length} faults over ${(durationMs / 1000).toFixed(0)} s`);
    for (const planned of schedule) {
      await sleep(origin + planned.atMs - Date.now(), signal);
      if (signal?.aborted) break;
      const fault = await injector.inject(planned);
      faults.push(fault);
      write(
        `nemesis: #${fault.id} ${fault.kind}${fault.target ? ` ${fault.target}` : ''}: ${
          fault.skipped ?? `${fault.targets.join(', ')} (pid ${fault.pids.join(', ')})`
        }`,
      );
    }
    await sleep(origin + durationMs - Date.now(), signal);
    scheduleEndedAt = Date.now();

    // Heals: pauses end on their timers; killed services must be logged ready again by the supervisor.
    const healBy = Date.now() + HEAL_TIMEOUT_MS;
    for (;;) {
      for (const f of faults) {
        if (f.skipped !== undefined || f.healedAt !== null) continue;
        if (f.kind === 'kill-sp' || f.kind === 'kill-broker' || f.kind === 'kill-autoscaler') {
          const back = f.targets.map((s) => serviceReadySince(paths, s, f.at));
          if (back.every((t) => t !== undefined)) f.healedAt = Math.max(...(back as number[]));
        }
      }
      const open = faults.filter((f) => f.skipped === undefined && f.healedAt === null);
      if (signal?.aborted || (open.length === 0 && injector.pausesPending === 0) || Date.now() > healBy) break;
      await sleep(250, signal);
    }
    injector.continueAll();

    // The quiet period: snapshots until recovered, or the bound has passed.
    if (!signal?.aborted) {
      const anchor = lastHealedAt({ faults, scheduleEndedAt });
      const deadline = anchor + bound.totalMs;
      const harmed = new Set(harmedAt(faults).keys());
      write(`nemesis: schedule over; waiting for recovery (bound ${(bound.totalMs / 1000).toFixed(1)} s)`);
      while (!signal?.aborted) {
        const s = await takeSnapshot(registry, paths).catch(() => undefined);
        if (s) {
          snapshots.push(s);
          if (s.at >= anchor && recoveryProblems(s, clusters, harmed).length === 0) {
            recovered = s;
            break;
          }
        }
        if (Date.now() > deadline) break;
        await sleep(POLL_MS, signal);
      }
      // Settle: a late decision (a false fault, a second spawn) would show now; then the final snapshot.
      await sleep(3 * timings.monitorIntervalMs + 2_000, signal);
      const last = await takeSnapshot(registry, paths).catch(() => undefined);
      if (last) snapshots.push(last);
      try {
        const { stdout } = await run(process.execPath, [CLI, 'stack', 'status', '--json'], {
          cwd: dir,
          timeout: 15_000,
        }).catch((error: { code?: number; stdout?: string }) => {
          // Exit 3: a degraded stack (after a nemesis run, as likely as not); its status is the answer.
          if (error.code === 3 && error.stdout !== undefined) return { stdout: error.stdout };
          throw error;
        });
        writeFileSync(path.join(dir, 'final-status.json'), stdout);
      } catch {
        // the status is for the folder only
      }
    }
    history = await readHistory(registry, paths, ['autoscaler', 'sp-1', 'sp-2', 'supervisor']);
  } finally {
    await stopStack();
    closeSync(consoleFd);
  }

  const observation: Observation = {
    seed: options.seed,
    clusters,
    boundMs: bound.totalMs,
    scheduleStartedAt: scheduleOrigin ?? scheduleStartedAt,
    scheduleEndedAt,
    faults,
    actions: history.actions,
    actionTableRead: history.tableRead,
    snapshots,
    downAt,
    leftoverAfterDown,
    context: history.context,
  };
  const aborted = signal?.aborted === true || !started;
  // An aborted run judges only what cannot depend on the quiet period it did not have.
  const violations = aborted
    ? check(observation).filter(
        (v) => v.invariant === 'untouched' || v.invariant === 'once' || v.invariant === 'orphans',
      )
    : check(observation);
  if (!history.tableRead) write('nemesis: the action table could not be read; decisions are from the log only');
  const report = formatReport({
    observation,
    schedule,
    violations,
    header: aborted ? `${header} (ABORTED)` : header,
    boundParts: bound.parts,
    recoveredAt: recovered?.at,
  });
  const kept = options.keep === true || violations.length > 0 || aborted;
  if (kept) {
    writeFileSync(path.join(dir, 'nemesis-report.txt'), `${report}\n`);
    writeFileSync(
      path.join(dir, 'nemesis-observation.json'),
      JSON.stringify({ schedule, observation, violations }, null, 2),
    );
  } else {
    rmSync(dir, { recursive: true, force: true });
  }
  return { seed: options.seed, dir, kept, aborted, schedule, observation, violations, report };
}
