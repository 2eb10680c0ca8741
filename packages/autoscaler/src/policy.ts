import { type ClusterConfig, DEFAULTS } from '@faultline/core';
import { type ResolvedScalingOptions, resolveScalingOptions } from './options.js';

/** The thresholds of a deployment policy, in the units of the CEP's summaries. */
export interface Thresholds {
  /** Requests in flight per member (the cluster average of the members' samples). */
  requestsInFlight: number;
  /** Memory consumption, % of the machine. */
  memoryConsumption: number;
  /** Load average, % of the cores (1-minute load ÷ cores × 100). */
  loadAverage: number;
}

/**
 * One cluster's deployment policy (README "Autoscaler", "Deployment
 * policies"): what the autoscaler keeps running. Built from `clusters[]` of
 * the YAML config.
 */
export interface ClusterPolicy {
  id: string;
  cartridgeType: string;
  /** Stratos' cluster instance id; Faultline runs one instance per cluster: `<id>-1`. */
  clusterInstanceId: string;
  min: number;
  max: number;
  partitions: readonly { id: string; networkPartitionId: string }[];
  thresholds: Thresholds;
  /** Scale stabilization: the scale-down window, the cooldown, the largest step (`clusters[].scaling`). */
  scaling: ResolvedScalingOptions;
  /** Latency of the demo workload's requests (local driver). */
  workloadLatencyMs: number;
  /** Graceful drain of a member that still serves (`clusters[].drainTimeoutMs`); 0: none. */
  drainTimeoutMs: number;
  /** Of that drain, how long the member still takes new requests, for load balancers to read the mark (`clusters[].drainDelayMs`). */
  drainDelayMs: number;
  /**
   * A second witness before a kill (README "Autoscaler → Second witness"): on
   * a timeout or an absence of a member whose instance still runs, the
   * cloud controller probes its workload; answering, its agent is restarted
   * and the member kept, at most maxRestarts times within withinMs.
   */
  secondWitness: SecondWitnessPolicy;
  /**
   * Whether the autoscaler's own probe (the driver's `GET /healthz` on the
   * workload) is the cluster's startup probe, so a pending member it answers
   * may be activated without its InstanceActivatedEvent. False for a custom
   * startup probe (another path, port or status, tcp, exec): only the agent
   * can tell it passed.
   */
  activateByProbe: boolean;
  /**
   * The cluster is no longer in the configuration but the registry still has
   * members of it: min = max = 0, so every one of them is terminated.
   */
  retired: boolean;
}

/** `clusters[].secondWitness`: off by default. */
export interface SecondWitnessPolicy {
  enabled: boolean;
  /** Agent restarts of one member within withinMs; one more is not tried: the member is terminated. */
  maxRestarts: number;
  withinMs: number;
}

export function policyFrom(cluster: ClusterConfig): ClusterPolicy {
  return {
    id: cluster.id,
    cartridgeType: cluster.cartridgeType,
    clusterInstanceId: `${cluster.id}-1`,
    min: cluster.min,
    max: cluster.max,
    partitions: cluster.partitions.map((p) => ({ id: p.id, networkPartitionId: p.networkPartitionId })),
    thresholds: { ...cluster.thresholds },
    // A ClusterConfig built by hand (not parsed) may lack it: Stratos' behaviour then.
    scaling: resolveScalingOptions(cluster.scaling),
    workloadLatencyMs: cluster.workload.latencyMs,
    // A ClusterConfig built by hand (not parsed) may lack it.
    drainTimeoutMs: cluster.drainTimeoutMs ?? DEFAULTS.drainTimeoutMs,
    drainDelayMs: cluster.drainDelayMs ?? DEFAULTS.drainDelayMs,
    secondWitness: { ...DEFAULTS.secondWitness, ...cluster.secondWitness },
    activateByProbe: isDefaultStartup(cluster.probes?.startup),
    retired: false,
  };
}

/** The startup probe the driver's own probe stands for: http `GET /healthz` answering 200 on the workload's port. */
function isDefaultStartup(startup: ClusterConfig['probes']['startup'] | undefined): boolean {
  if (startup === undefined) return true;
  return (
    startup.type === 'http' &&
    (startup.path === undefined || startup.path === DEFAULTS.probes.startupPath) &&
    (startup.expectStatus === undefined || startup.expectStatus === 200) &&
    startup.port === undefined
  );
}

/** The policy of a cluster found only in the registry: all its members go. */
export function retiredPolicy(
  clusterId: string,
  cartridgeType: string,
  partition: { id: string; networkPartitionId: string },
): ClusterPolicy {
  return {
    id: clusterId,
    cartridgeType,
    clusterInstanceId: `${clusterId}-1`,
    min: 0,
    max: 0,
    partitions: [partition],
    thresholds: { ...DEFAULTS.thresholds },
    // Never used: a retired cluster does not scale.
    scaling: resolveScalingOptions(),
    // Never used: a retired cluster spawns nothing.
    workloadLatencyMs: DEFAULTS.workloadLatencyMs,
    // A retired cluster's members serve nobody the configuration still routes to: no drain.
    drainTimeoutMs: 0,
    drainDelayMs: 0,
    // Its members go anyway: none is repaired.
    secondWitness: { ...DEFAULTS.secondWitness, enabled: false },
    activateByProbe: true,
    retired: true,
  };
}
