import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import {
  type Clock,
  type Closeable,
  ConfigError,
  type ConfigIssue,
  LOG_LEVELS,
  type Logger,
  type LogLevel,
  once,
  systemClock,
  type TimerHandle,
} from '@faultline/core';
import type { ReadyReport } from './launcher.js';
import { MEMBER_ENV } from './member-env.js';
import { ID_PATTERN } from './validate.js';
import { createWorkload } from './workload.js';

export interface WorkloadServiceConfig {
  memberId: string;
  host: string;
  latencyMs: number;
  readyFile: string;
  agentMain: string;
  logDir: string | undefined;
  logLevel: LogLevel;
}

/** Reads the workload's part of the member environment (README "Members"); ConfigError names each bad variable. */
export function parseWorkloadEnv(env: NodeJS.ProcessEnv): WorkloadServiceConfig {
  const issues: ConfigIssue[] = [];
  const need = (name: string): string => {
    const value = env[name];
    if (value === undefined || value === '') issues.push({ key: name, reason: 'is required' });
    return value ?? '';
  };
  const memberId = need(MEMBER_ENV.memberId);
  if (memberId && !ID_PATTERN.test(memberId)) issues.push({ key: MEMBER_ENV.memberId, reason: 'is not a valid id' });
  const latencyText = env[MEMBER_ENV.workloadLatencyMs] ?? '20';
  const latencyMs = Number(latencyText);
  if (!Number.isSafeInteger(latencyMs) || latencyMs < 0) {
    issues.push({ key: MEMBER_ENV.workloadLatencyMs, reason: `must be an integer ≥ 0, not ${latencyText}` });
  }
  const readyFile = need(MEMBER_ENV.readyFile);
  const agentMain = need(MEMBER_ENV.agentMain);
  if (agentMain && !existsSync(agentMain))
    issues.push({ key: MEMBER_ENV.agentMain, reason: `${agentMain} is missing` });
  const logLevel = (env[MEMBER_ENV.logLevel] || 'info') as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) issues.push({ key: MEMBER_ENV.logLevel, reason: `unknown level ${logLevel}` });
  if (issues.length > 0) {
    const message = ['invalid workload environment:', ...issues.map((i) => `  - ${i.key}: ${i.reason}`)].join('\n');
    throw new ConfigError('FL_ERR_CONFIG_INVALID', message, { issues });
  }
  return {
    memberId,
    host: env[MEMBER_ENV.workloadHost] || '127.0.0.1',
    latencyMs,
    readyFile,
    agentMain,
    logDir: env[MEMBER_ENV.logDir] || undefined,
    logLevel,
  };
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
  config: WorkloadServiceConfig,
  log: Logger,
  env: NodeJS.ProcessEnv,
  clock: Clock = systemClock,
): Promise<Closeable> {
  const workload = createWorkload({ latencyMs: config.latencyMs, logger: log, clock });
  const port = await workload.listen(0, config.host);
  const agent = spawn(process.execPath, [config.agentMain], {
    env: { ...env, [MEMBER_ENV.workloadPort]: String(port) },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const agentExit = new Promise<void>((resolve) => {
    agent.once('exit', (code, signal) => {
      log.warn('cartridge agent exited', { agentPid: agent.pid, code, signal });
      resolve();
    });
  });
  agent.on('error', (error) => log.error('cartridge agent failed to start', { error }));
  if (agent.pid === undefined) {
    await workload.close();
    throw new Error('the cartridge agent could not be started');
  }
  const report: ReadyReport = { pid: process.pid, port, agentPid: agent.pid };
  try {
    // Written aside and renamed: the driver polls the file and must never read half of it.
    await writeFile(`${config.readyFile}.tmp`, JSON.stringify(report));
    await rename(`${config.readyFile}.tmp`, config.readyFile);
  } catch (error) {
    agent.kill('SIGKILL');
    await workload.close();
    throw error;
  }
  log.info('workload ready', { port, latencyMs: config.latencyMs, agentPid: agent.pid });
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
