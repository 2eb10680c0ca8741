import { createEnvelope, type Envelope, type MemberIdentity } from '@faultline/protocol';
import type { MemberContext } from './member.js';

/**
 * Every decision the autoscaler takes, as the `action` of its log record and
 * of its row in the registry's action table:
 *
 * - `MemberTerminateAction`  terminate a member whose instance still runs (fault, pending timeout);
 * - `MemberRemoved`          forget a member: out of the context, Terminated in the registry,
 *                            MemberTerminatedEvent on `topology/` (when it had been created);
 * - `MemberSpawnAction`      spawn a member for the minimum rule;
 * - `ScaleUpAction`          spawn a member because a predicted metric is over 0.8 × its threshold;
 * - `ScaleDownAction`        terminate the least loaded member (every metric under 0.1 × threshold,
 *                            or the cluster is over max);
 * - `FaultStormHeld`         stop acting on the cluster's faults;
 * - `FaultStormReleased`     the cluster's stats resumed (held faults are re-checked), or the
 *                            hold reached its bound;
 * - `DetectorSilent`         no member summary lists any member of a network partition of the
 *                            cluster: faults there are held and verified through the Iaas;
 * - `DetectorResumed`        summaries list that partition again;
 * - `OrphanTerminated`       an instance running on the infrastructure that no registry member
 *                            owns was terminated after the orphan grace period;
 * - `MaintenanceOn`          the registry puts the cluster (no member id) or one member in
 *                            maintenance: its faults are held, not acted on; for a cluster the
 *                            minimum and scaling rules pause;
 * - `MaintenanceOff`         that maintenance ended: its held faults are verified, the rules resume;
 * - `AgentRestarted`         the cluster's second witness found the workload of a member whose
 *                            agent was silent answering: the cloud controller started a new agent
 *                            in the same instance, which is kept (README "Autoscaler → Second witness").
 *
 * The five with an event type of their own go out as `autoscaler/<action>`;
 * `MemberRemoved` is announced by `topology/MemberTerminatedEvent`; the
 * others have no event in the protocol (log and registry only).
 */
export const ACTION_TYPES = [
  'MemberTerminateAction',
  'MemberRemoved',
  'MemberSpawnAction',
  'ScaleUpAction',
  'ScaleDownAction',
  'FaultStormHeld',
  'FaultStormReleased',
  'DetectorSilent',
  'DetectorResumed',
  'OrphanTerminated',
  'MaintenanceOn',
  'MaintenanceOff',
  'AgentRestarted',
] as const;
export type ActionType = (typeof ACTION_TYPES)[number];

/**
 * The fault behind a decision, as the autoscaler saw it: what a member's
 * causal chain shows (last stat, fault, decision). Epoch ms.
 */
export interface FaultTimes {
  /**
   * `timeout` or `ports_not_open` (a MemberFault), `absent` (no member summary
   * listed the member), or `gone` (the infrastructure no longer runs its
   * instance, found by reconciliation before any stat was missed).
   */
  kind: 'timeout' | 'ports_not_open' | 'absent' | 'gone';
  /** Agent timestamp of the member's last stat, as the MemberFault states it; null when none is known. */
  lastStatAt: number | null;
  /** The MemberFault's time (the CEP's clock), or the autoscaler's for an absence. */
  declaredAt: number;
}

export interface Decision {
  action: ActionType;
  clusterId: string;
  memberId?: string | undefined;
  reason: string;
  /** The SP leader epoch of the event that caused it, when one did. */
  epoch?: number | undefined;
  /** FaultStormHeld only. */
  storm?: { faultedMemberIds: string[]; clusterSize: number; windowMs: number };
  /** The first decision on a fault (MemberTerminateAction, else MemberRemoved). */
  fault?: FaultTimes | undefined;
  /** MemberSpawnAction of the minimum rule: the retired member this spawn refills the cluster for. */
  replaces?: string | undefined;
}

/** A decision taken inside one cluster's monitor: its ClusterSink adds the cluster id. */
export type ClusterDecision = Omit<Decision, 'clusterId'>;

/** Where the monitors' decisions go: the log, the registry, the brokers (the AutoscalerCore implements it). */
export interface MonitorSink {
  /** One decision: one log record, one registry action, one `autoscaler/` message where one exists. */
  decide(decision: Decision): void;
  /**
   * A member's context changed: its registry row is written. Resolves true
   * once written, false when the write failed (retried later): what must be
   * recorded before it is done (a spawn, a terminate) awaits it.
   */
  persist(member: MemberContext): Promise<boolean>;
  /** `topology/MemberCreatedEvent` / `MemberReadyToShutdownEvent` (draining) / `MemberTerminatedEvent`. */
  announce(type: TopologyEventType, member: MemberContext, reason?: string): void;
}

/** The MonitorSink as one cluster's parts use it: decisions without their cluster id. */
export interface ClusterSink extends Omit<MonitorSink, 'decide'> {
  decide(decision: ClusterDecision): void;
}

/** The sink of the cluster `clusterId`. */
export function clusterSink(sink: MonitorSink, clusterId: string): ClusterSink {
  return {
    decide: (decision) => sink.decide({ ...decision, clusterId }),
    persist: (member) => sink.persist(member),
    announce: (type, member, reason) => sink.announce(type, member, reason),
  };
}

/** A decision as logged, persisted and shown by status. */
export interface ActionRecord {
  /** Epoch ms. */
  at: number;
  action: ActionType;
  clusterId: string;
  memberId: string | null;
  reason: string;
  epoch: number | null;
  /** The fault behind it, when it is the first decision on one (stored in the row's `detail`). */
  fault: FaultTimes | null;
  /** The member a minimum-rule spawn replaces (stored in the row's `detail`), when the autoscaler knew it. */
  replaces: string | null;
}

export const AUTOSCALER_SOURCE = 'autoscaler';
const MAX_REASON = 1024;

const clip = (reason: string): string => (reason.length > MAX_REASON ? `${reason.slice(0, MAX_REASON - 1)}…` : reason);

export function toActionRecord(decision: Decision, at: number): ActionRecord {
  return {
    at,
    action: decision.action,
    clusterId: decision.clusterId,
    memberId: decision.memberId ?? null,
    reason: decision.reason,
    epoch: decision.epoch ?? null,
    fault: decision.fault ?? null,
    replaces: decision.replaces ?? null,
  };
}

/**
 * The `autoscaler/<Event>` message of a decision, or undefined for the two
 * without one. Ids are deterministic (`<action>:<memberId>`: each member is
 * spawned and terminated once), so a decision redone after a restart is
 * deduplicated by subscribers.
 */
export function decisionEnvelope(decision: Decision, time: number): Envelope | undefined {
  const { action, clusterId, memberId, epoch } = decision;
  const reason = clip(decision.reason);
  const options = (suffix: string) => ({ source: AUTOSCALER_SOURCE, id: `${action}:${suffix}`, time });
  switch (action) {
    case 'MemberTerminateAction':
    case 'MemberSpawnAction':
    case 'ScaleUpAction':
    case 'ScaleDownAction': {
      const data = {
        clusterId,
        reason,
        ...(memberId === undefined ? {} : { memberId }),
        ...(epoch === undefined ? {} : { causeEpoch: epoch }),
      };
      return createEnvelope(action, data, options(memberId ?? `${clusterId}:${time}`));
    }
    case 'FaultStormHeld': {
      const storm = decision.storm ?? { faultedMemberIds: [], clusterSize: 0, windowMs: 1 };
      return createEnvelope('FaultStormHeld', { clusterId, ...storm }, options(`${clusterId}:${time}`));
    }
    case 'MemberRemoved':
    case 'FaultStormReleased':
    case 'DetectorSilent':
    case 'DetectorResumed':
    case 'OrphanTerminated':
    case 'MaintenanceOn':
    case 'MaintenanceOff':
    case 'AgentRestarted':
      return undefined;
  }
}

/** What the autoscaler says on `topology/` about a member. */
export type TopologyEventType = 'MemberCreatedEvent' | 'MemberReadyToShutdownEvent' | 'MemberTerminatedEvent';

/** `topology/MemberCreatedEvent`, `MemberReadyToShutdownEvent` or `MemberTerminatedEvent` of a member. */
export function topologyEnvelope(
  type: TopologyEventType,
  member: MemberIdentity,
  time: number,
  reason?: string,
): Envelope {
  const data = {
    clusterId: member.clusterId,
    networkPartitionId: member.networkPartitionId,
    partitionId: member.partitionId,
    memberId: member.memberId,
    ...(reason === undefined ? {} : { reason: clip(reason) }),
  };
  return createEnvelope(type, data, { source: AUTOSCALER_SOURCE, id: `${type}:${member.memberId}`, time });
}
