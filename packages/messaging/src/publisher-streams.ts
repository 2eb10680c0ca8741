import { decodeEnvelope, type Envelope, parseStatEventType } from '@faultline/protocol';

/**
 * The stream an envelope supersedes within, or undefined when it supersedes
 * nothing and nothing supersedes it.
 *
 * Only summarized stats are superseded: the next tick's figure of the same
 * (type, cluster, cluster instance, network partition) replaces the last one,
 * and the autoscaler acts on the latest figures only (as the passive SP's
 * ledger keeps only the newest summary per stream). A member summary lists
 * its members in parts (`data.part`), each part a stream of its own, so no
 * part displaces another. The key is wider than the CEP's
 * `<Type>:<cluster>:<partition>[:<part>]` (it also names the cluster
 * instance): too wide only costs a record kept, too narrow would lose one.
 *
 * A MemberFaultEvent, an instance status or topology event, an autoscaler
 * action or FaultStormHeld is a fact of its own: never coalesced, never dropped.
 * Ids never hold '/' (ID_PATTERN), so the key is unambiguous.
 */
export function supersededStream(envelope: Envelope): string | undefined {
  const name = parseStatEventType(envelope.type);
  if (name === undefined) return undefined;
  const { clusterId, clusterInstanceId, networkPartitionId } = envelope.data as {
    clusterId: string;
    clusterInstanceId: string;
    networkPartitionId: string;
  };
  const key = `${envelope.type}/${clusterId}/${clusterInstanceId}/${networkPartitionId}`;
  return name.scope === 'member' ? `${key}/${(envelope.data as { part: number }).part}` : key;
}

/** The stream of a record an older version wrote without one: decoded from its payload (undefined if it is no valid envelope). */
export function supersededStreamOfPayload(topic: string, payload: Buffer): string | undefined {
  const decoded = decodeEnvelope(payload, { topic, maxBytes: payload.length });
  return decoded.ok ? supersededStream(decoded.value) : undefined;
}
