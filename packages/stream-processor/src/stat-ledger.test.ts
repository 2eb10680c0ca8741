import { columnsOf } from '@faultline/protocol/testing';
import { describe, expect, it } from 'vitest';
import { StatLedger } from './stat-ledger.js';

const stat = (memberId: string, value: number) => ({
  clusterId: 'php',
  clusterInstanceId: 'php-1',
  networkPartitionId: 'np-1',
  partitionId: 'p-1',
  memberId,
  healthDescription: 'load_average' as const,
  value,
  timestamp: 1_000,
});

describe('StatLedger', () => {
  it("gives one member's part of its state in the shape of the whole, and its size", () => {
    const ledger = new StatLedger();
    ledger.apply({ agentId: 'a', sequence: 1, stats: [stat('m-1', 1), stat('m-2', 2), stat('m-1', 3)] });
    const whole = ledger.exportState();
    expect(ledger.exportMember('m-1')).toEqual({ total: 3, members: { 'm-1': whole.members['m-1'] } });
    expect(ledger.exportMember('nobody')).toEqual({ total: 3, members: {} });
    expect(ledger.trackedMembers()).toBe(2);
    ledger.close();
  });

  it('takes a batch in columns exactly as the same batch as objects', () => {
    const objects = new StatLedger();
    const columns = new StatLedger();
    for (let sequence = 1; sequence <= 5; sequence++) {
      const batch = { agentId: 'a', sequence, stats: [stat('m-1', sequence), stat('m-1', 10 * sequence)] };
      objects.apply(batch);
      columns.apply(columnsOf(batch));
    }
    expect(columns.exportState()).toEqual(objects.exportState());
    expect(columns.exportState().total).toBe(10);
    objects.close();
    columns.close();
  });
});
