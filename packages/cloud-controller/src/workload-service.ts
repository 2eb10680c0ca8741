import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { type Clock, type Closeable, type Logger, once, systemClock, type TimerHandle } from '@faultline/core';
import {
  decodeWorkloadEnv,
  encodeWorkloadPort,
  MEMBER_ENV,
  memberEnvError,
  type WorkloadEnv,
} from '@faultline/protocol';
import { type ReadyReport, SpawnError } from './launcher.js';
import { createWorkload } from './workload.js';

/**
 * Reads the workload's part of the member environment (README "The member
 * environment") and checks that the agent's entry point exists; a
 * ConfigError names each bad variable (exit 2 in main).
 */
export function readWorkloadEnv(env: NodeJS.ProcessEnv): WorkloadEnv {
  const decoded = decodeWorkloadEnv(env);
  const issues = decoded.ok ? [] : [...decoded.error];
  const agentMain = env[MEMBER_ENV.agentMain];
  if (agentMain && !existsSync(agentMain))
    issues.push({ key: MEMBER_ENV.agentMain, reason: `${agentMain} is missing` });
  if (!decoded.ok || issues.length > 0) throw memberEnvError('workload', issues);
  return decoded.value;
}

/** How long a stopping workload lets its agent exit by itself before sending it SIGTERM. */
const AGENT_EXIT_WAIT_MS = 1_000;

/**
 * What a request for a new agent did: `started` one (and rewrote the ready
 * file), found its agent still `running` (nothing started), `closing` (the
 * workload stops), or `failed` to start one (logged).
 */
export type AgentRestart = 'started' | 'running' | 'closing' | 'failed';

export interface WorkloadService extends Closeable {
  /**
   * Starts a new cartridge agent if, and only if, the current one has exited,
   * and then rewrites the ready file whole with its pid. A request while one
   * is under way shares it: two requests never start two agents. Never rejects.
   */
  restartAgent(): Promise<AgentRestart>;
  /** Graceful drain of the workload (Workload.drain); the agent keeps running until the stop. Idempotent. */
  drain(): void;
  /** The pid of the current agent. */
  readonly agentPid: number | undefined;
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/**
 * Runs the workload and starts the member's cartridge agent as its child (so
 * in its process group), then reports ready. The agent is not restarted by
 * the workload itself when it dies: "agent down, instance still running" is a
 * state the fault path must see (the seed: the autoscaler terminates an
 * instance that still runs). Only the driver's request (`restartAgent`, on
 * AGENT_RESTART_SIGNAL) starts a new one, when a cluster's second witness
 * found the workload answering.
 */
export async function startWorkloadService(
  config: WorkloadEnv,
  log: Logger,
  env: NodeJS.ProcessEnv,
  clock: Clock = systemClock,
): Promise<WorkloadService> {
  const workload = createWorkload({ latencyMs: config.latencyMs, logger: log, clock });
  const port = await workload.listen(0, config.host);

  const startAgent = () => {
    const child = spawn(process.execPath, [config.agentMain], {
      env: { ...env, ...encodeWorkloadPort(port) },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    const exit = new Promise<void>((resolve) => {
      child.once('exit', (code, signal) => {
        log.warn('cartridge agent exited', { event: 'workload.agent_exited', agentPid: child.pid, code, signal });
        resolve();
      });
    });
    child.on('error', (error) =>
      log.error('cartridge agent failed to start', { event: 'workload.agent_start_failed', error }),
    );
    return { child, exit };
  };

  /** The ready report, written aside and renamed: the driver polls the file and must never read half of it. */
  let agentRestarts = 0;
  const writeReady = async (agentPid: number) => {
    const report: ReadyReport = { pid: process.pid, port, agentPid, agentRestarts };
    await writeFile(`${config.readyFile}.tmp`, JSON.stringify(report));
    await rename(`${config.readyFile}.tmp`, config.readyFile);
  };

  let agent = startAgent();
  if (agent.child.pid === undefined) {
    await workload.close();
    throw new SpawnError(config.memberId, 'the cartridge agent could not be started');
  }
  try {
    await writeReady(agent.child.pid);
  } catch (error) {
    agent.child.kill('SIGKILL');
    await workload.close();
    throw new SpawnError(config.memberId, `the ready report could not be written to ${config.readyFile}`, error);
  }
  log.info('workload ready', { event: 'workload.ready', port, latencyMs: config.latencyMs, agentPid: agent.child.pid });

  let closing = false;
  let restarting: Promise<AgentRestart> | undefined;

  const restart = async (): Promise<AgentRestart> => {
    if (closing) return 'closing';
    if (!exited(agent.child)) return 'running';
    const next = startAgent();
    const agentPid = next.child.pid;
    if (agentPid === undefined) return 'failed';
    agent = next;
    agentRestarts += 1;
    try {
      await writeReady(agentPid);
    } catch (error) {
      // The agent runs; the driver, seeing no report of it, answers `failed` and the member is terminated.
      log.error('ready report not rewritten after an agent restart', {
        event: 'workload.ready_failed',
        agentPid,
        error,
      });
      return 'failed';
    }
    log.info('cartridge agent started again on request', {
      event: 'workload.agent_restarted',
      agentPid,
      agentRestarts,
    });
    return 'started';
  };

  return {
    get agentPid() {
      return agent.child.pid;
    },
    drain: () => workload.drain(),
    restartAgent: () => {
      restarting ??= restart()
        .catch((error: unknown): AgentRestart => {
          // Never a rejection: the signal handler that calls it has nobody to hand one to.
          log.error('cartridge agent not started again', { event: 'workload.agent_restart_failed', error });
          return 'failed';
        })
        .finally(() => {
          restarting = undefined;
        });
      return restarting;
    },
    close: once(async () => {
      closing = true;
      // A restart under way has started its agent by now (spawn is synchronous): that one is stopped too.
      await restarting;
      await workload.close();
      const { child, exit } = agent;
      if (exited(child)) return;
      // On a group SIGTERM (terminate) the agent got its own and is already
      // stopping; a second signal would make it exit without closing. Only an
      // agent still there after a moment, when the workload alone was
      // stopped, is asked to stop: a stopped instance takes its agent along.
      let timer: TimerHandle | undefined;
      await Promise.race([
        exit,
        new Promise<void>((resolve) => (timer = clock.setTimeout(resolve, AGENT_EXIT_WAIT_MS))),
      ]);
      clock.clearTimeout(timer);
      if (!exited(child)) child.kill('SIGTERM');
    }),
  };
}
