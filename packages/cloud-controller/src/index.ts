export { agentSettingsFrom, type DriverAgentSettings, memberAgentSettings } from './agent-settings.js';
export type { AgentTargetsSync } from './agent-targets.js';
export type {
  AdoptResult,
  AgentRestartResult,
  CartridgeMemberIdentity,
  Iaas,
  MemberInstance,
  MemberSpec,
  ProbeAnswer,
  TerminateOptions,
  TerminateOutcome,
  TerminateResult,
} from './iaas.js';
export {
  AGENT_RESTART_SIGNAL,
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
export { type MemberAccounts, type MemberAccountsOptions, withMemberAccounts } from './member-accounts.js';
export {
  type GroupStopOutcome,
  type LocalHandle,
  type ProcessRef,
  type ProcessState,
  processState,
} from './member-processes.js';
export { MemberIsolationError, type MemberUser } from './member-user.js';
export { linuxProcessTable, PlatformError, type ProcessTable, type ProcStat, parseProcStat } from './proc-table.js';
export { MemberSpecError, validateSpec } from './validate.js';
export {
  createWorkload,
  type Workload,
  type WorkloadCounters,
  type WorkloadStats,
} from './workload.js';
export type { WorkloadOptions } from './workload-options.js';
