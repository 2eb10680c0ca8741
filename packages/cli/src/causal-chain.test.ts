import type { ActionEntry, MemberRecord } from '@faultline/autoscaler';
import { describe, expect, it } from 'vitest';
import { chainOf, formatChain, pairReplacements } from './causal-chain.js';

let nextId = 0;
const act = (
  action: ActionEntry['action'],
  memberId: string,
  at = 0,
  extra: Partial<ActionEntry> = {},
): ActionEntry => ({
  id: ++nextId,
  at,
  action,
  clusterId: 'php',
  memberId,
  reason: `${action} ${memberId}`,
  epoch: null,
  fault: null,
  replaces: null,
  ...extra,
});

const member = (memberId: string, extra: Partial<MemberRecord> = {}): MemberRecord => ({
  memberId,
  clusterId: 'php',
  clusterInstanceId: 'php-1',
  networkPartitionId: 'np-1',
  partitionId: 'p-1',
  cartridgeType: 'php',
  state: 'Terminated',
  instance: null,
  reason: 'MemberFault (timeout, silent 5000 ms); instance still running',
  createdAt: 1_000,
  activatedAt: 2_000,
  terminatedAt: 12_000,
  ...extra,
});

describe('which spawn replaced which member', () => {
  it('pairs removals with the minimum-rule spawns in the order the cluster emptied', () => {
    const pairs = pairReplacements([
      act('MemberRemoved', 'php-a'),
      act('MemberRemoved', 'php-b'),
      act('MemberSpawnAction', 'php-c'),
      act('MemberSpawnAction', 'php-d'),
    ]);
    expect(pairs.get('php-a')?.memberId).toBe('php-c');
    expect(pairs.get('php-b')?.memberId).toBe('php-d');
  });

  it('takes a spawn that names the member it replaces as it says, and counts a removal recorded twice once', () => {
    const pairs = pairReplacements([
      act('MemberRemoved', 'php-a'),
      act('MemberRemoved', 'php-a'),
      act('MemberRemoved', 'php-b'),
      act('MemberSpawnAction', 'php-c', 0, { replaces: 'php-b' }),
      act('MemberSpawnAction', 'php-d'),
      act('MemberSpawnAction', 'php-e'),
    ]);
    expect(pairs.get('php-b')?.memberId).toBe('php-c');
    expect(pairs.get('php-a')?.memberId).toBe('php-d');
    expect([...pairs.values()].map((a) => a.memberId)).not.toContain('php-e');
  });

  it('replaces no scaled-down member, and no removal with a spawn that came before it', () => {
    const pairs = pairReplacements([
      act('MemberSpawnAction', 'php-x'), // the cluster growing to its minimum
      act('ScaleDownAction', 'php-a'),
      act('MemberRemoved', 'php-a'),
      act('MemberRemoved', 'php-b'),
      act('MemberSpawnAction', 'php-c'),
    ]);
    expect(pairs.has('php-a')).toBe(false);
    expect(pairs.get('php-b')?.memberId).toBe('php-c');
    expect([...pairs.values()].map((a) => a.memberId)).not.toContain('php-x');
  });
});

describe("a member's causal chain", () => {
  const fault = { kind: 'timeout' as const, lastStatAt: 9_000, declaredAt: 11_000 };

  it('runs last stat → fault → decision → terminated → spawn → active, in time order', () => {
    const own = [act('MemberTerminateAction', 'php-a', 11_050, { fault }), act('MemberRemoved', 'php-a', 12_000)];
    const spawn = act('MemberSpawnAction', 'php-b', 12_500);
    const chain = chainOf(
      'php-a',
      member('php-a'),
      own,
      spawn,
      member('php-b', { state: 'Active', activatedAt: 15_000 }),
    );
    expect(chain.steps.map((s) => [s.step, s.at])).toEqual([
      ['lastStat', 9_000],
      ['fault', 11_000],
      ['decision', 11_050],
      ['terminated', 12_000],
      ['spawn', 12_500],
      ['active', 15_000],
    ]);
    expect(chain.replacedBy).toBe('php-b');
    const text = formatChain(chain);
    expect(text).toContain('fault      MemberFault: no stats within the fault timeout  (+2.00 s)');
    expect(text).toContain('active     php-b active  (+2.50 s)');
  });

  it('ends at its last step so far, and says what is missing', () => {
    const own = [act('MemberTerminateAction', 'php-a', 11_050, { fault: { ...fault, lastStatAt: null } })];
    const chain = chainOf(
      'php-a',
      member('php-a', { state: 'Terminating', terminatedAt: null }),
      own,
      undefined,
      undefined,
    );
    expect(chain.steps.map((s) => s.step)).toEqual(['fault', 'decision']);
    expect(formatChain(chain)).toContain('no replacement spawned yet');
  });

  it('has no fault steps for a member that was scaled down, and escapes what the registry says', () => {
    const own = [
      act('ScaleDownAction', 'php-a', 5_000, { reason: 'idle\u001b[31m' }),
      act('MemberRemoved', 'php-a', 6_000),
    ];
    const chain = chainOf('php-a', member('php-a'), own, undefined, undefined);
    expect(chain.faulted).toBe(false);
    expect(chain.steps.map((s) => s.step)).toEqual(['decision', 'terminated']);
    const text = formatChain(chain);
    expect(text).toContain('no fault recorded');
    expect(text).not.toContain('\u001b');
  });
});
