import type { Clock } from '@faultline/core';
import {
  type AnyBatch,
  type BatchRefusal,
  type CredentialIdentity,
  HEALTH_DESCRIPTIONS,
  type HealthDescription,
  type HealthStatBatch,
  isStatColumns,
  MemberCredentialVerifier,
  type StatColumns,
  valueInRange,
} from '@faultline/protocol';

export interface BatchAdmissionOptions {
  /** The platform's member key (`security.memberKeyFile`). */
  memberKey: Buffer;
  clock: Clock;
  /** A stat's timestamp may be at most this far from the node's clock, either way. */
  timestampWindowMs: number;
}

export interface Refusal {
  reason: BatchRefusal;
  /** A short explanation for the agent and the log; ids in it follow ID_PATTERN. */
  detail: string;
}

/** `agentId` is the member's own: its id, or its id followed by `:<digits>` (AGENT_ID_PATTERN holds). */
function isAgentOf(agentId: string, memberId: string): boolean {
  return agentId === memberId || (agentId.startsWith(memberId) && agentId.charCodeAt(memberId.length) === 58); // ':'
}

/**
 * Whether a validated batch may act on the engine (README "Agents → SP
 * (Thrift)"): its credential verifies, its agent id is the member's own,
 * and every stat is for that member, stamped within the window around this
 * node's clock, with a value in its description's bounds. The first failure
 * is the answer; nothing else is looked at. The sequence window is the
 * dedupe's (`BatchDedupe.add`). A steady agent costs one cache lookup for
 * its credential and a pass over its stats of plain comparisons, most of
 * them of references (~25 ns a stat; both SP nodes check every batch).
 */
export class BatchAdmission {
  private readonly verifier: MemberCredentialVerifier;

  constructor(private readonly options: BatchAdmissionOptions) {
    this.verifier = new MemberCredentialVerifier(options.memberKey);
  }

  /** undefined when the batch is admitted; `slackMs` widens the timestamp window (the passive). */
  check(batch: AnyBatch, slackMs = 0): Refusal | undefined {
    const verified = this.verifier.verify(batch.credential);
    if (!verified.ok) {
      return {
        reason: verified.error,
        detail:
          verified.error === 'credential_missing'
            ? 'the batch carries no credential'
            : 'the credential does not verify',
      };
    }
    const member: CredentialIdentity = verified.value;
    if (!isAgentOf(batch.agentId, member.memberId)) {
      return { reason: 'agent_mismatch', detail: `agent id ${batch.agentId} is not of member ${member.memberId}` };
    }
    const now = this.options.clock.now();
    const window = this.options.timestampWindowMs + slackMs;
    if (isStatColumns(batch)) return checkColumns(batch, member, now, window);
    const earliest = now - window;
    const latest = now + window;
    const { stats } = batch;
    // Each stat is held to the first, the first to the credential: the same test, but validation
    // (scanBatch) hands a batch's repeated ids as one string, so after the first these compare references.
    const first = stats[0];
    const expected: CredentialIdentity =
      first !== undefined &&
      first.memberId === member.memberId &&
      first.clusterId === member.clusterId &&
      first.networkPartitionId === member.networkPartitionId
        ? first
        : member;
    for (let i = 0; i < stats.length; i++) {
      const stat = stats[i] as HealthStatBatch['stats'][number];
      if (
        stat.memberId !== expected.memberId ||
        stat.clusterId !== expected.clusterId ||
        stat.networkPartitionId !== expected.networkPartitionId
      ) {
        return {
          reason: 'member_mismatch',
          detail: `stats.${i} is for ${stat.memberId} of ${stat.clusterId}/${stat.networkPartitionId}, the credential for ${member.memberId} of ${member.clusterId}/${member.networkPartitionId}`,
        };
      }
      if (!(stat.timestamp >= earliest && stat.timestamp <= latest)) {
        return {
          reason: 'timestamp_out_of_window',
          detail: `stats.${i} timestamp ${stat.timestamp} is more than ${window} ms from the SP's clock (${now})`,
        };
      }
      if (!valueInRange(stat.healthDescription, stat.value)) {
        return {
          reason: 'value_out_of_range',
          detail: `stats.${i} ${stat.healthDescription} ${stat.value} is out of range`,
        };
      }
    }
    return undefined;
  }
}

/** `BatchAdmission.check` of a batch in columns, past its credential: the same rules, the same first failure. */
function checkColumns(
  batch: StatColumns,
  member: CredentialIdentity,
  now: number,
  window: number,
): Refusal | undefined {
  const { ids, descriptions, values, timestamps } = batch;
  if (
    ids.memberId !== member.memberId ||
    ids.clusterId !== member.clusterId ||
    ids.networkPartitionId !== member.networkPartitionId
  ) {
    return {
      reason: 'member_mismatch',
      detail: `stats.0 is for ${ids.memberId} of ${ids.clusterId}/${ids.networkPartitionId}, the credential for ${member.memberId} of ${member.clusterId}/${member.networkPartitionId}`,
    };
  }
  const earliest = now - window;
  const latest = now + window;
  for (let i = 0; i < values.length; i++) {
    const timestamp = timestamps[i] as number;
    if (!(timestamp >= earliest && timestamp <= latest)) {
      return {
        reason: 'timestamp_out_of_window',
        detail: `stats.${i} timestamp ${timestamp} is more than ${window} ms from the SP's clock (${now})`,
      };
    }
    const description = HEALTH_DESCRIPTIONS[descriptions[i] as number] as HealthDescription;
    if (!valueInRange(description, values[i] as number)) {
      return {
        reason: 'value_out_of_range',
        detail: `stats.${i} ${description} ${values[i]} is out of range`,
      };
    }
  }
  return undefined;
}
