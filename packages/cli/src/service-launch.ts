import type { ChildProcess } from 'node:child_process';
import { SUPERVISED_ENV, type TimerHandle } from '@faultline/core';
import { groupSince } from './process-table.js';
import { type ForwardedOutput, forwardOutput, type OutputFile } from './service-output.js';
import { type ResolvedServiceSpec, serviceEnv } from './service-spec.js';
import type { ResolvedSupervisorOptions } from './supervisor-options.js';

/** How a process ended; both null when it never ran (its spawn failed). */
export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** One process of a service: the supervisor's child, alive until `exited` is set. */
export interface Launch {
  /** Undefined when spawn() itself threw. */
  child: ChildProcess | undefined;
  pid: number | undefined;
  /** Set as soon as it has exited (or failed to spawn): no signal may go to its pid any more. */
  died: ExitStatus | undefined;
  /** Set once it has exited and its output has been read (or `outputDrainMs` passed): what the supervisor acts on. */
  exited: ExitStatus | undefined;
  whenExited: Promise<void>;
  /** The last lines it wrote to stderr: the reason it gives when it fails. */
  stderr: string[];
  /** Signals still to come of a stop or a kill under way: cleared when it exits. */
  timers: TimerHandle[];
}

export interface LaunchOptions {
  spec: ResolvedServiceSpec;
  options: ResolvedSupervisorOptions;
  output: OutputFile | undefined;
  /** Called once, when `exited` has been set. */
  onExited: (launch: Launch) => void;
}

/**
 * Starts one process of a service and follows it to its end. Its death is
 * reported only once its output has been read: node emits 'exit' before the
 * last of stdout and stderr may have been read, and a service's last line on
 * stderr is its reason (ServiceFailedError). So the end is 'close' (both
 * pipes ended), or `outputDrainMs` after 'exit' when something that outlived
 * it holds them open. A spawn that throws or fails is reported as an exit
 * with neither code nor signal, so the usual restart rule applies to it.
 * Nothing here throws into the caller's event listeners: a failed write of
 * the records is logged (`supervisor.records_failed`).
 */
export function launchService({ spec, options, output, onExited }: LaunchOptions): Launch {
  const { clock, logger: log, table, records } = options;
  let resolveExited: () => void = () => {};
  const launch: Launch = {
    child: undefined,
    pid: undefined,
    died: undefined,
    exited: undefined,
    whenExited: new Promise((resolve) => {
      resolveExited = resolve;
    }),
    stderr: [],
    timers: [],
  };
  const recordSafely = (what: string, act: () => void) => {
    try {
      act();
    } catch (error) {
      log.error('cannot update the service records: a later stack up may not find this service', {
        event: 'supervisor.records_failed',
        service: spec.name,
        action: what,
        error,
      });
    }
  };
  let drain: TimerHandle | undefined;
  let outputs: ForwardedOutput[] = [];
  const finish = () => {
    if (launch.exited) return;
    clock.clearTimeout(drain);
    for (const forwarded of outputs) forwarded.flush();
    for (const timer of launch.timers) clock.clearTimeout(timer);
    launch.timers = [];
    launch.died ??= { code: null, signal: null };
    launch.exited = launch.died;
    const { pid } = launch;
    if (pid !== undefined) recordSafely('remove', () => records?.remove(spec.name, pid));
    resolveExited();
    onExited(launch);
  };
  const spawnFailed = (error: unknown) =>
    log.error('service failed to spawn', { event: 'supervisor.service_spawn_failed', service: spec.name, error });

  let child: ChildProcess;
  try {
    child = options.spawn(spec.command, spec.args, {
      env: { ...serviceEnv(spec, process.env), [SUPERVISED_ENV]: '1' },
      // stdin: a pipe the supervisor holds open and never writes; its end tells the service the supervisor is gone.
      stdio: ['pipe', 'pipe', 'pipe'],
      // Its own process group: Ctrl-C in the terminal reaches the supervisor
      // only, which then stops the services in order (members first).
      detached: true,
      ...(spec.cwd === undefined ? {} : { cwd: spec.cwd }),
      ...(spec.uid === undefined ? {} : { uid: spec.uid }),
      ...(spec.gid === undefined ? {} : { gid: spec.gid }),
    });
  } catch (error) {
    // spawn() throws for some failures (EPERM setting the uid, EINVAL) where it emits others (ENOENT).
    spawnFailed(error);
    launch.died = { code: null, signal: null };
    queueMicrotask(finish);
    return launch;
  }
  launch.child = child;
  launch.pid = child.pid;
  const startTime = child.pid === undefined ? undefined : table.stat(child.pid)?.startTime;
  // Never written: an error on it (the service gone) is no error of the supervisor's.
  child.stdin?.on('error', () => {});
  const to = {
    name: spec.name,
    outputFile: spec.outputFile,
    console: spec.console,
    write: options.write,
    file: output,
  };
  outputs = [forwardOutput(child.stdout, to), forwardOutput(child.stderr, { ...to, tail: launch.stderr })];
  const exited = (code: number | null, signal: NodeJS.Signals | null) => {
    if (launch.died) return;
    launch.died = { code, signal };
    const { pid } = launch;
    // What is left of its group goes with it. Each by pid, and only processes no older than the
    // service; none if its pid, reaped already, names another process: that one may lead a group
    // of the same number.
    if (pid !== undefined && !table.stat(pid)) {
      for (const member of groupSince(table, pid, startTime ?? 0)) table.kill(member, 'SIGKILL');
    }
    drain = clock.setTimeout(finish, options.outputDrainMs);
  };
  child.on('error', (error) => {
    spawnFailed(error);
    // A spawn that failed (ENOENT, EACCES) has no process and never emits 'exit'.
    if (child.pid === undefined) exited(null, null);
  });
  child.on('exit', exited);
  child.on('close', (code: number | null, signal: NodeJS.Signals | null) => {
    exited(code, signal);
    finish();
  });
  const { pid } = launch;
  if (pid !== undefined) {
    recordSafely('add', () => records?.add(spec.name, pid, spec.stopSignals[0] ?? 'SIGTERM'));
  }
  return launch;
}
