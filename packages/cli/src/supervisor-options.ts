import { type Clock, type Logger, withDefaults } from '@faultline/core';

export interface SupervisorOptions {
  clock: Clock;
  logger: Logger;
  /** Delay before a dead platform service is started again. @default 2_000 */
  restartDelayMs?: number;
  /** How long a started service has to report ready. @default 30_000 */
  readyTimeoutMs?: number;
  /** How often a starting service's readiness is probed. @default 100 */
  readyPollMs?: number;
  /** SIGTERM to SIGKILL when a service is stopped. @default 10_000 */
  stopGraceMs?: number;
  /** Where each service's console goes. @default the supervisor's own stdout, line by line */
  write?: (line: string) => void;
}

export type ResolvedSupervisorOptions = Required<SupervisorOptions>;

const writeToStdout = (line: string) => {
  process.stdout.write(`${line}\n`);
};

export function resolveSupervisorOptions(input: SupervisorOptions): ResolvedSupervisorOptions {
  return withDefaults(
    { restartDelayMs: 2_000, readyTimeoutMs: 30_000, readyPollMs: 100, stopGraceMs: 10_000, write: writeToStdout },
    input,
  );
}
