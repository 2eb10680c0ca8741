import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { type Clock, FaultlineError, type Logger, sleep } from '@faultline/core';
import { z } from 'zod';
import { describeIssues, intIn, issuesOf, portSchema } from './validate.js';

/** What the workload writes to its ready file once it listens and has started its agent. */
export interface ReadyReport {
  pid: number;
  port: number;
  agentPid: number;
}

export interface LaunchRequest {
  memberId: string;
  env: NodeJS.ProcessEnv;
  readyFile: string;
  /** stdout and stderr of the workload and its agent (crash traces); undefined: discarded. */
  outputFile: string | undefined;
}

/**
 * Starts a member's processes. Behind an interface so the driver's
 * bookkeeping is unit-tested without processes; the real one is below.
 */
export interface Launcher {
  /** Resolves once the workload reported ready; rejects with a SpawnError after killing whatever it started. */
  launch(request: LaunchRequest): Promise<ReadyReport>;
}

export class SpawnError extends FaultlineError {
  constructor(memberId: string, reason: string, cause?: unknown) {
    super('FL_ERR_SPAWN_FAILED', `member ${memberId} did not start: ${reason}`, { context: { memberId }, cause });
  }
}

const readyReportSchema = z.object(
  { pid: intIn(2, 2 ** 31 - 1), port: portSchema, agentPid: intIn(2, 2 ** 31 - 1) },
  { error: 'not an object' },
);

/** The ready report in `text`, or why it is none. */
export function parseReadyReport(text: string): ReadyReport | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return 'not JSON';
  }
  const parsed = readyReportSchema.safeParse(value);
  return parsed.success ? parsed.data : describeIssues(issuesOf(parsed.error)).join('; ');
}

export interface ProcessLauncherOptions {
  nodePath: string;
  workloadMain: string;
  clock: Clock;
  log: Logger;
  /** Longest wait for the ready file. */
  spawnTimeoutMs: number;
  pollMs: number;
}

/**
 * The local launcher. The workload is spawned `detached`, which makes it the
 * leader of a new session and process group; it then starts the cartridge
 * agent as its own, non-detached child, so the agent joins that group. Node
 * cannot set a process group directly, and this keeps each member at exactly
 * two processes (no launcher in between) with the workload in the role of the
 * instance's init, which starts its agent as a VM's init would. Nothing of the
 * member is tied to the driver: stdio goes to a file (or nowhere) and the
 * child is unref'd, so the driver can exit and a new one adopt the member.
 * The ready report comes through a file rather than a pipe, because a pipe to
 * a driver that has exited would break the workload's next write.
 */
export function processLauncher(options: ProcessLauncherOptions): Launcher {
  const { clock, log } = options;
  return {
    launch: async (request) => {
      const { memberId } = request;
      if (!existsSync(options.workloadMain)) {
        throw new SpawnError(
          memberId,
          `${options.workloadMain} is missing: build first (npx tsc -b packages/cloud-controller)`,
        );
      }
      await rm(request.readyFile, { force: true });
      const out = request.outputFile === undefined ? 'ignore' : openSync(request.outputFile, 'a');
      let child: ReturnType<typeof spawn>;
      try {
        child = spawn(options.nodePath, [options.workloadMain], {
          detached: true,
          stdio: ['ignore', out, out],
          env: request.env,
        });
      } catch (cause) {
        throw new SpawnError(memberId, `spawn failed: ${String(cause)}`, cause);
      } finally {
        if (typeof out === 'number') closeSync(out);
      }
      child.unref();
      let failure: string | undefined;
      child.on('error', (error) => {
        failure = `spawn failed: ${error.message}`;
      });
      child.once('exit', (code, signal) => {
        const output = request.outputFile ? `; its output is in ${request.outputFile}` : '';
        failure ??= `workload exited (${signal ?? `code ${code}`}) before it was ready${output}`;
        log.info('member workload exited', {
          event: 'local_iaas.workload_exited',
          memberId,
          pid: child.pid,
          code,
          signal,
        });
      });
      const deadline = clock.monotonicNow() + options.spawnTimeoutMs;
      const kill = () => {
        // The whole group, even when the workload itself has exited: its agent may still be in it.
        // The id cannot have been handed to another group meanwhile: Linux keeps a pgid while any
        // member lives, and does not reuse a pid within the few milliseconds since.
        if (child.pid === undefined) return;
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // ESRCH: nothing of it is left
        }
      };
      for (;;) {
        if (failure) {
          kill();
          throw new SpawnError(memberId, failure);
        }
        const text = await readFile(request.readyFile, 'utf8').catch(() => undefined);
        if (text !== undefined) {
          const report = parseReadyReport(text);
          if (typeof report === 'string' || report.pid !== child.pid) {
            kill();
            const why = typeof report === 'string' ? report : `pid ${report.pid} is not ${child.pid}`;
            throw new SpawnError(memberId, `invalid ready report (${why})`);
          }
          return report;
        }
        if (clock.monotonicNow() >= deadline) {
          kill();
          throw new SpawnError(memberId, `not ready within ${options.spawnTimeoutMs} ms`);
        }
        await sleep(clock, options.pollMs);
      }
    },
  };
}
