export { BatchAdmission, type BatchAdmissionOptions, type Refusal } from './batch-admission.js';
export { BatchDedupe, type DedupeOutcome, type DedupeState } from './batch-dedupe.js';
export { encodeFrame, FrameReader } from './framing.js';
export { createSpNode, type SpCounters, type SpNode, type SpRole, type SpStatus } from './node.js';
export { type ResolvedSpNodeOptions, resolveSpNodeOptions, type SpNodeOptions } from './options.js';
export type { Activation, OutputSink, QueryEngine } from './query-engine.js';
export { StatLedger } from './stat-ledger.js';
export { type StatusServerOptions, startStatusServer } from './status-server.js';
