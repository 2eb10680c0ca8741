import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, createWriteStream, existsSync, type WriteStream } from 'node:fs';
import path from 'node:path';
import { type Clock, escapeControlChars, type Logger, mkdirPrivate, sleep, withDefaults } from '@faultline/core';
import { ServiceNotReadyError } from './errors.js';
import {
  type ResolvedSupervisorOptions,
  resolveSupervisorOptions,
  type SupervisorOptions,
} from './supervisor-options.js';

export interface ServiceSpec {
  /** `broker-a`, `sp-1`, `autoscaler`: the name in status, logs and chaos. */
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  /** Resolves true once the service serves (a port answers, a status call works). */
  ready: () => Promise<boolean>;
  /** Restart it when it dies (platform services). @default true */
  restart?: boolean;
  /** Plain-text output of a service that does not write its own JSON log (Mosquitto); mode 0600. */
  outputFile?: string;
}

type ResolvedServiceSpec = ServiceSpec & Required<Pick<ServiceSpec, 'restart'>>;

export type ServiceState = 'starting' | 'up' | 'restarting' | 'stopped' | 'failed';

interface Running {
  spec: ResolvedServiceSpec;
  child: ChildProcess | undefined;
  state: ServiceState;
  restarts: number;
  output?: WriteStream;
}

/**
 * Starts the platform services as child processes in order, each checked
 * ready before the next; restarts a service that dies after a short delay
 * (that is how a killed SP node comes back as passive and a killed broker
 * returns); stops them in reverse order. Every delay runs on the injected Clock.
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

  async start(input: ServiceSpec): Promise<void> {
    const spec = withDefaults({ restart: true }, input);
    const running: Running = { spec, child: undefined, state: 'starting', restarts: 0 };
    if (spec.outputFile) {
      // Like the services' own logs: a created folder 0700, the file 0600 (also one left by an older run).
      mkdirPrivate(path.dirname(spec.outputFile));
      if (existsSync(spec.outputFile)) chmodSync(spec.outputFile, 0o600);
      running.output = createWriteStream(spec.outputFile, { flags: 'a', mode: 0o600 });
    }
    this.services.set(spec.name, running);
    this.launch(running);
    await this.untilReady(running);
  }

  /** pid of a service's process, if it runs. */
  pid(name: string): number | undefined {
    const child = this.services.get(name)?.child;
    return child && child.exitCode === null && child.signalCode === null ? child.pid : undefined;
  }

  /** Sends a signal to a service (chaos); a killed one is restarted by the usual rule. */
  signal(name: string, signal: NodeJS.Signals): boolean {
    const pid = this.pid(name);
    if (pid === undefined) return false;
    process.kill(pid, signal);
    return true;
  }

  list(): { name: string; pid: number | undefined; state: ServiceState; restarts: number }[] {
    return [...this.services.values()].map((r) => ({
      name: r.spec.name,
      pid: this.pid(r.spec.name),
      state: r.state,
      restarts: r.restarts,
    }));
  }

  /** Stops every service, last started first. */
  async stopAll(): Promise<void> {
    this.stopping = true;
    for (const running of [...this.services.values()].reverse()) await this.halt(running);
  }

  /** Stops one service for good (no restart). */
  async stop(name: string): Promise<void> {
    const running = this.services.get(name);
    if (running) await this.halt(running);
  }

  /** SIGCONT + SIGTERM (a paused process must be able to handle it), SIGKILL after `stopGraceMs`. */
  private async halt(running: Running): Promise<void> {
    running.state = 'stopped';
    const child = running.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGCONT');
      child.kill('SIGTERM');
      const timer = this.clock.setTimeout(() => child.kill('SIGKILL'), this.options.stopGraceMs);
      await exited;
      this.clock.clearTimeout(timer);
    }
    running.output?.end();
  }

  private launch(running: Running): void {
    const { spec } = running;
    // Its own process group: Ctrl-C in the terminal reaches the supervisor
    // only, which then stops the services in order (members first).
    const child = spawn(spec.command, spec.args, {
      env: { ...process.env, ...spec.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    running.child = child;
    const { write } = this.options;
    const forward = (stream: NodeJS.ReadableStream | null) => {
      let rest = '';
      stream?.on('data', (chunk: Buffer) => {
        running.output?.write(chunk);
        const lines = (rest + chunk.toString()).split('\n');
        rest = lines.pop() ?? '';
        for (const line of lines) {
          if (line.trim() === '') continue;
          // A Faultline service's console is formatPretty's (escaped but for its colors); anything
          // else (Mosquitto, which prints client ids) is escaped whole.
          write(
            spec.outputFile
              ? `${spec.name.padEnd(12)} ${escapeControlChars(line)}`
              : escapeControlChars(line, { keepColors: true }),
          );
        }
      });
    };
    forward(child.stdout);
    forward(child.stderr);
    child.on('error', (error) =>
      this.log.error('service failed to spawn', {
        event: 'supervisor.service_spawn_failed',
        service: spec.name,
        error,
      }),
    );
    child.on('exit', (code, signal) => {
      if (running.child !== child) return;
      if (this.stopping || running.state === 'stopped') return;
      if (!spec.restart) {
        running.state = 'failed';
        this.log.error('service exited', { event: 'supervisor.service_exited', service: spec.name, code, signal });
        return;
      }
      const delayMs = this.options.restartDelayMs;
      running.state = 'restarting';
      running.restarts += 1;
      this.log.warn('service died, restarting', {
        event: 'supervisor.service_restarting',
        service: spec.name,
        code,
        signal,
        delayMs,
      });
      this.clock.setTimeout(() => {
        if (this.stopping) return;
        this.launch(running);
        void this.untilReady(running).catch((error) =>
          this.log.error('service did not come back', {
            event: 'supervisor.service_not_back',
            service: spec.name,
            error,
          }),
        );
      }, delayMs);
    });
  }

  private async untilReady(running: Running): Promise<void> {
    const { readyTimeoutMs, readyPollMs } = this.options;
    const deadline = this.clock.monotonicNow() + readyTimeoutMs;
    const child = running.child;
    while (this.clock.monotonicNow() < deadline) {
      if (running.child !== child || child?.exitCode !== null || child.signalCode !== null) {
        throw new ServiceNotReadyError(running.spec.name, 'exited before it was ready');
      }
      if (await running.spec.ready().catch(() => false)) {
        running.state = 'up';
        this.log.info('service ready', {
          event: 'supervisor.service_ready',
          service: running.spec.name,
          pid: child.pid,
        });
        return;
      }
      await sleep(this.clock, readyPollMs);
    }
    throw new ServiceNotReadyError(running.spec.name, `was not ready within ${readyTimeoutMs} ms`);
  }
}
