export {
  type Agent,
  type AgentCounters,
  type AgentOptions,
  type AgentState,
  createAgent,
} from './agent.js';
export {
  BatchSender,
  type BatchSenderCounters,
  type BatchSenderOptions,
  type BatchTransport,
  CallTimeoutError,
  type PublishOutcome,
  type SenderState,
  type SpEndpoint,
} from './batch-sender.js';
export { type AgentEnv, parseAgentEnv } from './env.js';
export { type FakeEndpointMode, FakeTransport } from './fake-transport.js';
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
