import { type Clock, DEFAULTS, type Logger, nullLogger, systemClock, withDefaults } from '@faultline/core';

export interface WorkloadOptions {
  /** How long each `GET /` takes to answer: the demo's service time. @default DEFAULTS.workloadLatencyMs (20) */
  latencyMs?: number;
  /** @default systemClock */
  clock?: Clock;
  /** @default nullLogger */
  logger?: Logger;
}

export type ResolvedWorkloadOptions = Required<WorkloadOptions>;

/** The workload's options with every default filled in. */
export function resolveWorkloadOptions(input: WorkloadOptions): ResolvedWorkloadOptions {
  return withDefaults(
    { latencyMs: DEFAULTS.workloadLatencyMs as number, clock: systemClock, logger: nullLogger },
    input,
  );
}
