import { HEALTH_DESCRIPTIONS, type HealthStat, type HealthStatBatch, type StatColumns } from '../health.js';
import { issueMemberCredential } from '../member-credential.js';

/**
 * `batch` with the credential of the member its first stat names, as that
 * member's agent sends it: what every test and benchmark that talks to a real
 * SP sends. An SP accepts it only if every stat is for that member.
 */
export function signedBatch(key: Buffer, batch: HealthStatBatch): HealthStatBatch {
  const first = batch.stats[0];
  if (!first) throw new Error('signedBatch: a batch without stats names no member');
  return { ...batch, credential: issueMemberCredential(key, first) };
}

/** A valid stat of member php-m-1 (cluster php, php-1, np-1, p-1): load_average 1 at time 1 000, `fields` over it. */
export function testStat(fields: Partial<HealthStat> = {}): HealthStat {
  return {
    clusterId: 'php',
    clusterInstanceId: 'php-1',
    networkPartitionId: 'np-1',
    partitionId: 'p-1',
    memberId: 'php-m-1',
    healthDescription: 'load_average',
    value: 1,
    timestamp: 1_000,
    ...fields,
  };
}

/** A batch of one member's stats (at least one) in columns, as the SP reads an agent's call. */
export function columnsOf(batch: HealthStatBatch): StatColumns {
  const first = batch.stats[0];
  if (!first) throw new Error('columnsOf: a batch in columns has at least one stat');
  const { clusterId, clusterInstanceId, networkPartitionId, partitionId, memberId } = first;
  const columns: StatColumns = {
    agentId: batch.agentId,
    sequence: batch.sequence,
    ids: { clusterId, clusterInstanceId, networkPartitionId, partitionId, memberId },
    descriptions: Uint8Array.from(batch.stats, (s) => HEALTH_DESCRIPTIONS.indexOf(s.healthDescription)),
    values: Float64Array.from(batch.stats, (s) => s.value),
    timestamps: Float64Array.from(batch.stats, (s) => s.timestamp),
  };
  if (batch.credential !== undefined) columns.credential = batch.credential;
  return columns;
}
