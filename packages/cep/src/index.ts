export { DeadlineHeap, type HeapItem } from './deadline-heap.js';
export {
  type CepActivation,
  type CepCounters,
  type CepEngine,
  type CepExportStream,
  type CepRole,
  type CepStatus,
  createCepEngine,
  type OutputListener,
} from './engine.js';
export {
  type DetectorMemberState,
  FaultDetector,
  type FaultDetectorOptions,
  type FaultInfo,
  type FaultReason,
  type MemberLifeState,
  type TouchResult,
} from './fault-detector.js';
export {
  type CepEngineOptions,
  type FaultDeclared,
  type ResolvedCepEngineOptions,
  resolveCepEngineOptions,
} from './options.js';
export {
  type LedgerState,
  type Output,
  type OutputKind,
  OutputLedger,
  outputId,
  parseOutputId,
} from './output-ledger.js';
export {
  faultStream,
  type OversizedSummaryEntry,
  type SummaryOutputOptions,
  summaryOutputs,
  summaryStream,
  summaryType,
} from './outputs.js';
export { CEP_STATE_VERSION, type CepState, CepStateError, parseCepState } from './state.js';
export {
  CEP_STREAM_VERSION,
  type CepStreamChunk,
  type CepStreamHeader,
  ChunkWriter,
  MAX_CHUNK_ROWS,
  type MemberRow,
  type ParsedChunk,
  parseChunk,
  parseStreamHeader,
  type SeriesRow,
} from './state-stream.js';
export { gradientOf, type SeriesSummary, secondDerivativeOf, slopePerSecond, summarize } from './window-math.js';
export {
  type MemberSeriesState,
  type SampleSource,
  WindowStats,
  type WindowStatsOptions,
  type WindowSummary,
} from './window-stats.js';
