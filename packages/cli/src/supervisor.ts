import { type Clock, type Logger, sleep, type TimerHandle } from '@faultline/core';
import { ServiceFailedError, ServiceNotReadyError } from './errors.js';
import { LivenessMonitor, type Probe, probeWithin } from './liveness.js';
import { killTree } from './process-table.js';
import { RestartBackoff } from './restart-backoff.js';
import { type Launch, launchService } from './service-launch.js';
import { OutputFile, reasonOf } from './service-output.js';
import {
  type ResolvedServiceSpec,
  resolveServiceSpec,
  type ServiceSpec,
  type ServiceState,
  type ServiceView,
} from './service-spec.js';
import {
  type ResolvedSupervisorOptions,
  resolveSupervisorOptions,
  type SupervisorOptions,
} from './supervisor-options.js';

export type { ServiceSpec, ServiceState, ServiceView } from './service-spec.js';

interface Running {
  spec: ResolvedServiceSpec;
  state: ServiceState;
  restarts: number;
  /** Until its first ready: a death fails start(), it is not restarted. */
  initial: boolean;
  backoff: RestartBackoff;
  launch: Launch | undefined;
  liveness: LivenessMonitor | undefined;
  restartTimer: TimerHandle | undefined;
  output: OutputFile | undefined;
}

/**
 * Starts the platform services as child processes in order, each checked
 * ready before the next, and keeps them running:
 * - a service that dies is started again after a backoff (restart-backoff.ts);
 *   one that exits with a fatal code (2: bad configuration) is not, and
 *   `onFatal` tells the stack to stop; a death is acted on once the
 *   process's output has been read (service-launch.ts): its last line is its reason;
 * - a ready service is probed for liveness (liveness.ts); one that stops
 *   answering (SIGSTOP, a blocked event loop) is killed and restarted; one
 *   that makes progress without serving (PostgreSQL in crash recovery) is
 *   left to finish: no ready deadline, no liveness failure meanwhile;
 * - a service that must go gets its kill signals first (PostgreSQL: SIGINT,
 *   SIGQUIT), SIGKILL last, to its children too when they left its group;
 * - every service runs in a process group of its own, so Ctrl-C reaches the
 *   supervisor only, with a pipe on stdin that only the supervisor holds, so
 *   the service stops itself when the supervisor dies (runMain), even of
 *   SIGKILL; its pid and start time are recorded (service-records.ts) for the
 *   next supervisor to stop it if it does not.
 * Stops them in reverse order. Every delay runs on the injected Clock.
 */
export class Supervisor {
  private readonly services = new Map<string, Running>();
  private stopping = false;
  private readonly options: ResolvedSupervisorOptions;
  private readonly clock: Clock;
  private readonly log: Logger;

  constructor(options: SupervisorOptions) {
    this.options = resolveSupervisorOptions(options);
    this.clock = this.options.clock;
    this.log = this.options.logger;
  }

  /**
   * Starts a service and resolves once it is ready. Rejects with a
   * ServiceFailedError when it exits with a fatal code, a
   * ServiceNotReadyError when it exits otherwise or is not ready in time.
   */
  async start(input: ServiceSpec): Promise<void> {
    const spec = resolveServiceSpec(input);
    const { restartInitialMs: initialMs, restartMaxMs: maxMs, restartResetMs: resetMs } = this.options;
    const running: Running = {
      spec,
      state: 'starting',
      restarts: 0,
      initial: true,
      backoff: new RestartBackoff({ initialMs, maxMs, resetMs }),
      launch: undefined,
      liveness: undefined,
      restartTimer: undefined,
      output: spec.outputFile ? new OutputFile(spec.outputFile, this.log, spec.name) : undefined,
    };
    this.services.set(spec.name, running);
    const launch = this.launch(running);
    try {
      await this.untilReady(running, launch);
    } catch (error) {
      if (running.state !== 'stopped') running.state = 'failed';
      throw error;
    }
    this.becameUp(running, launch);
  }

  /** pid of a service's process, if it runs. */
  pid(name: string): number | undefined {
    const launch = this.services.get(name)?.launch;
    return launch && !launch.died ? launch.pid : undefined;
  }

  /** Sends a signal to a service's process (chaos); a killed one is restarted by the usual rule. */
  signal(name: string, signal: NodeJS.Signals): boolean {
    const pid = this.pid(name);
    return pid !== undefined && this.options.table.kill(pid, signal);
  }

  list(): ServiceView[] {
    return [...this.services.values()].map((r) => ({
      name: r.spec.name,
      pid: this.pid(r.spec.name),
      state: r.state,
      restarts: r.restarts,
    }));
  }

  /**
   * Stops every service, last started first, but those in `keep`: nothing
   * is restarted or probed from now on. A second call stops what the first kept.
   */
  async stopAll(options: { keep?: readonly string[] } = {}): Promise<void> {
    this.stopping = true;
    for (const running of this.services.values()) {
      running.liveness?.close();
      this.clock.clearTimeout(running.restartTimer);
    }
    for (const running of [...this.services.values()].reverse()) {
      if (!options.keep?.includes(running.spec.name)) await this.halt(running);
    }
  }

  /** Stops one service for good (no restart). */
  async stop(name: string): Promise<void> {
    const running = this.services.get(name);
    if (running) await this.halt(running);
  }

  /** Its stop signals in turn, then SIGKILL; resolves once it has exited and its output is written. */
  private async halt(running: Running): Promise<void> {
    running.state = 'stopped';
    running.liveness?.close();
    this.clock.clearTimeout(running.restartTimer);
    const launch = running.launch;
    if (launch && !launch.exited) {
      this.escalate(running, launch, running.spec.stopSignals);
      await launch.whenExited;
    }
    running.output?.end();
  }

  /**
   * SIGCONT to its group (a stopped process must handle the rest), then
   * `signals` in turn, `stopGraceMs` apart, then SIGKILL. Does not wait; the
   * signals still to come are dropped when it exits (service-launch.ts).
   */
  private escalate(running: Running, launch: Launch, signals: readonly NodeJS.Signals[]): void {
    const { pid } = launch;
    if (launch.died || pid === undefined) return;
    const { table, stopGraceMs } = this.options;
    for (const timer of launch.timers) this.clock.clearTimeout(timer);
    const [first, ...later] = signals;
    if (first === undefined) {
      launch.timers = [];
      this.kill(running, launch);
      return;
    }
    table.kill(-pid, 'SIGCONT');
    table.kill(pid, first);
    launch.timers = [...later, 'SIGKILL' as const].map((signal, i) =>
      this.clock.setTimeout(
        () => (signal === 'SIGKILL' ? this.kill(running, launch) : table.kill(pid, signal)),
        (i + 1) * stopGraceMs,
      ),
    );
  }

  /**
   * SIGKILL to the process's group (it leads its own; a stopped process dies
   * of it too), and first to its children when they left the group (PostgreSQL's backends).
   */
  private kill(running: Running, launch: Launch): void {
    const { pid } = launch;
    if (launch.died || pid === undefined) return;
    const { table } = this.options;
    if (running.spec.killChildren) killTree(table, pid);
    else if (!table.kill(-pid, 'SIGKILL')) launch.child?.kill('SIGKILL');
  }

  private launch(running: Running): Launch {
    const launch = launchService({
      spec: running.spec,
      options: this.options,
      output: running.output,
      onExited: (ended) => this.exited(running, ended),
    });
    running.launch = launch;
    return launch;
  }

  private exited(running: Running, launch: Launch): void {
    const { spec } = running;
    const { code, signal } = launch.exited ?? { code: null, signal: null };
    if (running.launch !== launch) return;
    running.liveness?.close();
    running.liveness = undefined;
    // Stopped on purpose, or dead before its first ready (start() reports that).
    if (this.stopping || running.state === 'stopped' || running.initial) return;
    const reason = reasonOf(launch.stderr);
    if (code !== null && spec.fatalExitCodes.includes(code)) {
      running.state = 'failed';
      this.log.error('service exited with a fatal code: not restarted, the stack stops', {
        event: 'supervisor.service_failed',
        service: spec.name,
        code,
        reason,
      });
      this.options.onFatal(new ServiceFailedError(spec.name, code, reason));
      return;
    }
    if (!spec.restart) {
      running.state = 'failed';
      this.log.error('service exited', { event: 'supervisor.service_exited', service: spec.name, code, signal });
      return;
    }
    const delayMs = running.backoff.died(this.clock.monotonicNow());
    running.state = 'restarting';
    running.restarts += 1;
    this.log.warn('service died, restarting', {
      event: 'supervisor.service_restarting',
      service: spec.name,
      code,
      signal,
      delayMs,
      restarts: running.restarts,
      ...(reason ? { reason } : {}),
    });
    running.restartTimer = this.clock.setTimeout(() => {
      this.relaunch(running).catch((error: unknown) =>
        this.log.error('service restart failed', { event: 'supervisor.relaunch_failed', service: spec.name, error }),
      );
    }, delayMs);
  }

  private async relaunch(running: Running): Promise<void> {
    running.restartTimer = undefined;
    if (this.stopping || running.state !== 'restarting') return;
    running.state = 'starting';
    const launch = this.launch(running);
    try {
      await this.untilReady(running, launch);
    } catch (error) {
      // Exited meanwhile: its exit has already decided what comes next (a restart, the stack stopping).
      if (running.launch !== launch || launch.exited || running.state !== 'starting') return;
      this.log.error('service did not come back: stopped, to be restarted', {
        event: 'supervisor.service_not_back',
        service: running.spec.name,
        error,
      });
      this.escalate(running, launch, running.spec.killSignals);
      return;
    }
    this.becameUp(running, launch);
  }

  private becameUp(running: Running, launch: Launch): void {
    if (running.launch !== launch || launch.exited || running.state !== 'starting') return;
    const { spec } = running;
    running.state = 'up';
    running.initial = false;
    running.backoff.up(this.clock.monotonicNow());
    this.log.info('service ready', { event: 'supervisor.service_ready', service: spec.name, pid: launch.pid });
    if (this.stopping) return;
    const { livenessIntervalMs, livenessTimeoutMs, livenessFailureThreshold } = this.options;
    const probe = spec.live ?? spec.ready;
    const { starting } = spec;
    running.liveness = new LivenessMonitor({
      clock: this.clock,
      // A stopped process (SIGSTOP, state T) fails without being asked: its kernel may still accept
      // connections for it, and asking would cost a service that logs every connection a line each time.
      probe: this.unlessStopped(launch, probe),
      ...(starting ? { starting: this.unlessStopped(launch, starting) } : {}),
      intervalMs: livenessIntervalMs,
      timeoutMs: livenessTimeoutMs,
      failureThreshold: livenessFailureThreshold,
      onFailure: (failures) =>
        this.log.warn('liveness probe failed', {
          event: 'supervisor.liveness_failed',
          service: spec.name,
          failures,
          threshold: livenessFailureThreshold,
        }),
      onProgress: () => this.recovering(running, launch),
      onDead: (failures) => {
        this.log.error('service does not answer: killed, to be restarted', {
          event: 'supervisor.service_hung',
          service: spec.name,
          pid: launch.pid,
          failures,
          signals: [...spec.killSignals, 'SIGKILL'],
        });
        this.escalate(running, launch, spec.killSignals);
      },
    });
    running.liveness.start();
  }

  /** `probe`, failing at once while the process is stopped (SIGSTOP): a stopped process makes no progress either. */
  private unlessStopped(launch: Launch, probe: Probe): Probe {
    return async (signal) => {
      const state = launch.pid === undefined || launch.died ? undefined : this.options.table.stat(launch.pid)?.state;
      return state !== 'T' && state !== 't' && probe(signal);
    };
  }

  private recovering(running: Running, launch: Launch): void {
    this.log.warn('service is not serving but makes progress (recovering): no deadline while it does', {
      event: 'supervisor.service_recovering',
      service: running.spec.name,
      pid: launch.pid,
    });
  }

  /**
   * Probes `ready` every `readyPollMs` until it answers. The deadline
   * (`readyTimeoutMs`, the spec's or the supervisor's) counts from the last
   * sign of progress: a service whose `starting` answers (PostgreSQL replaying
   * its WAL after a crash) is never cut off while it does.
   */
  private async untilReady(running: Running, launch: Launch): Promise<void> {
    const { readyPollMs, livenessTimeoutMs } = this.options;
    const { spec } = running;
    const timeoutMs = spec.readyTimeoutMs ?? this.options.readyTimeoutMs;
    const starting = spec.starting ? this.unlessStopped(launch, spec.starting) : undefined;
    let deadline = this.clock.monotonicNow() + timeoutMs;
    let progressing = false;
    for (;;) {
      if (running.launch !== launch || running.state === 'stopped') {
        throw new ServiceNotReadyError(spec.name, 'was stopped before it was ready');
      }
      if (launch.exited) throw this.exitError(running, launch);
      if (await probeWithin(this.clock, spec.ready, livenessTimeoutMs)) {
        // Ready, but exited in the same instant: not ready after all.
        if (launch.exited) throw this.exitError(running, launch);
        return;
      }
      if (starting && !launch.exited && (await probeWithin(this.clock, starting, livenessTimeoutMs))) {
        deadline = this.clock.monotonicNow() + timeoutMs;
        if (!progressing) this.recovering(running, launch);
        progressing = true;
      }
      if (this.clock.monotonicNow() >= deadline) break;
      await sleep(this.clock, readyPollMs);
    }
    throw new ServiceNotReadyError(
      spec.name,
      `was not ready within ${timeoutMs} ms${progressing ? ' of its last progress' : ''}`,
    );
  }

  private exitError(running: Running, launch: Launch): Error {
    const { code, signal } = launch.exited ?? { code: null, signal: null };
    const reason = reasonOf(launch.stderr);
    if (code !== null && running.spec.fatalExitCodes.includes(code)) {
      return new ServiceFailedError(running.spec.name, code, reason);
    }
    const how = signal ? `signal ${signal}` : code === null ? 'without starting' : `code ${code}`;
    return new ServiceNotReadyError(
      running.spec.name,
      `exited (${how}) before it was ready${reason ? `: ${reason}` : ''}`,
    );
  }
}
