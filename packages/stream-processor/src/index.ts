export { BatchDedupe, type DedupeState } from './dedupe.js';
export { type ActivateOptions, type OutputSink, type QueryEngine, StatLedger } from './engine.js';
export { encodeFrame, FrameReader } from './framing.js';
export {
  createSpNode,
  type Endpoint,
  type SpCounters,
  type SpNode,
  type SpNodeOptions,
  type SpRole,
  type SpStatus,
} from './node.js';
export { startStatusServer } from './status-server.js';
