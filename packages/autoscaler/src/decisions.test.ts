import { encodeEnvelope, topicFor } from '@faultline/protocol';
import { describe, expect, it } from 'vitest';
import { decisionEnvelope, toActionRecord, topologyEnvelope } from './decisions.js';

const member = {
  memberId: 'php-1',
  clusterId: 'php',
  clusterInstanceId: 'php-1',
  networkPartitionId: 'np-1',
  partitionId: 'p-1',
  cartridgeType: 'php',
};

describe('decision messages', () => {
  it('member actions go out as valid autoscaler/ envelopes with deterministic ids', () => {
    const envelope = decisionEnvelope(
      { action: 'MemberTerminateAction', clusterId: 'php', memberId: 'php-1', reason: 'MemberFault', epoch: 3 },
      1_000,
    );
    expect(envelope).toEqual({
      id: 'MemberTerminateAction:php-1',
      type: 'MemberTerminateAction',
      time: 1_000,
      source: 'autoscaler',
      data: { clusterId: 'php', memberId: 'php-1', reason: 'MemberFault', causeEpoch: 3 },
    });
    expect(topicFor('MemberTerminateAction')).toBe('autoscaler/MemberTerminateAction');
    if (envelope) expect(() => encodeEnvelope(envelope)).not.toThrow();
  });

  it('FaultStormHeld carries the storm; MemberRemoved and FaultStormReleased have no autoscaler/ message', () => {
    const held = decisionEnvelope(
      {
        action: 'FaultStormHeld',
        clusterId: 'php',
        reason: 'r',
        storm: { faultedMemberIds: ['a', 'b', 'c'], clusterSize: 4, windowMs: 60_000 },
      },
      5,
    );
    expect(held?.data).toEqual({
      clusterId: 'php',
      faultedMemberIds: ['a', 'b', 'c'],
      clusterSize: 4,
      windowMs: 60_000,
    });
    if (held) expect(() => encodeEnvelope(held)).not.toThrow();
    expect(
      decisionEnvelope({ action: 'MemberRemoved', clusterId: 'php', memberId: 'x', reason: 'r' }, 1),
    ).toBeUndefined();
    expect(decisionEnvelope({ action: 'FaultStormReleased', clusterId: 'php', reason: 'r' }, 1)).toBeUndefined();
  });

  it('clips a long reason to the protocol limit', () => {
    const envelope = decisionEnvelope(
      { action: 'MemberSpawnAction', clusterId: 'php', memberId: 'php-2', reason: 'x'.repeat(5_000) },
      1,
    );
    expect((envelope?.data as { reason?: string } | undefined)?.reason).toHaveLength(1024);
    if (envelope) expect(() => encodeEnvelope(envelope)).not.toThrow();
  });

  it('topology events name the member; the action record keeps nulls explicit', () => {
    const created = topologyEnvelope('MemberCreatedEvent', member, 7);
    expect(created).toMatchObject({ id: 'MemberCreatedEvent:php-1', type: 'MemberCreatedEvent', source: 'autoscaler' });
    expect(() => encodeEnvelope(created)).not.toThrow();
    expect(toActionRecord({ action: 'FaultStormReleased', clusterId: 'php', reason: 'r' }, 9)).toEqual({
      at: 9,
      action: 'FaultStormReleased',
      clusterId: 'php',
      memberId: null,
      reason: 'r',
      epoch: null,
      fault: null,
      replaces: null,
    });
  });
});
