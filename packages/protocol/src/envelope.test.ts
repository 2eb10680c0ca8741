import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  createEnvelope,
  decodeEnvelope,
  type Envelope,
  encodeEnvelope,
  MAX_ENVELOPE_BYTES,
  validateEnvelope,
} from './envelope.js';
import { EVENT_TYPES, MEMBERS_PER_STAT_EVENT } from './events.js';
import { memberSummary } from './testing/index.js';
import { topicFor, topicOf } from './topics.js';

const member = {
  clusterId: 'php',
  clusterInstanceId: 'php-1',
  networkPartitionId: 'np-1',
  partitionId: 'p-1',
  memberId: 'php-m-1',
};

const fault = createEnvelope(
  'MemberFaultEvent',
  { ...member, reason: 'timeout', lastStatAt: 1_700_000_000_000, silentForMs: 60_000 },
  { source: 'sp-1', epoch: 4, id: 'fault:php-m-1:1700000000000', time: 1_700_000_060_000 },
);

describe('envelope codec', () => {
  it('round-trips a MemberFaultEvent with its epoch and deterministic id', () => {
    const decoded = decodeEnvelope(encodeEnvelope(fault), { topic: 'summarized-health-stats/MemberFaultEvent' });
    expect(decoded).toEqual({ ok: true, value: fault });
  });

  it('knows every event type of the design', () => {
    for (const name of [
      'MemberFaultEvent',
      'AverageLoadAverageEvent',
      'GradientOfMemoryConsumptionEvent',
      'SecondDerivativeOfRequestsInFlightEvent',
      'MemberAverageLoadAverageEvent',
      'InstanceStartedEvent',
      'InstanceActivatedEvent',
      'MemberCreatedEvent',
      'MemberTerminatedEvent',
      'MemberReadyToShutdownEvent',
      'MemberTerminateAction',
      'MemberSpawnAction',
      'ScaleUpAction',
      'ScaleDownAction',
      'FaultStormHeld',
    ]) {
      expect(EVENT_TYPES).toContain(name);
    }
  });

  it('narrows data by type (tagged union)', () => {
    const result = decodeEnvelope(encodeEnvelope(fault));
    if (!result.ok) throw result.error;
    const envelope: Envelope = result.value;
    if (envelope.type === 'MemberFaultEvent') expect(envelope.data.reason).toBe('timeout');
    else throw new Error('wrong type');
  });

  it('a member summary lists the figures of up to MEMBERS_PER_STAT_EVENT members of one tick', () => {
    const memberStats = (count: number) => ({
      id: `MemberAverageLoadAverageEvent:php:np-1:60000:0`,
      type: 'MemberAverageLoadAverageEvent',
      time: 60_001,
      source: 'sp-1',
      data: {
        clusterId: 'php',
        clusterInstanceId: 'php-1',
        networkPartitionId: 'np-1',
        windowFrom: 0,
        windowTo: 60_000,
        part: 0,
        members: Array.from({ length: count }, (_, i) => ({ memberId: `m-${i}`, value: i / 2 })),
      },
    });
    const decoded = decodeEnvelope(JSON.stringify(memberStats(MEMBERS_PER_STAT_EVENT)));
    if (!decoded.ok) throw decoded.error;
    expect(decoded.value.type === 'MemberAverageLoadAverageEvent' && decoded.value.data.members[3]).toEqual({
      memberId: 'm-3',
      value: 1.5,
    });
    expect(decodeEnvelope(JSON.stringify(memberStats(MEMBERS_PER_STAT_EVENT + 1))).ok).toBe(false);
    expect(decodeEnvelope(JSON.stringify(memberStats(0))).ok).toBe(false);
  });

  it.each([
    ['not JSON', '{"id":', 'FL_ERR_ENVELOPE_INVALID', /not JSON/],
    ['an array', '[1,2]', 'FL_ERR_ENVELOPE_INVALID', /invalid envelope/],
    [
      'an unknown type',
      JSON.stringify({ ...fault, type: 'MemberHappyEvent' }),
      'FL_ERR_ENVELOPE_INVALID',
      /unknown event type/,
    ],
    ['a missing id', JSON.stringify({ ...fault, id: undefined }), 'FL_ERR_ENVELOPE_INVALID', /id/],
    [
      'a data field of the wrong type',
      JSON.stringify({ ...fault, data: { ...fault.data, silentForMs: 'long' } }),
      'FL_ERR_ENVELOPE_INVALID',
      /data\.silentForMs/,
    ],
    [
      'a missing data field',
      JSON.stringify({ ...fault, data: { ...fault.data, memberId: undefined } }),
      'FL_ERR_ENVELOPE_INVALID',
      /data\.memberId/,
    ],
    ['a negative epoch', JSON.stringify({ ...fault, epoch: -1 }), 'FL_ERR_ENVELOPE_INVALID', /epoch/],
  ])('rejects %s with a typed error', (_label, payload, code, message) => {
    const result = decodeEnvelope(payload);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error.code).toBe(code);
    expect(result.error.message).toMatch(message);
  });

  // Issue 12: an agent's InstanceStartedEvent with epoch MAX_SAFE_INTEGER raised the
  // autoscaler's persisted fence for good. The epoch is the SP leader's: no other root has one.
  it.each([
    ['InstanceStartedEvent', member],
    ['InstanceActivatedEvent', member],
    ['MemberCreatedEvent', { ...member, reason: 'spawned' }],
    ['MemberTerminateAction', { clusterId: 'php', memberId: 'php-m-1', reason: 'MemberFault' }],
  ] as const)('refuses an epoch on a %s (only summarized-health-stats/ events carry one)', (type, data) => {
    const forged = { id: 'x', type, time: 1, source: 'agent-1', epoch: Number.MAX_SAFE_INTEGER, data };
    const topic = topicOf(forged);
    const result = decodeEnvelope(JSON.stringify(forged), { topic });
    expect(!result.ok && result.error.code).toBe('FL_ERR_ENVELOPE_INVALID');
    expect(!result.ok && result.error.message).toMatch(/epoch/);
    expect(validateEnvelope(forged).ok).toBe(false);
    // Without the epoch the same event is fine.
    expect(decodeEnvelope(JSON.stringify({ ...forged, epoch: undefined }), { topic }).ok).toBe(true);
  });

  it("a member summary's list is checked, not copied, unless an entry has more than its two keys (dropped then)", () => {
    // The SP's publisher checks every part it sends: a copy of each (1 000 entries) was garbage of every tick.
    const clean = memberSummary([
      { memberId: 'm-1', value: 1 },
      { memberId: 'm-2', value: 2.5 },
    ]);
    const checked = validateEnvelope(clean);
    if (!checked.ok || checked.value.type !== 'MemberAverageLoadAverageEvent')
      throw new Error('a valid summary refused');
    expect(checked.value.data.members).toBe(clean.data.members);
    // JSON's objects, as a subscriber decodes them: the same.
    const decoded = decodeEnvelope(Buffer.from(JSON.stringify(clean)));
    expect(decoded.ok && decoded.value.type === 'MemberAverageLoadAverageEvent' && decoded.value.data.members).toEqual(
      clean.data.members,
    );
    const extra = memberSummary([
      { memberId: 'm-1', value: 1 },
      { memberId: 'm-2', value: 2.5, note: 'x' } as { memberId: string; value: number },
    ]);
    const stripped = validateEnvelope(extra);
    if (!stripped.ok || stripped.value.type !== 'MemberAverageLoadAverageEvent') throw new Error('extra keys refused');
    expect(stripped.value.data.members).not.toBe(extra.data.members);
    expect(stripped.value.data.members).toEqual([
      { memberId: 'm-1', value: 1 },
      { memberId: 'm-2', value: 2.5 },
    ]);
    // Two own keys, but not the two: a figure inherited is copied as the entry's own, the other key dropped.
    const odd = Object.assign(Object.create({ value: 4 }), { memberId: 'm-4', note: 'x' });
    const copied = validateEnvelope(memberSummary([odd]));
    if (!copied.ok || copied.value.type !== 'MemberAverageLoadAverageEvent')
      throw new Error('inherited figure refused');
    expect(copied.value.data.members).toStrictEqual([{ memberId: 'm-4', value: 4 }]);
    // A key inherited, not its own, is not the entry's: no copy needed for it either.
    const inherited = Object.assign(Object.create({ note: 'x' }), { memberId: 'm-3', value: 3 });
    const viaProto = validateEnvelope(memberSummary([inherited]));
    expect(
      viaProto.ok && viaProto.value.type === 'MemberAverageLoadAverageEvent' && viaProto.value.data.members,
    ).toEqual([{ memberId: 'm-3', value: 3 }]);
  });

  it('accepts an epoch on every summarized-health-stats/ event', () => {
    const stat = createEnvelope(
      'AverageLoadAverageEvent',
      {
        clusterId: 'php',
        clusterInstanceId: 'php-1',
        networkPartitionId: 'np-1',
        value: 1,
        windowFrom: 0,
        windowTo: 1,
      },
      { source: 'sp-1', epoch: 9 },
    );
    expect(decodeEnvelope(encodeEnvelope(stat), { topic: topicFor('AverageLoadAverageEvent') }).ok).toBe(true);
    expect(decodeEnvelope(encodeEnvelope(fault), { topic: topicFor('MemberFaultEvent') }).ok).toBe(true);
  });

  it('reports a few issues, not thousands, in a bounded message', () => {
    const members = Array.from({ length: MEMBERS_PER_STAT_EVENT }, () => ({ memberId: '', value: 'x' }));
    const payload = JSON.stringify({
      id: 'x',
      type: 'MemberAverageLoadAverageEvent',
      time: 1,
      source: 's',
      data: {
        clusterId: 'php',
        clusterInstanceId: 'php-1',
        networkPartitionId: 'np-1',
        windowFrom: 0,
        windowTo: 1,
        part: 0,
        members,
      },
    });
    const result = decodeEnvelope(payload);
    expect(!result.ok && result.error.message.length).toBeLessThanOrEqual(1_024);
    // The members are checked by a loop that stops at the first bad entry: one issue, named.
    expect(!result.ok && result.error.message).toMatch(/members\.0\.memberId/);
  });

  it('names three issues and counts the rest', () => {
    const payload = JSON.stringify({
      id: 'x',
      type: 'MemberFaultEvent',
      time: 1,
      source: 's',
      data: { clusterId: '', clusterInstanceId: '', networkPartitionId: '', partitionId: '', memberId: '' },
    });
    const result = decodeEnvelope(payload);
    expect(!result.ok && result.error.message).toMatch(/and \d+ more issues/);
  });

  it('rejects an event on a topic that does not carry it', () => {
    const result = decodeEnvelope(encodeEnvelope(fault), { topic: topicFor('AverageLoadAverageEvent') });
    expect(result.ok).toBe(false);
  });

  it('rejects an oversized payload before parsing it', () => {
    const result = decodeEnvelope(Buffer.alloc(70_000, 0x20));
    expect(!result.ok && result.error.code).toBe('FL_ERR_ENVELOPE_TOO_LARGE');
    expect(decodeEnvelope(encodeEnvelope(fault), { maxBytes: 10 }).ok).toBe(false);
  });

  it('never throws on 5 000 random payloads', () => {
    for (let i = 0; i < 5_000; i++) {
      const payload =
        i % 2 === 0 ? randomBytes(i % 300) : JSON.stringify({ ...fault, data: randomBytes(8).toString() });
      expect(() => decodeEnvelope(payload)).not.toThrow();
      expect(decodeEnvelope(payload).ok).toBe(false);
    }
  });

  it('refuses to encode an invalid envelope of our own (a bug, so it throws)', () => {
    const bad = { ...fault, data: { ...fault.data, reason: 'bored' } } as unknown as Envelope;
    expect(() => encodeEnvelope(bad)).toThrowError(expect.objectContaining({ code: 'FL_ERR_ENVELOPE_INVALID' }));
    expect(validateEnvelope(bad).ok).toBe(false);
  });

  it('refuses to encode an envelope no subscriber would read (over the limit): FL_ERR_ENVELOPE_TOO_LARGE, never silently', () => {
    // 1 000 members of 128-character ids: a valid MemberStats of some 150 KB.
    const members = Array.from({ length: MEMBERS_PER_STAT_EVENT }, (_, i) => ({
      memberId: `${'m'.repeat(120)}-${String(i).padStart(7, '0')}`,
      value: i / 7,
    }));
    const big = memberSummary(members, 60_000);
    expect(validateEnvelope(big).ok).toBe(true);
    expect(() => encodeEnvelope(big)).toThrowError(
      expect.objectContaining({
        code: 'FL_ERR_ENVELOPE_TOO_LARGE',
        context: expect.objectContaining({ maxBytes: MAX_ENVELOPE_BYTES, id: big.id, type: big.type }),
      }),
    );
    // A limit of its own: what fits under it encodes, and decodes under the same limit.
    const size = Buffer.byteLength(JSON.stringify(big));
    expect(size).toBeGreaterThan(MAX_ENVELOPE_BYTES);
    expect(decodeEnvelope(encodeEnvelope(big, { maxBytes: size }), { maxBytes: size }).ok).toBe(true);
    expect(() => encodeEnvelope(big, { maxBytes: size - 1 })).toThrowError(
      expect.objectContaining({ code: 'FL_ERR_ENVELOPE_TOO_LARGE' }),
    );
    expect(() => encodeEnvelope(fault, { maxBytes: 10 })).toThrowError(
      expect.objectContaining({ code: 'FL_ERR_ENVELOPE_TOO_LARGE' }),
    );
  });

  it('createEnvelope omits epoch when not given and defaults id and time', () => {
    const envelope = createEnvelope('InstanceStartedEvent', member, { source: 'agent-1' });
    expect(envelope).not.toHaveProperty('epoch');
    expect(envelope.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(envelope.time).toBeGreaterThan(0);
  });
});
