import { systemClock } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import type { ServiceFailedError } from '../errors.js';
import { type ServiceSpec, Supervisor } from '../supervisor.js';
import type { SupervisorOptions } from '../supervisor-options.js';
import { FakeProcesses } from './fake-processes.js';

/** The supervisor's timings in its unit tests (fake time). */
export const FAKE_SUPERVISOR_OPTIONS = {
  restartInitialMs: 1_000,
  restartMaxMs: 8_000,
  restartResetMs: 30_000,
  livenessIntervalMs: 5_000,
  livenessTimeoutMs: 2_000,
  livenessFailureThreshold: 3,
  readyTimeoutMs: 10_000,
  readyPollMs: 100,
  stopGraceMs: 1_000,
  outputDrainMs: 2_000,
} satisfies Partial<SupervisorOptions>;

/**
 * A Supervisor over fake processes (fake-processes.ts) on the system clock,
 * which the tests fake (`vi.useFakeTimers()`): what it spawns, the signals it
 * sends, when, and what it logs (`events(name)`: the fields of each record).
 */
export function superviseFakes(overrides: Partial<SupervisorOptions> = {}, processes = new FakeProcesses()) {
  const log = createMemoryLogger();
  const fatal: ServiceFailedError[] = [];
  const supervisor = new Supervisor({
    clock: systemClock,
    logger: log,
    ...FAKE_SUPERVISOR_OPTIONS,
    spawn: processes.spawn,
    table: processes,
    write: () => {},
    onFatal: (error) => fatal.push(error),
    ...overrides,
  });
  /** A service whose probes answer while its newest process runs and is not stopped; a stopped one hangs them. */
  const service = (name: string, extra: Partial<ServiceSpec> = {}): ServiceSpec => {
    const probe = async () => {
      const child = processes.of(name).at(-1);
      if (child?.stopped) return new Promise<boolean>(() => {});
      return child?.alive ?? false;
    };
    return { name, command: 'node', args: ['main.js', name], ready: probe, ...extra };
  };
  const events = (event: string) => log.records.filter((r) => r.event === event).map((r) => r.fields);
  return { processes, log, fatal, supervisor, service, events };
}
