import { systemClock } from '@faultline/core';
import {
  decodeBatch,
  encodeBatch,
  type HealthStat,
  type HealthStatBatch,
  issueMemberCredential,
} from '@faultline/protocol';
import { columnsOf, TEST_MEMBER_KEY as key, signedBatch, testMember } from '@faultline/protocol/testing';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BatchAdmission } from './batch-admission.js';

const T0 = 1_800_000_000_000;
const WINDOW = 600_000;
const stat = (overrides: Partial<HealthStat> = {}): HealthStat => ({
  ...testMember(),
  healthDescription: 'load_average',
  value: 40,
  timestamp: T0,
  ...overrides,
});
const batch = (stats: HealthStat[], agentId = 'php-m-1:1700000000000'): HealthStatBatch =>
  signedBatch(key, { agentId, sequence: 1, stats });

describe('BatchAdmission', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(T0);
  });
  afterEach(() => vi.useRealTimers());

  const admission = () => new BatchAdmission({ memberKey: key, clock: systemClock, timestampWindowMs: WINDOW });
  const reason = (b: HealthStatBatch, slackMs?: number) => admission().check(b, slackMs)?.reason;

  it("admits a batch of the credential's member, under its own agent id", () => {
    expect(reason(batch([stat(), stat({ healthDescription: 'ports_not_open', value: 0 })]))).toBeUndefined();
    expect(reason(batch([stat()], 'php-m-1'))).toBeUndefined();
    const empty = { agentId: 'php-m-1', sequence: 1, stats: [], credential: issueMemberCredential(key, testMember()) };
    expect(reason(empty)).toBeUndefined();
  });

  it('refuses with the first reason that applies', () => {
    const other = issueMemberCredential(key, { ...testMember('php-m-2') });
    expect(reason({ ...batch([stat()]), credential: undefined })).toBe('credential_missing');
    expect(reason({ ...batch([stat()]), credential: `${other.slice(0, -2)}AA` })).toBe('credential_invalid');
    // Another member's agent id, even one that starts with this member's id.
    expect(reason(batch([stat()], 'php-m-2'))).toBe('agent_mismatch');
    expect(reason(batch([stat()], 'php-m-10:1'))).toBe('agent_mismatch');
    expect(reason(batch([stat(), stat({ memberId: 'php-m-2' })]))).toBe('member_mismatch');
    expect(reason(batch([stat(), { ...stat(), clusterId: 'other' }]))).toBe('member_mismatch');
    expect(reason(batch([stat(), { ...stat(), networkPartitionId: 'np-2' }]))).toBe('member_mismatch');
    // The credential is bound to the member, cluster and network partition only.
    expect(reason(batch([stat(), { ...stat(), partitionId: 'p-9', clusterInstanceId: 'php-9' }]))).toBeUndefined();
  });

  it('refuses timestamps outside the window around the clock, either way; the passive gets some slack', () => {
    expect(reason(batch([stat({ timestamp: T0 - WINDOW })]))).toBeUndefined();
    expect(reason(batch([stat({ timestamp: T0 + WINDOW })]))).toBeUndefined();
    expect(reason(batch([stat({ timestamp: T0 - WINDOW - 1 })]))).toBe('timestamp_out_of_window');
    expect(reason(batch([stat({ timestamp: Number.MAX_SAFE_INTEGER })]))).toBe('timestamp_out_of_window');
    expect(reason(batch([stat({ timestamp: 0 })]))).toBe('timestamp_out_of_window');
    expect(reason(batch([stat({ timestamp: T0 - WINDOW - 1 })]), 60_000)).toBeUndefined();
    vi.setSystemTime(T0 + 2 * WINDOW); // the window moves with the node's clock
    expect(reason(batch([stat()]))).toBe('timestamp_out_of_window');
  });

  it('refuses values outside their description’s bounds', () => {
    expect(reason(batch([stat({ value: 1e300 })]))).toBe('value_out_of_range');
    expect(reason(batch([stat({ healthDescription: 'memory_consumption', value: 101 })]))).toBe('value_out_of_range');
    expect(reason(batch([stat({ healthDescription: 'ports_not_open', value: 2 })]))).toBe('value_out_of_range');
    expect(reason(batch([stat({ healthDescription: 'requests_in_flight', value: -1 })]))).toBe('value_out_of_range');
  });

  it('holds every stat to the credential, the first as much as any later one, as decoded off the wire', () => {
    const many = (bad?: { at: number; stat: HealthStat }) => {
      const stats = Array.from({ length: 20 }, (_, i) => stat({ value: i }));
      if (bad) stats[bad.at] = bad.stat;
      const credential = issueMemberCredential(key, testMember()); // php-m-1's, whatever the first stat says
      const decoded = decodeBatch(encodeBatch({ agentId: 'php-m-1', sequence: 1, stats, credential }));
      if (!decoded.ok) throw decoded.error;
      return decoded.value;
    };
    expect(reason(many())).toBeUndefined();
    for (const at of [0, 1, 19]) {
      const refusal = admission().check(many({ at, stat: stat({ memberId: 'php-m-2' }) }));
      expect(refusal?.reason).toBe('member_mismatch');
      expect(refusal?.detail).toMatch(new RegExp(`^stats\\.${at} is for php-m-2 `));
      expect(admission().check(many({ at, stat: stat({ clusterId: 'other' }) }))?.reason).toBe('member_mismatch');
      expect(admission().check(many({ at, stat: stat({ timestamp: T0 + WINDOW + 1 }) }))?.reason).toBe(
        'timestamp_out_of_window',
      );
      expect(
        admission().check(many({ at, stat: stat({ healthDescription: 'memory_consumption', value: 100.5 }) }))?.reason,
      ).toBe('value_out_of_range');
    }
  });

  it('refuses a timestamp or value that is not a number at all (a batch that skipped validation)', () => {
    expect(reason(batch([stat({ timestamp: Number.NaN })]))).toBe('timestamp_out_of_window');
    expect(reason(batch([stat({ value: Number.NaN })]))).toBe('value_out_of_range');
  });

  it("answers a batch in columns (how an agent's call is read) exactly as the same batch as objects", () => {
    const credential = issueMemberCredential(key, testMember());
    const of = (stats: HealthStat[], agentId = 'php-m-1:1'): HealthStatBatch => ({
      agentId,
      sequence: 1,
      stats,
      credential,
    });
    const twenty = (at: number, bad: Partial<HealthStat>) =>
      Array.from({ length: 20 }, (_, i) => stat(i === at ? bad : { value: i }));
    const cases: [HealthStatBatch, number?][] = [
      [of([stat(), stat({ healthDescription: 'ports_not_open', value: 1 })])],
      [{ ...of([stat()]), credential: undefined }],
      [{ ...of([stat()]), credential: `${credential.slice(0, -2)}AA` }],
      [of([stat()], 'php-m-2')],
      [of([stat({ memberId: 'php-m-2' }), stat({ memberId: 'php-m-2' })])],
      [of([stat({ clusterId: 'other' })])],
      [of([stat({ networkPartitionId: 'np-2' })])],
      [of([stat({ partitionId: 'p-9', clusterInstanceId: 'php-9' })])],
      [of([stat({ timestamp: T0 - WINDOW - 1 })]), 60_000],
      [of([stat({ timestamp: Number.NaN })])],
      [of([stat({ value: Number.NaN })])],
      ...[0, 7, 19].flatMap((at): [HealthStatBatch][] => [
        [of(twenty(at, { timestamp: T0 + WINDOW + 1 }))],
        [of(twenty(at, { healthDescription: 'memory_consumption', value: 100.5 }))],
        [of(twenty(at, { healthDescription: 'ports_not_open', value: 2 }))],
      ]),
    ];
    for (const [b, slackMs] of cases) {
      const expected = admission().check(b, slackMs);
      expect(admission().check(columnsOf(b), slackMs)).toEqual(expected);
    }
    // Each kind of answer was among them.
    const reasons = new Set(cases.map(([b, slackMs]) => admission().check(b, slackMs)?.reason));
    expect(reasons).toEqual(
      new Set([
        undefined,
        'credential_missing',
        'credential_invalid',
        'agent_mismatch',
        'member_mismatch',
        'timestamp_out_of_window',
        'value_out_of_range',
      ]),
    );
  });

  it('names the stat in a short detail', () => {
    const refusal = admission().check(batch([stat(), stat({ memberId: 'php-m-2' })]));
    expect(refusal?.detail).toMatch(/^stats\.1 is for php-m-2 /);
    expect(refusal?.detail.length).toBeLessThan(1_024);
  });
});
