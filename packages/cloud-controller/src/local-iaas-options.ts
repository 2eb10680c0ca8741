import path from 'node:path';
import { type Clock, type Logger, type LogLevel, nullLogger, REPO_ROOT, systemClock } from '@faultline/core';
import type { Launcher } from './launcher.js';
import { linuxProcessTable, type ProcessTable } from './proc-table.js';

/** Options of the local driver: every field but runDir optional, resolved once by addDefaults(). */
export interface LocalIaasOptions {
  /** Folder for the members' ready files and their agents' outboxes; created. */
  runDir: string;
  /** Folder for the members' logs (`member-<id>.out`, `workload-<id>.jsonl`, `agent-<id>.jsonl`). @default `<runDir>/logs` */
  logsDir?: string;
  /** Address the workloads listen on. @default '127.0.0.1' */
  host?: string;
  /** @default process.execPath */
  nodePath?: string;
  /** @default packages/cloud-controller/dist/workload-main.js */
  workloadMain?: string;
  /** @default packages/cartridge-agent/dist/main.js */
  agentMain?: string;
  /** Longest wait for a new member to report ready. @default 10_000 */
  spawnTimeoutMs?: number;
  /** Grace between SIGTERM and SIGKILL when terminate() names none. @default 5_000 */
  defaultGraceMs?: number;
  /** How often a spawning or stopping member is looked at. @default 50 */
  pollMs?: number;
  /** Longest wait for the kernel to remove a SIGKILLed group. @default 5_000 */
  killWaitMs?: number;
  /** The members' log level. @default 'info' */
  memberLogLevel?: LogLevel;
  /** Workload latency for specs that name none. @default 20 */
  defaultLatencyMs?: number;
  /** Environment the members' processes inherit (minus FAULTLINE_* and DATABASE_URL). @default process.env */
  env?: NodeJS.ProcessEnv;
  /** @default systemClock */
  clock?: Clock;
  /** @default nullLogger */
  logger?: Logger;
  /** @default linuxProcessTable (procfs) */
  processTable?: ProcessTable;
  /** @default processLauncher (node child processes) */
  launcher?: Launcher;
}

export interface LocalIaasCounters {
  spawned: number;
  spawnFailed: number;
  /** Stopped within the grace period. */
  terminated: number;
  /** Needed SIGKILL. */
  killed: number;
  adopted: number;
  /** Handed to adopt() but no longer running. */
  adoptedGone: number;
  /** Specs and instances refused as malformed. */
  invalidInput: number;
}

export type ResolvedOptions = Required<Omit<LocalIaasOptions, 'launcher'>> & Pick<LocalIaasOptions, 'launcher'>;

/** Field by field with ??: a spread would let an explicit `undefined` win over the default. */
export function addDefaults(input: LocalIaasOptions): ResolvedOptions {
  return {
    runDir: input.runDir,
    logsDir: input.logsDir ?? path.join(input.runDir, 'logs'),
    host: input.host ?? '127.0.0.1',
    nodePath: input.nodePath ?? process.execPath,
    workloadMain: input.workloadMain ?? path.join(REPO_ROOT, 'packages/cloud-controller/dist/workload-main.js'),
    agentMain: input.agentMain ?? path.join(REPO_ROOT, 'packages/cartridge-agent/dist/main.js'),
    spawnTimeoutMs: input.spawnTimeoutMs ?? 10_000,
    defaultGraceMs: input.defaultGraceMs ?? 5_000,
    pollMs: input.pollMs ?? 50,
    killWaitMs: input.killWaitMs ?? 5_000,
    memberLogLevel: input.memberLogLevel ?? 'info',
    defaultLatencyMs: input.defaultLatencyMs ?? 20,
    env: input.env ?? process.env,
    clock: input.clock ?? systemClock,
    logger: input.logger ?? nullLogger,
    processTable: input.processTable ?? linuxProcessTable,
    launcher: input.launcher,
  };
}
