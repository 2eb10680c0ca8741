import { createEnvelope, type EnvelopeOf } from '@faultline/protocol';

/** A MemberFaultEvent numbered `n`: id `fault-<n>`, memberId `m-<n>` (test data for the messaging tests and benches). */
export function numberedFault(n: number, source = 'test'): EnvelopeOf<'MemberFaultEvent'> {
  return createEnvelope(
    'MemberFaultEvent',
    {
      clusterId: 'c',
      clusterInstanceId: 'c-1',
      networkPartitionId: 'np-1',
      partitionId: 'p-1',
      memberId: `m-${n}`,
      reason: 'timeout',
      lastStatAt: n,
      silentForMs: 60_000,
    },
    { source, id: `fault-${n}`, time: 1_700_000_000_000 + n, epoch: 1 },
  );
}
