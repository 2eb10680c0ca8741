export { type ActionRow, actionsFromLog, actionsFromRows, mergeActions, parseLogLines } from './actions.js';
export { ArgsError, type NemesisArgs, parseArgs, USAGE } from './args.js';
export { check, harmedAt, lastHealedAt, recoveredAt, recoveryProblems, SPAWNS } from './checker.js';
export {
  type ActionEvent,
  type ClusterPolicy,
  type ContextEvent,
  INVARIANTS,
  type InjectedFault,
  type InvariantKey,
  type Observation,
  type Snapshot,
  type Violation,
} from './model.js';
export { createPrng, hashSeed, type Prng, randomSeed } from './prng.js';
export { roleOf } from './procs.js';
export { formatReport, timelineAround } from './report.js';
export { killStackProcesses, type NemesisOptions, type NemesisResult, runNemesis } from './run.js';
export { describePlanned, FAULT_KINDS, type FaultKind, generateSchedule, type PlannedFault } from './schedule.js';
export { clustersFor, quietBound, stackConfig, TIMINGS, type Timings } from './stack-config.js';
