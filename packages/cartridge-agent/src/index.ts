export { type Agent, type AgentCounters, type AgentProbes, type AgentState, createAgent } from './agent.js';
export { type AgentProcessSettings, readAgentEnv } from './agent-env.js';
export type { AgentOptions, ResolvedProbe, ResolvedProbes } from './agent-options.js';
export {
  BatchSender,
  type BatchSenderCounters,
  type BatchTransport,
  type PublishOutcome,
  type SenderState,
} from './batch-sender.js';
export type { BatchSenderOptions } from './batch-sender-options.js';
export { CallTimeoutError } from './errors.js';
export {
  type CheckOutcome,
  type ExecCheckOptions,
  execCheck,
  execProbeEnv,
  type HttpCheckOptions,
  httpCheck,
  type ProbeCheck,
  probeCheckFor,
  tcpCheck,
} from './probe-checks.js';
export { type ProbeCounters, ProbeRunner, type ProbeRunnerOptions, type ProbeState } from './probe-runner.js';
export {
  osSystemStats,
  type ProbeResult,
  StatCollector,
  type StatCollectorCounters,
  type SystemStats,
  type WorkloadProbe,
} from './stats.js';
export { type ThriftTransportOptions, thriftTransport } from './thrift-transport.js';
export { type HttpProbeOptions, httpWorkloadProbe, parseWorkloadStats } from './workload-probe.js';
