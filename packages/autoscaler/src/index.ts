export { AUTOSCALER_TOPICS, type Autoscaler, createAutoscaler } from './autoscaler.js';
export { AutoscalerCore } from './autoscaler-core.js';
export {
  AutoscalerNode,
  type AutoscalerNodeOptions,
  type AutoscalerNodeStatus,
  type AutoscalerRole,
} from './autoscaler-node.js';
export type {
  AutoscalerCounters,
  AutoscalerStatus,
  ClusterStatus,
  MemberStatus,
  MonitorCounts,
} from './autoscaler-status.js';
export { Backoff } from './backoff.js';
export { ClusterFaults, type FaultCounts, type HeldFault, type HoldCause, type Retirement } from './cluster-faults.js';
export { ClusterMembers, type MemberCompletion, type MemberCounts } from './cluster-members.js';
export { ClusterMonitor, type ClusterMonitorOptions, type MonitorState } from './cluster-monitor.js';
export { ClusterRules } from './cluster-rules.js';
export {
  ACTION_TYPES,
  type ActionRecord,
  type ActionType,
  AUTOSCALER_SOURCE,
  type ClusterDecision,
  type Decision,
  decisionEnvelope,
  type FaultTimes,
  type MonitorSink,
  topologyEnvelope,
} from './decisions.js';
export { DetectorSignals } from './detector-signals.js';
export { FaultStorm, MIN_STORM_CLUSTER_SIZE, type StormVerdict } from './fault-storm.js';
export { type Fence, FencedError, fencedIaas } from './fence.js';
export {
  type ClusterMaintenance,
  describeMaintenance,
  MAX_MAINTENANCE_BY,
  MAX_MAINTENANCE_REASON,
  type MaintenanceEntry,
  maintenanceByCluster,
} from './maintenance.js';
export {
  fromRecord,
  isLive,
  isPending,
  MEMBER_STATES,
  type MemberContext,
  type MemberRecord,
  type MemberState,
  randomMemberId,
  toRecord,
} from './member.js';
export { parseMonitorState } from './monitor-state.js';
export {
  type AutoscalerCoreOptions,
  type AutoscalerOptions,
  autoscalerOptionsFrom,
  type PgRegistryOptions,
  type RegistryFence,
  type ResolvedAutoscalerCoreOptions,
  resolveAutoscalerCoreOptions,
} from './options.js';
export {
  type ActionEntry,
  deleteMaintenance,
  PgRegistry,
  readActionsAfter,
  readClusterStates,
  readLastActions,
  readLiveMembers,
  readMaintenance,
  readMemberActions,
  readMembers,
  writeMaintenance,
} from './pg-registry.js';
export { type ClusterPolicy, policyFrom, retiredPolicy, type Thresholds } from './policy.js';
export { type Registry, RegistryError } from './registry.js';
export { RegistryWriter } from './registry-writer.js';
export {
  PREDICTION_HORIZON_S,
  type Predictions,
  predict,
  SCALE_DOWN_RATIO,
  SCALE_UP_RATIO,
  type ScalingDecision,
  ScalingRule,
} from './scaling-rule.js';
