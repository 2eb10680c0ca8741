import {
  type ClusterStatEventType,
  createEnvelope,
  MEMBERS_PER_STAT_EVENT,
  type MemberIdentity,
  type MemberStatEventType,
  memberIdentityOf,
  type StatEventType,
  statEventType,
} from '@faultline/protocol';
import type { FaultInfo } from './fault-detector.js';
import { type Output, outputId } from './output-ledger.js';
import type { WindowSummary } from './window-stats.js';

/*
 * The engine's outputs as envelopes, with their deterministic ids (a
 * MemberFault's id derives from the member id and the last stat it was seen
 * by, so consumers dedupe what both nodes, or a takeover, produce twice):
 *
 *   MemberFaultEvent:<memberId>:<agent timestamp of the last stat seen>
 *   <Type>:<clusterId>:<networkPartitionId>:<windowTo>               cluster summaries
 *   Member<Type>:<clusterId>:<networkPartitionId>:<part>:<windowTo>  member summaries
 *
 * windowTo is the summary tick, a multiple of summaryIntervalMs on the wall
 * clock, the same on both nodes. `time` is this node's clock when produced.
 * A member summary lists every member of its cluster in the tick, in the
 * window's fixed member order, MEMBERS_PER_STAT_EVENT per part.
 */

export function faultStream(memberId: string): string {
  return `MemberFaultEvent:${memberId}`;
}

export function faultOutput(member: Readonly<MemberIdentity>, info: FaultInfo, source: string, time: number): Output {
  const stream = faultStream(member.memberId);
  // The detector sets lastStatAt from the stat that first tracked the member, so null does not occur here.
  const seq = info.lastStatAt ?? 0;
  const envelope = createEnvelope(
    'MemberFaultEvent',
    {
      ...memberIdentityOf(member),
      reason: info.reason,
      lastStatAt: info.lastStatAt,
      silentForMs: info.silentForMs,
    },
    { source, id: outputId(stream, seq), time },
  );
  return { kind: 'fault', stream, seq, envelope };
}

export function summaryType(summary: Pick<WindowSummary, 'kind' | 'metric' | 'memberId'>): StatEventType {
  const scope = summary.memberId === undefined ? 'cluster' : 'member';
  return statEventType({ scope, kind: summary.kind, metric: summary.metric });
}

export function summaryStream(type: string, clusterId: string, networkPartitionId: string, part?: number): string {
  const cluster = `${type}:${clusterId}:${networkPartitionId}`;
  return part === undefined ? cluster : `${cluster}:${part}`;
}

/**
 * The outputs of one tick: one per cluster summary, and the member summaries
 * gathered into one event per (type, cluster, network partition) and part,
 * in the order the window listed them.
 */
export function summaryOutputs(summaries: readonly WindowSummary[], source: string, time: number): Output[] {
  const out: Output[] = [];
  const byType = new Map<string, { first: WindowSummary; members: { memberId: string; value: number }[] }>();
  for (const summary of summaries) {
    if (summary.memberId === undefined) {
      out.push(clusterOutput(summary, source, time));
      continue;
    }
    const key = `${summaryType(summary)}\u0000${summary.clusterId}\u0000${summary.networkPartitionId}`;
    let group = byType.get(key);
    if (!group) {
      group = { first: summary, members: [] };
      byType.set(key, group);
    }
    group.members.push({ memberId: summary.memberId, value: summary.value });
  }
  for (const { first, members } of byType.values()) {
    for (let part = 0; part * MEMBERS_PER_STAT_EVENT < members.length; part += 1) {
      const slice = members.slice(part * MEMBERS_PER_STAT_EVENT, (part + 1) * MEMBERS_PER_STAT_EVENT);
      out.push(membersOutput(first, part, slice, source, time));
    }
  }
  return out;
}

function clusterOutput(summary: WindowSummary, source: string, time: number): Output {
  const { clusterId, clusterInstanceId, networkPartitionId, value, windowFrom, windowTo } = summary;
  const type = summaryType(summary) as ClusterStatEventType;
  const stream = summaryStream(type, clusterId, networkPartitionId);
  const data = { clusterId, clusterInstanceId, networkPartitionId, value, windowFrom, windowTo };
  const envelope = createEnvelope(type, data, { source, id: outputId(stream, windowTo), time });
  return { kind: 'summary', stream, seq: windowTo, envelope };
}

/** The part's cluster instance is its first member's (a cluster's members share one). */
function membersOutput(
  first: WindowSummary,
  part: number,
  members: { memberId: string; value: number }[],
  source: string,
  time: number,
): Output {
  const { clusterId, clusterInstanceId, networkPartitionId, windowFrom, windowTo } = first;
  const type = summaryType(first) as MemberStatEventType;
  const stream = summaryStream(type, clusterId, networkPartitionId, part);
  const data = { clusterId, clusterInstanceId, networkPartitionId, windowFrom, windowTo, part, members };
  const envelope = createEnvelope(type, data, { source, id: outputId(stream, windowTo), time });
  return { kind: 'summary', stream, seq: windowTo, envelope };
}
