import type { Metric } from '@faultline/protocol';
import type { ActionRecord } from './decisions.js';
import type { MemberState } from './member.js';
import type { Thresholds } from './policy.js';
import type { Predictions } from './scaling-rule.js';

/** Counters of the cluster monitors (shared by all of them). */
export interface MonitorCounters {
  /** MemberFaults acted upon or held. */
  faults: number;
  /** MemberFaults of unknown, terminating or already held members (idempotency). */
  faultsIgnored: number;
  /** MemberFaults held in a fault storm. */
  faultsHeld: number;
  spawned: number;
  spawnFailed: number;
  terminated: number;
  pendingTimeouts: number;
}

export interface AutoscalerCounters extends MonitorCounters {
  /** Envelopes handed to the autoscaler (after the subscriber's dedupe). */
  received: number;
  /** SP events whose epoch is older than the newest seen (fencing). */
  staleEpochDropped: number;
  /** Events of a cluster the autoscaler does not manage. */
  unknownCluster: number;
  publishErrors: number;
  registryWrites: number;
  registryErrors: number;
}

export function newCounters(): AutoscalerCounters {
  return {
    received: 0,
    faults: 0,
    faultsIgnored: 0,
    faultsHeld: 0,
    staleEpochDropped: 0,
    unknownCluster: 0,
    spawned: 0,
    spawnFailed: 0,
    terminated: 0,
    pendingTimeouts: 0,
    publishErrors: 0,
    registryWrites: 0,
    registryErrors: 0,
  };
}

export interface MemberStatus {
  memberId: string;
  state: MemberState;
  partitionId: string;
  createdAt: number;
  activatedAt: number | null;
  /** `host:port` of its workload, once spawned. */
  address: string | null;
  /** The reason of a fault held in a fault storm. */
  heldFault: string | null;
}

export interface ClusterStatus {
  clusterId: string;
  cartridgeType: string;
  min: number;
  max: number;
  /** No longer configured: its members are being terminated. */
  retired: boolean;
  faultStormHeldSince: number | null;
  backoff: { failures: number; retryAt: number | null };
  scaling: { predicted: Predictions; consecutiveBelow: number };
  members: MemberStatus[];
}

export interface AutoscalerStatus {
  state: 'idle' | 'starting' | 'running' | 'closed';
  newestEpoch: number | null;
  counters: AutoscalerCounters;
  clusters: ClusterStatus[];
  /** The last actions, oldest first (also in the registry's autoscaler_action table). */
  lastActions: ActionRecord[];
  /** Member rows whose newest version has not reached the registry yet. */
  registryBacklog: number;
}

/** The latest per-member averages (MemberAverage…Event), for "least loaded" in scale down. */
export class LoadBook {
  private readonly members = new Map<string, { loadAverage?: number; memoryConsumption?: number }>();

  observe(memberId: string, metric: Metric, value: number): void {
    const entry = this.members.get(memberId) ?? {};
    if (metric === 'LoadAverage') entry.loadAverage = value;
    else if (metric === 'MemoryConsumption') entry.memoryConsumption = value;
    else return;
    this.members.set(memberId, entry);
  }

  forget(memberId: string): void {
    this.members.delete(memberId);
  }

  /** load/threshold + memory/threshold over the figures known; undefined without any. */
  score(memberId: string, thresholds: Thresholds): number | undefined {
    const entry = this.members.get(memberId);
    if (!entry) return undefined;
    const parts: number[] = [];
    if (entry.loadAverage !== undefined) parts.push(entry.loadAverage / thresholds.loadAverage);
    if (entry.memoryConsumption !== undefined) parts.push(entry.memoryConsumption / thresholds.memoryConsumption);
    return parts.length === 0 ? undefined : parts.reduce((a, b) => a + b, 0);
  }
}
