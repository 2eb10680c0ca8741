import { spawn } from 'node:child_process';
import { type Clock, DEFAULTS, type Logger, withDefaults } from '@faultline/core';
import type { ServiceFailedError } from './errors.js';
import { linuxServiceTable, type ServiceProcessTable } from './process-table.js';
import type { ServiceRecords } from './service-records.js';

/** How the supervisor starts a process: node's `child_process.spawn` (tests pass a fake). */
export type SpawnProcess = typeof spawn;

export interface SupervisorOptions {
  clock: Clock;
  logger: Logger;
  /** A dead platform service is started again after this, doubling with each death… @default 1_000 */
  restartInitialMs?: number;
  /** …up to this… @default 30_000 */
  restartMaxMs?: number;
  /** …and from `restartInitialMs` again once it has been up this long. @default 30_000 */
  restartResetMs?: number;
  /** Period of the liveness probe of a ready service (from the end of one probe). @default 5_000 */
  livenessIntervalMs?: number;
  /** A liveness probe not answered within this failed. @default 2_000 */
  livenessTimeoutMs?: number;
  /** Failed liveness probes in a row after which the service is killed and restarted. @default 3 */
  livenessFailureThreshold?: number;
  /**
   * How long a started service has to report ready, counted from its last
   * sign of progress (ServiceSpec `starting`); a spec may set its own. @default 30_000
   */
  readyTimeoutMs?: number;
  /** How often a starting service's readiness is probed. @default 100 */
  readyPollMs?: number;
  /** Between the stop signals of a service (SIGTERM, …) and before the final SIGKILL. @default 10_000 */
  stopGraceMs?: number;
  /**
   * After a service's exit, how long its output is waited for (stdout and
   * stderr to end) before its death is acted on: its last words are its
   * reason. Bounded: a child that outlived it (a PostgreSQL backend) may hold
   * the pipes open. @default 2_000
   */
  outputDrainMs?: number;
  /** Where each service's console goes. @default the supervisor's own stdout, line by line */
  write?: (line: string) => void;
  /**
   * A service exited with one of its fatal exit codes (2: its configuration
   * is invalid): it is not restarted, and the stack should stop. @default nothing
   */
  onFatal?: (error: ServiceFailedError) => void;
  /** Where the pid and start time of every running service are kept (the run folder). @default none */
  records?: ServiceRecords | undefined;
  /** @default child_process.spawn */
  spawn?: SpawnProcess;
  /** Start times, children and signals, to process groups too. @default linuxServiceTable */
  table?: ServiceProcessTable;
}

export type ResolvedSupervisorOptions = Required<Omit<SupervisorOptions, 'records'>> & {
  records: ServiceRecords | undefined;
};

const writeToStdout = (line: string) => {
  process.stdout.write(`${line}\n`);
};

export function resolveSupervisorOptions(input: SupervisorOptions): ResolvedSupervisorOptions {
  const { supervisor } = DEFAULTS;
  return withDefaults(
    {
      restartInitialMs: supervisor.restartInitialMs as number,
      restartMaxMs: supervisor.restartMaxMs as number,
      restartResetMs: supervisor.restartResetMs as number,
      livenessIntervalMs: supervisor.livenessIntervalMs as number,
      livenessTimeoutMs: supervisor.livenessTimeoutMs as number,
      livenessFailureThreshold: supervisor.livenessFailureThreshold as number,
      readyTimeoutMs: supervisor.readyTimeoutMs as number,
      readyPollMs: 100,
      stopGraceMs: 10_000,
      outputDrainMs: 2_000,
      write: writeToStdout,
      onFatal: () => {},
      records: undefined as ServiceRecords | undefined,
      spawn: spawn as SpawnProcess,
      table: linuxServiceTable as ServiceProcessTable,
    },
    input,
  );
}
