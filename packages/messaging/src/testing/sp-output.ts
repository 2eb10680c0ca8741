import {
  type ClusterStatEventType,
  createEnvelope,
  type Envelope,
  type EnvelopeOf,
  MAX_ENVELOPE_BYTES,
  MEMBER_METRICS,
  MEMBERS_PER_STAT_EVENT,
  METRICS,
  type MemberStatEventType,
  STAT_KINDS,
  statEventType,
} from '@faultline/protocol';

/** The members the SP summarizes, per (cluster, network partition). */
export interface SpLayout {
  clusters: { clusterId: string; clusterInstanceId: string; networkPartitionId: string; memberIds: string[] }[];
}

/** `members` spread over `clusters` clusters, each in one network partition; ids as `<cluster>-<8 hex>-<n>`. */
export function spLayout(members: number, clusters: number): SpLayout {
  return {
    clusters: Array.from({ length: clusters }, (_, c) => {
      const clusterId = `cluster-${c}`;
      const count = Math.floor(members / clusters) + (c < members % clusters ? 1 : 0);
      return {
        clusterId,
        clusterInstanceId: `${clusterId}-1`,
        networkPartitionId: 'np-1',
        memberIds: Array.from({ length: count }, (_, i) => `${clusterId}-${hex8(c * 1_000_003 + i)}-${i}`),
      };
    }),
  };
}

function hex8(n: number): string {
  return (Math.imul(n + 1, 2_654_435_761) >>> 0).toString(16).padStart(8, '0');
}

/** A figure that differs per member and tick, with all the digits a computed average has. */
function figure(seed: number): number {
  return ((Math.imul(seed, 48_271) >>> 0) % 1_000_000) / 7_919;
}

export interface SpTickOptions {
  source?: string;
  epoch?: number;
  /** @default MAX_ENVELOPE_BYTES */
  maxMessageBytes?: number;
}

/**
 * One summary tick of an SP as its CEP monitor publishes it (README "CEP
 * monitor"): per cluster the nine cluster summaries, and the six member
 * summaries listing every member, cut into parts of at most
 * MEMBERS_PER_STAT_EVENT members whose envelope stays within maxMessageBytes
 * (less the room the CEP keeps for a node's own fields). Ids are the CEP's
 * deterministic ones: `<Type>:<cluster>:<partition>[:<part>]:<windowTo>`.
 */
export function spTick(layout: SpLayout, windowTo: number, options: SpTickOptions = {}): Envelope[] {
  const source = options.source ?? 'sp-1';
  const epoch = options.epoch ?? 1;
  const limit = (options.maxMessageBytes ?? MAX_ENVELOPE_BYTES) - 2_048;
  const windowFrom = windowTo - 60_000;
  const out: Envelope[] = [];
  for (const [c, { clusterId, clusterInstanceId, networkPartitionId, memberIds }] of layout.clusters.entries()) {
    for (const kind of STAT_KINDS) {
      for (const metric of METRICS) {
        const type = statEventType({ scope: 'cluster', kind, metric }) as ClusterStatEventType;
        const data = {
          clusterId,
          clusterInstanceId,
          networkPartitionId,
          value: figure(windowTo + c),
          windowFrom,
          windowTo,
        };
        const id = `${type}:${clusterId}:${networkPartitionId}:${windowTo}`;
        out.push(createEnvelope(type, data, { source, epoch, id, time: windowTo }) as Envelope);
      }
      for (const metric of MEMBER_METRICS) {
        const type = statEventType({ scope: 'member', kind, metric }) as MemberStatEventType;
        const part = (index: number, members: { memberId: string; value: number }[]) =>
          createEnvelope(
            type,
            { clusterId, clusterInstanceId, networkPartitionId, windowFrom, windowTo, part: index, members },
            { source, epoch, id: `${type}:${clusterId}:${networkPartitionId}:${index}:${windowTo}`, time: windowTo },
          ) as Envelope;
        let index = 0;
        let members: { memberId: string; value: number }[] = [];
        const skeleton = Buffer.byteLength(JSON.stringify(part(0, [])));
        let bytes = skeleton;
        for (const [i, memberId] of memberIds.entries()) {
          const entry = { memberId, value: figure(windowTo + i) };
          const size = JSON.stringify(entry).length;
          if (members.length >= MEMBERS_PER_STAT_EVENT || (members.length > 0 && bytes + 1 + size > limit)) {
            out.push(part(index, members));
            index += 1;
            members = [];
            bytes = skeleton;
          }
          bytes += (members.length > 0 ? 1 : 0) + size;
          members.push(entry);
        }
        if (members.length > 0) out.push(part(index, members));
      }
    }
  }
  return out;
}

/** The MemberFaultEvent of member `index` of `layout`'s first cluster, with the CEP's deterministic id. */
export function spMemberFault(
  layout: SpLayout,
  index: number,
  lastStatAt: number,
  options: SpTickOptions = {},
): EnvelopeOf<'MemberFaultEvent'> {
  const cluster = layout.clusters[index % layout.clusters.length] as SpLayout['clusters'][number];
  const memberId = cluster.memberIds[Math.floor(index / layout.clusters.length) % cluster.memberIds.length] as string;
  return createEnvelope(
    'MemberFaultEvent',
    {
      clusterId: cluster.clusterId,
      clusterInstanceId: cluster.clusterInstanceId,
      networkPartitionId: cluster.networkPartitionId,
      partitionId: 'p-1',
      memberId,
      reason: 'timeout',
      lastStatAt,
      silentForMs: 60_000,
    },
    {
      source: options.source ?? 'sp-1',
      epoch: options.epoch ?? 1,
      id: `MemberFaultEvent:${memberId}:${lastStatAt}`,
      time: lastStatAt + 60_000,
    },
  );
}
