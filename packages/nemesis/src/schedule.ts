import { createPrng, type Prng } from './prng.js';

/**
 * What the nemesis can do to a running stack. Targets named by role are
 * resolved when the fault is injected (which SP node is active then, which
 * members run then); everything random is drawn here, from the seed.
 */
export const FAULT_KINDS = [
  'kill-sp', // SIGKILL an SP node (target active|passive); the supervisor restarts it
  'pause-sp', // SIGSTOP an SP node (target active|passive), SIGCONT after durationMs
  'kill-broker', // SIGKILL broker a, b or both; the supervisor restarts them
  'pause-broker', // SIGSTOP broker a, b or both, SIGCONT after durationMs
  'pause-postgres', // SIGSTOP every PostgreSQL process of the stack, SIGCONT after durationMs
  'slow-postgres', // PostgreSQL stutters for durationMs: stopped latencyMs, running 100 ms, again (statement latency)
  'kill-autoscaler', // SIGKILL an autoscaler node (target active|passive); the other takes over, the supervisor restarts it
  'kill-member', // SIGKILL a member's process group (workload and agent)
  'hang-member', // SIGSTOP a member's process group; never continued by the nemesis
  'kill-agent', // SIGKILL a member's cartridge agent only: the instance keeps running
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export const MEMBER_FAULTS: readonly FaultKind[] = ['kill-member', 'hang-member', 'kill-agent'];
export const PAUSE_FAULTS: readonly FaultKind[] = ['pause-sp', 'pause-broker', 'pause-postgres', 'slow-postgres'];

export interface PlannedFault {
  /** 1, 2, 3… in schedule order. */
  id: number;
  /** Offset from the start of the schedule. */
  atMs: number;
  kind: FaultKind;
  /** `active`/`passive` (SP), `a`/`b`/`both` (brokers); absent for the others. */
  target?: string;
  /** How long a pause lasts (pause kinds only). */
  durationMs?: number;
  /** slow-postgres: how long each stop lasts, the latency a statement sees at most. */
  latencyMs?: number;
  /** [0, 1): which of the candidate members (sorted by id) a member fault takes. */
  pick: number;
  /** Faults of one burst are drawn together and land within `burstSpreadMs` of each other. */
  burst: number;
}

export interface ScheduleOptions {
  /** Length of the fault schedule; no fault starts after it. */
  durationMs: number;
  /** Quiet time between bursts, drawn uniformly. @default [3_000, 10_000] */
  gapMs?: readonly [number, number];
  /** Pause lengths, drawn uniformly. @default [1_000, 8_000] */
  pauseMs?: readonly [number, number];
  /** slow-postgres stop lengths, drawn uniformly: up to the lease minus its margin. @default [400, 1_500] */
  latencyMs?: readonly [number, number];
  /** Faults of one burst start within this of its first. @default 1_500 */
  burstSpreadMs?: number;
  /** Relative weights of the kinds. @default DEFAULT_WEIGHTS */
  weights?: Partial<Record<FaultKind, number>>;
  /** Probabilities of a burst of 1, 2 and 3 faults. @default [0.6, 0.3, 0.1] */
  burstSizes?: readonly number[];
}

export const DEFAULT_WEIGHTS: Record<FaultKind, number> = {
  'kill-sp': 2,
  'pause-sp': 2,
  'kill-broker': 1.5,
  'pause-broker': 1.5,
  'pause-postgres': 1.5,
  'slow-postgres': 1.5,
  'kill-autoscaler': 1.5,
  'kill-member': 3,
  'hang-member': 2,
  'kill-agent': 2,
};

function drawTarget(kind: FaultKind, prng: Prng): string | undefined {
  switch (kind) {
    case 'kill-sp':
    case 'pause-sp':
    case 'kill-autoscaler':
      return prng.weighted([
        ['active', 0.6],
        ['passive', 0.4],
      ]);
    case 'kill-broker':
    case 'pause-broker':
      return prng.weighted([
        ['a', 0.4],
        ['b', 0.4],
        ['both', 0.2],
      ]);
    default:
      return undefined;
  }
}

/**
 * The fault schedule of a seed: bursts of 1–3 faults (several at once
 * sometimes), separated by random gaps, over `durationMs`. Pure: the same
 * seed and options give the same schedule.
 */
export function generateSchedule(seed: string, options: ScheduleOptions): PlannedFault[] {
  const prng = createPrng(seed);
  const [gapMin, gapMax] = options.gapMs ?? [3_000, 10_000];
  const [pauseMin, pauseMax] = options.pauseMs ?? [1_000, 8_000];
  const [latencyMin, latencyMax] = options.latencyMs ?? [400, 1_500];
  const spread = options.burstSpreadMs ?? 1_500;
  const sizes = options.burstSizes ?? [0.6, 0.3, 0.1];
  const weights = { ...DEFAULT_WEIGHTS, ...options.weights };
  const kinds = FAULT_KINDS.filter((k) => weights[k] > 0).map((k) => [k, weights[k]] as const);
  const out: PlannedFault[] = [];
  let t = 0;
  let burst = 0;
  for (;;) {
    t += prng.int(gapMin, gapMax);
    if (t > options.durationMs) break;
    burst += 1;
    const size = prng.weighted(sizes.map((p, i) => [i + 1, p] as const));
    const faults: Omit<PlannedFault, 'id'>[] = [];
    for (let i = 0; i < size; i += 1) {
      const kind = prng.weighted(kinds);
      const offset = i === 0 ? 0 : prng.int(0, spread);
      const target = drawTarget(kind, prng);
      const durationMs = PAUSE_FAULTS.includes(kind) ? prng.int(pauseMin, pauseMax) : undefined;
      const pick = prng.next();
      const latencyMs = kind === 'slow-postgres' ? prng.int(latencyMin, latencyMax) : undefined;
      faults.push({
        atMs: Math.min(t + offset, options.durationMs),
        kind,
        ...(target === undefined ? {} : { target }),
        ...(durationMs === undefined ? {} : { durationMs }),
        ...(latencyMs === undefined ? {} : { latencyMs }),
        pick,
        burst,
      });
    }
    faults.sort((x, y) => x.atMs - y.atMs);
    for (const f of faults) out.push({ id: out.length + 1, ...f });
  }
  return out;
}

/** One line per planned fault: `#3  +12.4s  pause-sp active 3.2s  (burst 2)`. */
export function describePlanned(f: PlannedFault): string {
  const what = [
    f.kind,
    f.target,
    f.durationMs === undefined ? undefined : `${(f.durationMs / 1000).toFixed(1)}s`,
    f.latencyMs === undefined ? undefined : `${f.latencyMs}ms stops`,
  ]
    .filter((x) => x !== undefined)
    .join(' ');
  return `#${String(f.id).padEnd(3)} +${(f.atMs / 1000).toFixed(1).padStart(6)}s  ${what.padEnd(28)} (burst ${f.burst}, pick ${f.pick.toFixed(3)})`;
}
