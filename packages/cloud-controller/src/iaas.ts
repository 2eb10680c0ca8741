import type { Endpoint, MemberIdentity } from '@faultline/protocol';

/**
 * The cloud controller's driver interface: what the autoscaler needs from an
 * IaaS, and nothing of how. The local driver runs members as process groups
 * on this machine; an EC2, OpenStack or Kubernetes driver implements the same
 * methods and the autoscaler does not change. The README section "Writing
 * another IaaS driver" explains how to write one.
 */

/**
 * Who a member is for the cloud controller: protocol's member identity and the
 * cartridge type it runs (Stratos 4.1), as the autoscaler and the topology name it.
 */
export interface CartridgeMemberIdentity extends MemberIdentity {
  cartridgeType: string;
}

/**
 * Everything needed to start one member. What its cartridge agent is told
 * (AgentSettings) is the driver's, the same for every member it spawns.
 */
export interface MemberSpec extends CartridgeMemberIdentity {
  workload?: {
    /** Latency of each request the demo workload serves. @default the driver's defaultLatencyMs (config `clusters[].workload.latencyMs`) */
    latencyMs?: number;
  };
}

/**
 * A running member as the driver knows it: plain JSON, so the autoscaler can
 * keep it in its PostgreSQL registry and hand it back to `adopt()` after a
 * restart. Credentials are deliberately not part of it.
 */
export interface MemberInstance extends CartridgeMemberIdentity {
  /** The driver that spawned it, e.g. `local`; a driver adopts only its own instances. */
  driver: string;
  /** Epoch ms of the spawn. */
  spawnedAt: number;
  /** Where the member's workload serves HTTP. */
  address: Endpoint;
  /**
   * What this driver needs to find the instance again (local: process group,
   * pids and start times; a cloud: the instance id). Opaque to the autoscaler.
   */
  handle: unknown;
}

export interface TerminateOptions {
  /** How long the member may take to stop after SIGTERM (or the cloud's soft stop). @default the driver's defaultGraceMs */
  graceMs?: number;
  /**
   * Graceful drain before the stop (README "Autoscaler → Graceful drain"): the
   * member's workload is asked to refuse new requests and finish those in
   * flight, and the stop begins once it reports idle, its instance is gone,
   * or after this long. 0 (the default): stopped at once, as a faulted member is.
   */
  drainMs?: number;
  /**
   * Ends a drain under way without stopping the member (its caller is closing: the next owner
   * finishes it): terminate then rejects with FL_ERR_CLOSED and the member stays known.
   */
  signal?: AbortSignal;
}

/**
 * How a terminate ended.
 * - `terminated`: it stopped within the grace period;
 * - `killed`: it had to be killed (SIGKILL, a cloud's force-stop);
 * - `already-gone`: the driver knew it, but nothing of it was running any more;
 * - `unknown`: the driver never knew this member (or forgot it after an earlier terminate);
 * - `stuck`: it was killed but something of it is still there (uninterruptible
 *   I/O); the member stays known, so a later terminate tries again.
 */
export type TerminateOutcome = 'terminated' | 'killed' | 'already-gone' | 'unknown' | 'stuck';

export interface TerminateResult {
  memberId: string;
  outcome: TerminateOutcome;
  /** Time from the request to the outcome, ms on the driver's clock. */
  elapsedMs: number;
  /** How a drain asked for (`drainMs` > 0) ended: `idle` (the workload finished), `timeout`, or `skipped` (nothing to drain). */
  drain?: 'idle' | 'timeout' | 'skipped';
}

export interface AdoptResult {
  /** Still running: the driver knows them again (terminate and isRunning work on them). */
  adopted: MemberInstance[];
  /** No longer running (or another instance now holds their pid): forgotten; whatever was left of them is stopped. */
  gone: { memberId: string; reason: string }[];
  /** Not an instance of this driver, or malformed: ignored, logged and counted. */
  invalid: { index: number; memberId: string | undefined; reason: string }[];
}

/**
 * What the autoscaler's own check of a member found (`probe()`):
 * - `gone`: its instance does not run (or the driver does not know it);
 * - `answering`: its workload answered `GET /healthz` with 200 in time;
 * - `failing`: it runs, but its workload did not answer so (refused, hung, another status).
 */
export type ProbeAnswer = 'answering' | 'failing' | 'gone';

/**
 * How a `restartAgent()` ended, with a reason for the log and the autoscaler's record:
 * - `restarted`: a new agent runs in the instance (started now, or by an
 *   earlier request whose answer was lost); `instance` names it, to be kept
 *   where the member's instance is kept (the autoscaler's registry);
 * - `running`: the agent the driver knows of still runs: none was started;
 * - `gone`: the instance does not run, or the driver does not know it;
 * - `failed`: it runs, but no new agent could be seen running in time (its
 *   workload is stopped, cannot start one, or did not).
 */
export type AgentRestartResult =
  | { outcome: 'restarted'; instance: MemberInstance; reason: string }
  | { outcome: 'running' | 'gone' | 'failed'; reason: string };

export interface Iaas {
  /** The driver's name, recorded in every instance it spawns (`local`). */
  readonly name: string;
  /** Starts a member; resolves once it runs (local: the workload listens and its agent was started). */
  spawn(spec: MemberSpec): Promise<MemberInstance>;
  /**
   * Stops a member and forgets it. Idempotent: an unknown or already stopped
   * member resolves (`unknown`, `already-gone`), never rejects. It also cleans
   * up what is left of a member whose instance died by itself (a lingering
   * agent), so callers terminate every member they forget.
   */
  terminate(memberId: string, options?: TerminateOptions): Promise<TerminateResult>;
  /** Whether the member's instance (its workload) still runs, whatever its agent does. False for unknown members. */
  isRunning(memberId: string): Promise<boolean>;
  /** Every member the driver knows (spawned or adopted, not yet terminated), running or not. */
  list(): Promise<MemberInstance[]>;
  /** Takes over members spawned by an earlier life of the driver (the registry's rows), keeping only those still running. */
  adopt(instances: readonly unknown[]): Promise<AdoptResult>;
  /**
   * Every member instance running on the infrastructure: those the driver
   * knows, plus those an earlier life of it spawned that nobody adopted (the
   * autoscaler died between spawn and its registry write, the registry was
   * down). Found instances become known, as adopt() makes them (terminate,
   * isRunning and probe work on them); so the caller reconciles its registry
   * with the result: adopt what it wants, terminate the rest. What is found
   * of a member that no longer runs (a lingering agent, a spawn an earlier
   * life never finished) is stopped and forgotten. Bounded (local: at most
   * `discoverMaxRecords` records, each read to a few KiB); a malformed record
   * is logged, counted and skipped, never thrown.
   */
  discover(): Promise<MemberInstance[]>;
  /**
   * The autoscaler's own check of a member, for when the data path (agent →
   * SP → broker) may be what fails: `gone` when the instance does not run or
   * is unknown, `answering` when its workload answers `GET /healthz` on
   * `instance.address` with 200 within the driver's probe timeout, else
   * `failing`. Never rejects but after close().
   */
  probe(memberId: string): Promise<ProbeAnswer>;
  /**
   * The smallest repair of a member whose workload still answers but whose
   * agent is silent (README "Autoscaler → Second witness"): the instance
   * starts a new cartridge agent if, and only if, its agent is gone, and the
   * instance is kept. Idempotent: a call while one is under way shares its
   * answer, and a repeated request starts no second agent. Bounded in time
   * (local: `agentRestartTimeoutMs`). A driver that cannot restart an agent
   * answers `failed`. Never rejects but after close().
   */
  restartAgent(memberId: string): Promise<AgentRestartResult>;
  /** Stops the driver itself. Members keep running: they belong to the registry, not to this process. Idempotent. */
  close(): Promise<void>;
}
