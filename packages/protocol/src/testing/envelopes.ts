import { createEnvelope, type EnvelopeOf } from '../envelope.js';

/**
 * A member-summary envelope (MemberAverageLoadAverageEvent) of cluster `php`,
 * network partition `np-1`, part 0, ending at `windowTo`, listing `members`,
 * as the SP's leader (`sp-1`, epoch 1) publishes it.
 */
export function memberSummary(
  members: { memberId: string; value: number }[],
  windowTo = 60_000,
): EnvelopeOf<'MemberAverageLoadAverageEvent'> {
  return createEnvelope(
    'MemberAverageLoadAverageEvent',
    {
      clusterId: 'php',
      clusterInstanceId: 'php-1',
      networkPartitionId: 'np-1',
      windowFrom: 0,
      windowTo,
      part: 0,
      members,
    },
    { source: 'sp-1', epoch: 1, id: `MemberAverageLoadAverageEvent:php:np-1:0:${windowTo}`, time: windowTo + 1 },
  );
}
