export { AUTOSCALER_TOPICS, type Autoscaler, type AutoscalerOptions, createAutoscaler } from './autoscaler.js';
export { Backoff } from './backoff.js';
export { ClusterMembers, type MonitorSink } from './cluster-members.js';
export { ClusterMonitor, type ClusterMonitorOptions } from './cluster-monitor.js';
export { AutoscalerCore, type AutoscalerCoreOptions, parseStatType, randomMemberId } from './core.js';
export {
  ACTION_TYPES,
  type ActionRecord,
  type ActionType,
  AUTOSCALER_SOURCE,
  type Decision,
  decisionEnvelope,
  topologyEnvelope,
} from './decisions.js';
export { FakeIaas, type FakeIaasCall } from './fake-iaas.js';
export { FaultStorm, MIN_STORM_CLUSTER_SIZE, type StormVerdict } from './fault-storm.js';
export {
  fromRecord,
  isLive,
  isPending,
  MEMBER_STATES,
  type MemberContext,
  type MemberRecord,
  type MemberState,
  toRecord,
} from './member.js';
export { PgRegistry, type PgRegistryOptions } from './pg-registry.js';
export { type ClusterPolicy, policyFrom, retiredPolicy, type Thresholds } from './policy.js';
export { MemoryRegistry, type Registry, RegistryError } from './registry.js';
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
export { AUTOSCALER_CLIENT_ID, agentSettingsFrom, autoscalerOptionsFrom } from './settings.js';
export type { AutoscalerCounters, AutoscalerStatus, ClusterStatus, MemberStatus, MonitorCounters } from './status.js';
