import type { MemberIdentity } from '../identity.js';

/** A member of cluster `php` (instance `php-1`, partition `p-1` of `np-1`): test data for every package. */
export function testMember(memberId = 'php-m-1'): MemberIdentity {
  return { clusterId: 'php', clusterInstanceId: 'php-1', networkPartitionId: 'np-1', partitionId: 'p-1', memberId };
}
