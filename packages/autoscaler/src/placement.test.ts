import { describe, expect, it } from 'vitest';
import type { LiveMember, MemberContext } from './member.js';
import { choosePartition, LoadBook, leastLoaded } from './placement.js';

const member = (memberId: string, createdAt: number, partitionId = 'p-1'): LiveMember => ({
  memberId,
  clusterId: 'php',
  clusterInstanceId: 'php-1',
  networkPartitionId: 'np-1',
  partitionId,
  cartridgeType: 'php',
  createdAt,
  instance: undefined,
  state: 'Active',
  activatedAt: createdAt,
});
const thresholds = { requestsInFlight: 50, memoryConsumption: 80, loadAverage: 40 };

describe('leastLoaded', () => {
  it('scores load/threshold + memory/threshold and picks the lowest', () => {
    const load = new LoadBook();
    load.observe('a', 'LoadAverage', 20); // 0.5
    load.observe('a', 'MemoryConsumption', 8); // + 0.1 = 0.6
    load.observe('b', 'LoadAverage', 4); // 0.1
    load.observe('b', 'MemoryConsumption', 40); // + 0.5 = 0.6 (tie: newest wins)
    load.observe('c', 'MemoryConsumption', 36); // 0.45
    expect(leastLoaded([member('a', 1), member('b', 2), member('c', 3)], load, thresholds)?.memberId).toBe('c');
    expect(leastLoaded([member('a', 1), member('b', 2)], load, thresholds)?.memberId).toBe('b');
  });

  it('prefers a member with figures; without any, the newest', () => {
    const load = new LoadBook();
    load.observe('a', 'LoadAverage', 39);
    expect(leastLoaded([member('a', 1), member('b', 2)], load, thresholds)?.memberId).toBe('a');
    expect(leastLoaded([member('x', 1), member('y', 3), member('z', 2)], new LoadBook(), thresholds)?.memberId).toBe(
      'y',
    );
    expect(leastLoaded([], load, thresholds)).toBeUndefined();
  });
});

describe('choosePartition', () => {
  it('round robin: the partition with the fewest live members, policy order on a tie', () => {
    const partitions = [
      { id: 'p-1', networkPartitionId: 'np-1' },
      { id: 'p-2', networkPartitionId: 'np-1' },
    ];
    const members: MemberContext[] = [member('a', 1, 'p-1')];
    expect(choosePartition(partitions, []).id).toBe('p-1');
    expect(choosePartition(partitions, members).id).toBe('p-2');
    const gone: MemberContext = {
      ...member('b', 2, 'p-2'),
      state: 'Terminating',
      reason: 'x',
      since: 3,
      activatedAt: 2,
    };
    expect(choosePartition(partitions, [...members, gone]).id).toBe('p-2');
  });
});
