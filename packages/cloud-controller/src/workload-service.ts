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

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/**
 * Runs the workload and starts the member's cartridge agent as its child (so
 * in its process group), then reports ready. The agent is not restarted when
 * it dies: "agent down, instance still running" is a state the fault path
 * must see (the seed: the autoscaler terminates an instance that still runs).
 */
export async function startWorkloadService(
  config: WorkloadEnv,
  log: Logger,
  env: NodeJS.ProcessEnv,
  clock: Clock = systemClock,
): Promise<Closeable> {
  const workload = createWorkload({ latencyMs: config.latencyMs, logger: log, clock });
  const port = await workload.listen(0, config.host);
  const agent = spawn(process.execPath, [config.agentMain], {
    env: { ...env, ...encodeWorkloadPort(port) },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const agentExit = new Promise<void>((resolve) => {
    agent.once('exit', (code, signal) => {
      log.warn('cartridge agent exited', { event: 'workload.agent_exited', agentPid: agent.pid, code, signal });
      resolve();
    });
  });
  agent.on('error', (error) =>
    log.error('cartridge agent failed to start', { event: 'workload.agent_start_failed', error }),
  );
  if (agent.pid === undefined) {
    await workload.close();
    throw new SpawnError(config.memberId, 'the cartridge agent could not be started');
  }
  const report: ReadyReport = { pid: process.pid, port, agentPid: agent.pid };
  try {
    // Written aside and renamed: the driver polls the file and must never read half of it.
    await writeFile(`${config.readyFile}.tmp`, JSON.stringify(report));
    await rename(`${config.readyFile}.tmp`, config.readyFile);
  } catch (error) {
    agent.kill('SIGKILL');
    await workload.close();
    throw new SpawnError(config.memberId, `the ready report could not be written to ${config.readyFile}`, error);
  }
  log.info('workload ready', { event: 'workload.ready', port, latencyMs: config.latencyMs, agentPid: agent.pid });
  return {
    close: once(async () => {
      await workload.close();
      if (exited(agent)) return;
      // On a group SIGTERM (terminate) the agent got its own and is already
      // stopping; a second signal would make it exit without closing. Only an
      // agent still there after a moment, when the workload alone was
      // stopped, is asked to stop: a stopped instance takes its agent along.
      let timer: TimerHandle | undefined;
      await Promise.race([
        agentExit,
        new Promise<void>((resolve) => (timer = clock.setTimeout(resolve, AGENT_EXIT_WAIT_MS))),
      ]);
      clock.clearTimeout(timer);
      if (!exited(agent)) agent.kill('SIGTERM');
    }),
  };
}
