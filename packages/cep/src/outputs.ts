import {
  type ClusterStatEventType,
  createEnvelope,
  type Envelope,
  type MemberStatEventType,
} from '@faultline/protocol';
import type { FaultInfo, MemberRef } from './fault-detector.js';
import { type Output, outputId } from './output-ledger.js';
import type { WindowSummary } from './window-stats.js';

/*
 * The engine's outputs as envelopes, with their deterministic ids (DESIGN.md:
 * "a MemberFault's id derives from the member id and the last stat it was
 * seen by", so consumers dedupe what both nodes, or a takeover, produce twice):
 *
 *   MemberFaultEvent:<memberId>:<agent timestamp of the last stat seen>
 *   <Type>:<clusterId>:<networkPartitionId>:<windowTo>               cluster summaries
 *   <Type>:<clusterId>:<networkPartitionId>:<memberId>:<windowTo>    member summaries
 *
 * windowTo is the summary tick, a multiple of summaryIntervalMs on the wall
 * clock, the same on both nodes. `time` is this node's clock when produced.
 */

export function faultStream(memberId: string): string {
  return `MemberFaultEvent:${memberId}`;
}

export function faultOutput(member: Readonly<MemberRef>, info: FaultInfo, source: string, time: number): Output {
  const stream = faultStream(member.memberId);
  // The detector sets lastStatAt from the stat that first tracked the member, so null does not occur here.
  const seq = info.lastStatAt ?? 0;
  const envelope = createEnvelope(
    'MemberFaultEvent',
    {
      clusterId: member.clusterId,
      clusterInstanceId: member.clusterInstanceId,
      networkPartitionId: member.networkPartitionId,
      partitionId: member.partitionId,
      memberId: member.memberId,
      reason: info.reason,
      lastStatAt: info.lastStatAt,
      silentForMs: info.silentForMs,
    },
    { source, id: outputId(stream, seq), time },
  );
  return { kind: 'fault', stream, seq, envelope };
}

export function summaryType(summary: Pick<WindowSummary, 'kind' | 'metric' | 'memberId'>): string {
  const type = `${summary.kind}${summary.metric}Event`;
  return summary.memberId === undefined ? type : `Member${type}`;
}

export function summaryStream(
  type: string,
  clusterId: string,
  networkPartitionId: string,
  memberId: string | undefined,
): string {
  const cluster = `${type}:${clusterId}:${networkPartitionId}`;
  return memberId === undefined ? cluster : `${cluster}:${memberId}`;
}

export function summaryOutput(summary: WindowSummary, source: string, time: number): Output {
  const { clusterId, clusterInstanceId, networkPartitionId, memberId, value, windowFrom, windowTo } = summary;
  const type = summaryType(summary);
  const stream = summaryStream(type, clusterId, networkPartitionId, memberId);
  const options = { source, id: outputId(stream, windowTo), time };
  const data = { clusterId, clusterInstanceId, networkPartitionId, value, windowFrom, windowTo };
  const envelope: Envelope =
    memberId === undefined
      ? createEnvelope(type as ClusterStatEventType, data, options)
      : createEnvelope(type as MemberStatEventType, { ...data, memberId }, options);
  return { kind: 'summary', stream, seq: windowTo, envelope };
}
