import type { MemberInstance } from '@faultline/cloud-controller';
import type { MemberRecord, MemberState } from '../member.js';
import { T0 } from './harness.js';

/**
 * A registry row of a member as a previous life left it (tests of adoption,
 * drain, …): spawned a minute before T0 on the fake driver, Active ones
 * activated 50 s before T0. `instance: false` leaves it unspawned; any other
 * field of the row can be given.
 */
export function memberRow(
  memberId: string,
  state: MemberState,
  options: { clusterId?: string; instance?: boolean } & Partial<Omit<MemberRecord, 'instance'>> = {},
): MemberRecord {
  const { clusterId = 'php', instance: spawned = true, ...extra } = options;
  const identity = {
    memberId,
    clusterId,
    clusterInstanceId: `${clusterId}-1`,
    networkPartitionId: 'np-1',
    partitionId: 'p-1',
    cartridgeType: clusterId,
  };
  const instance: MemberInstance = {
    ...identity,
    driver: 'fake',
    spawnedAt: T0 - 60_000,
    address: { host: '127.0.0.1', port: 1 },
    handle: {},
  };
  return {
    ...identity,
    state,
    instance: spawned ? instance : null,
    reason: null,
    createdAt: T0 - 60_000,
    activatedAt: state === 'Active' ? T0 - 50_000 : null,
    terminatedAt: null,
    ...extra,
  };
}
