import type { FaultKind } from './schedule.js';

/** A fault as injected: what was hit, when, and when the system got it back. Times are epoch ms. */
export interface InjectedFault {
  /** The planned fault's id. */
  id: number;
  kind: FaultKind;
  /** The planned target (`active`, `a`, `both`…), if any. */
  target?: string;
  burst: number;
  at: number;
  /** What was hit: service names (`sp-1`, `broker-a`, `postgres`, `autoscaler`) or member ids. */
  targets: string[];
  pids: number[];
  /** Members this fault harmed (member faults only). */
  memberIds: string[];
  /**
   * When the fault was over: the SIGCONT of a pause, a killed service back
   * (the supervisor logged it ready again), a member fault at once (its
   * replacement is the autoscaler's job, which the checker judges). null: never.
   */
  healedAt: number | null;
  /** Why nothing was done (no target at that moment). A skipped fault harms nothing and needs no heal. */
  skipped?: string;
}

/** An autoscaler decision, from its log, its action table, or both. */
export interface ActionEvent {
  at: number;
  action: string;
  clusterId: string;
  memberId: string | null;
  reason: string;
  epoch: number | null;
  source: 'log' | 'db' | 'both';
}

/** A log record of another kind, shown around a violation for context. */
export interface ContextEvent {
  at: number;
  service: string;
  text: string;
}

export type ProcessesState = 'running' | 'stopped' | 'partial' | 'gone';

/** The system at one moment: the registry's live members and the member processes that run. */
export interface Snapshot {
  at: number;
  /** Registry rows not Terminated, each with what /proc says of its processes. */
  members: { memberId: string; clusterId: string; state: string; processes: ProcessesState }[];
  /** Every member process of the stack (workload or agent), by the member folder it runs in. */
  memberProcesses: { pid: number; memberId: string | null; role: 'workload' | 'agent'; state: string }[];
}

export interface ClusterPolicy {
  id: string;
  min: number;
  max: number;
}

/** Everything the checker judges, recorded by a run (or made up by a test). */
export interface Observation {
  seed: string;
  clusters: ClusterPolicy[];
  /** The quiet period's bound (quietBound()). */
  boundMs: number;
  scheduleStartedAt: number;
  scheduleEndedAt: number;
  faults: InjectedFault[];
  /** Every autoscaler decision of the run (merged, in time order). */
  actions: ActionEvent[];
  /**
   * The action table was read: a decision only in the log (`source: 'log'`) then never reached the
   * registry (its write failed, or was fenced when the autoscaler node lost its lease).
   */
  actionTableRead?: boolean;
  /** Snapshots taken after the schedule, in time order; the last is the final one. */
  snapshots: Snapshot[];
  /** When `stack down` returned. */
  downAt: number;
  /** Processes of the stack's folder left after `stack down` returned. */
  leftoverAfterDown: { pid: number; cmdline: string }[];
  /** Other log records, for the timelines of violations. */
  context: ContextEvent[];
}

export const INVARIANTS = {
  replaced: '(i) every member that died or hung was replaced within the bound',
  untouched: '(ii) no member the nemesis never harmed is terminated',
  once: '(iii) no member terminated twice, no fault spawns two replacements',
  orphans: '(iv) no orphan process at the end, none left after stack down',
  healed: '(v) every injected fault healed (SIGCONT sent, killed service back)',
} as const;
export type InvariantKey = keyof typeof INVARIANTS;

export interface Violation {
  invariant: InvariantKey;
  /** When it shows (epoch ms): the offending action, or the end of the bound. */
  at: number;
  memberId?: string;
  message: string;
}
