export { type FakeProcessInit, FakeProcessTable } from './fake-process-table.js';
export type {
  AdoptResult,
  AgentSettings,
  Iaas,
  MemberBrokerEndpoint,
  MemberIdentity,
  MemberInstance,
  MemberSpec,
  SpEndpoint,
  TerminateOptions,
  TerminateOutcome,
  TerminateResult,
} from './iaas.js';
export {
  type Launcher,
  type LaunchRequest,
  parseReadyReport,
  processLauncher,
  type ReadyReport,
  SpawnError,
} from './launcher.js';
export { createLocalIaas, type LocalIaas, MemberExistsError } from './local-iaas.js';
export type { LocalIaasCounters, LocalIaasOptions } from './local-iaas-options.js';
export { checkInstance, type LocalInstance, localHandle } from './local-instance.js';
export { MEMBER_ENV, type MemberEnvOptions, memberEnv } from './member-env.js';
export {
  type GroupStopOutcome,
  type LocalHandle,
  type ProcessRef,
  type ProcessState,
  processState,
} from './member-processes.js';
export { linuxProcessTable, PlatformError, type ProcessTable, type ProcStat, parseProcStat } from './proc-table.js';
export { ID_PATTERN, MemberSpecError, validateSpec } from './validate.js';
export {
  createWorkload,
  type Workload,
  type WorkloadCounters,
  type WorkloadOptions,
  type WorkloadStats,
} from './workload.js';
