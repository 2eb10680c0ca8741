import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import path from 'node:path';
import { type Clock, type Logger, sleep } from '@faultline/core';

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
  /** Plain-text output of a service that does not write its own JSON log (Mosquitto). */
  outputFile?: string;
}

export type ServiceState = 'starting' | 'up' | 'restarting' | 'stopped' | 'failed';

interface Running {
  spec: ServiceSpec;
  child: ChildProcess | undefined;
  state: ServiceState;
  restarts: number;
  startedAt: number;
  output?: WriteStream;
}

export interface SupervisorOptions {
  clock: Clock;
  logger: Logger;
  /** Delay before a dead platform service is started again. @default 2_000 */
  restartDelayMs?: number;
  /** @default 30_000 */
  readyTimeoutMs?: number;
  /** Where each service's console goes: the supervisor's own stdout, line by line. */
  write?: (line: string) => void;
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

  constructor(private readonly options: SupervisorOptions) {}

  async start(spec: ServiceSpec): Promise<void> {
    const running: Running = { spec, child: undefined, state: 'starting', restarts: 0, startedAt: 0 };
    if (spec.outputFile) {
      mkdirSync(path.dirname(spec.outputFile), { recursive: true });
      running.output = createWriteStream(spec.outputFile, { flags: 'a' });
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
  async stopAll(graceMs = 10_000): Promise<void> {
    this.stopping = true;
    for (const running of [...this.services.values()].reverse()) await this.halt(running, graceMs);
  }

  /** Stops one service for good (no restart). */
  async stop(name: string, graceMs = 10_000): Promise<void> {
    const running = this.services.get(name);
    if (running) await this.halt(running, graceMs);
  }

  /** SIGCONT + SIGTERM (a paused process must be able to handle it), SIGKILL after `graceMs`. */
  private async halt(running: Running, graceMs: number): Promise<void> {
    running.state = 'stopped';
    const child = running.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGCONT');
      child.kill('SIGTERM');
      const timer = this.options.clock.setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      this.options.clock.clearTimeout(timer);
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
    running.startedAt = this.options.clock.now();
    const write = this.options.write ?? ((line: string) => process.stdout.write(`${line}\n`));
    const forward = (stream: NodeJS.ReadableStream | null) => {
      let rest = '';
      stream?.on('data', (chunk: Buffer) => {
        running.output?.write(chunk);
        const lines = (rest + chunk.toString()).split('\n');
        rest = lines.pop() ?? '';
        for (const line of lines)
          if (line.trim() !== '') write(spec.outputFile ? `${spec.name.padEnd(12)} ${line}` : line);
      });
    };
    forward(child.stdout);
    forward(child.stderr);
    child.on('error', (error) => this.options.logger.error('service failed to spawn', { service: spec.name, error }));
    child.on('exit', (code, signal) => {
      if (running.child !== child) return;
      if (this.stopping || running.state === 'stopped') return;
      if (spec.restart === false) {
        running.state = 'failed';
        this.options.logger.error('service exited', { service: spec.name, code, signal });
        return;
      }
      const delayMs = this.options.restartDelayMs ?? 2_000;
      running.state = 'restarting';
      running.restarts += 1;
      this.options.logger.warn('service died, restarting', { service: spec.name, code, signal, delayMs });
      this.options.clock.setTimeout(() => {
        if (this.stopping) return;
        this.launch(running);
        void this.untilReady(running).catch((error) =>
          this.options.logger.error('service did not come back', { service: spec.name, error }),
        );
      }, delayMs);
    });
  }

  private async untilReady(running: Running): Promise<void> {
    const { clock } = this.options;
    const deadline = clock.monotonicNow() + (this.options.readyTimeoutMs ?? 30_000);
    const child = running.child;
    while (clock.monotonicNow() < deadline) {
      if (running.child !== child || child?.exitCode !== null || child.signalCode !== null) {
        throw new Error(`${running.spec.name} exited before it was ready`);
      }
      if (await running.spec.ready().catch(() => false)) {
        running.state = 'up';
        this.options.logger.info('service ready', { service: running.spec.name, pid: child.pid });
        return;
      }
      await sleep(clock, 100);
    }
    throw new Error(`${running.spec.name} was not ready within ${this.options.readyTimeoutMs ?? 30_000} ms`);
  }
}
