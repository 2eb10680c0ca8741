import type { FaultCounts } from './cluster-faults.js';
import type { MemberCounts } from './cluster-members.js';
import type { ActionRecord } from './decisions.js';
import type { MaintenanceEntry } from './maintenance.js';
import type { MemberState } from './member.js';
import type { ScalingStatus } from './scaling-rule.js';

/*
 * The shapes of `status()` (the autoscaler's and each cluster monitor's) and
 * of the counters it reports.
 */

/** What one cluster monitor counted: its faults and its members' spawns and terminates. */
export type MonitorCounts = FaultCounts & MemberCounts;

/** The autoscaler's counters: its own, its registry writer's, and the sum of its monitors'. */
export interface AutoscalerCounters extends MonitorCounts {
  /** Envelopes handed to the autoscaler (after the subscriber's dedupe). */
  received: number;
  /** SP summaries whose epoch is older than the newest seen (fencing). */
  staleEpochDropped: number;
  /** MemberFaults of an older epoch, still acted upon: a fact, not a command. */
  staleEpochFacts: number;
  /** Instances no registry member owns, terminated after the orphan grace period. */
  orphansTerminated: number;
  /** Events of a cluster the autoscaler does not manage. */
  unknownCluster: number;
  publishErrors: number;
  registryWrites: number;
  registryErrors: number;
}

export interface MemberStatus {
  memberId: string;
  state: MemberState;
  partitionId: string;
  createdAt: number;
  activatedAt: number | null;
  /** `host:port` of its workload, once spawned. */
  address: string | null;
  /** The reason of a held fault (in a fault storm, while the detector is silent, or in maintenance). */
  heldFault: string | null;
  /** Its maintenance (its own, or its cluster's), as last read from the registry; null when none. */
  maintenance: MaintenanceEntry | null;
  /** Out of service (its readiness probe fails, README "Probes"): why and since when; null in service or not known. */
  outOfService: { reason: string | null; since: number } | null;
  /** Draining (README "Autoscaler → Graceful drain"): Terminating, readiness false, stopped once idle or at this time; null otherwise. */
  drainingUntil: number | null;
}

export interface ClusterStatus {
  clusterId: string;
  cartridgeType: string;
  min: number;
  max: number;
  /** No longer configured: its members are being terminated. */
  retired: boolean;
  faultStormHeldSince: number | null;
  /** The whole cluster's maintenance, as last read from the registry; null when none. */
  maintenance: MaintenanceEntry | null;
  /** Network partitions of the cluster no member summary lists: faults there are held and verified. */
  detectorSilent: { networkPartitionId: string; since: number }[];
  backoff: { failures: number; retryAt: number | null };
  /**
   * The scaling rule: predictions, the run of low decisions, what the latest
   * decision recommends, and stabilization (`cooldownUntil`, `lastScale`,
   * `scaleDownFloor`, `held`).
   */
  scaling: ScalingStatus;
  members: MemberStatus[];
}

export interface ActionCount {
  action: ActionRecord['action'];
  clusterId: string;
  count: number;
}

export interface AutoscalerStatus {
  state: 'idle' | 'starting' | 'running' | 'closed';
  newestEpoch: number | null;
  counters: AutoscalerCounters;
  clusters: ClusterStatus[];
  /** The last actions, oldest first (also in the registry's autoscaler_action table). */
  lastActions: ActionRecord[];
  /** Actions decided since this autoscaler started (its term), by type and cluster. */
  actionCounts: ActionCount[];
  /** Member rows whose newest version has not reached the registry yet. */
  registryBacklog: number;
}
