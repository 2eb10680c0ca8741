export {
  CHAOS_ACTIONS,
  type ChaosContext,
  type ChaosRequest,
  chaosHandler,
  PAUSE_SECONDS_MAX,
  PAUSE_SECONDS_MIN,
  parseChaosRequest,
} from './chaos.js';
export {
  type ControlCounters,
  type ControlFile,
  type ControlHandler,
  type ControlServer,
  callControl,
  readControlFile,
  startControl,
} from './control.js';
export {
  ChaosTargetError,
  ControlError,
  LogsNotFoundError,
  PostgresInUseError,
  ServiceFailedError,
  ServiceNotReadyError,
  StackRunningError,
  UsageError,
} from './errors.js';
export { showLogs } from './logs.js';
export type { LogsOptions } from './logs-options.js';
export { formatStatus, type StackStatus, stackStatus } from './status.js';
export { type ServiceSpec, type ServiceState, type ServiceView, Supervisor } from './supervisor.js';
export type { SpawnProcess, SupervisorOptions } from './supervisor-options.js';
