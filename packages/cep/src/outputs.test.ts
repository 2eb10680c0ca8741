import {
  decodeEnvelope,
  type Envelope,
  type EnvelopeOf,
  MAX_ENVELOPE_BYTES,
  MEMBERS_PER_STAT_EVENT,
  type MemberStatEventType,
  topicFor,
} from '@faultline/protocol';
import { describe, expect, it } from 'vitest';
import type { Output } from './output-ledger.js';
import { entryBytes, NODE_FIELDS_RESERVE_BYTES, type OversizedSummaryEntry, summaryOutputs } from './outputs.js';
import type { WindowSummary } from './window-stats.js';

const WINDOW_TO = 1_700_000_010_000;

/** `count` members of `idLength`-character ids, in cluster checkout-api, with figures of 17 significant digits. */
function tick(count: number, idLength: number, clusterId = 'checkout-api'): WindowSummary[] {
  const ids = Array.from({ length: count }, (_, i) => {
    const suffix = `-${String(i).padStart(6, '0')}`;
    return `${'m'.repeat(idLength - suffix.length)}${suffix}`;
  });
  return ids.flatMap((memberId, i) => [
    {
      kind: 'Average' as const,
      metric: 'LoadAverage' as const,
      clusterId,
      clusterInstanceId: `${clusterId}-1`,
      networkPartitionId: 'np-1',
      memberId,
      value: -(i + 1) / 7 - 1e-7,
      windowFrom: WINDOW_TO - 60_000,
      windowTo: WINDOW_TO,
    },
    {
      kind: 'SecondDerivativeOf' as const,
      metric: 'MemoryConsumption' as const,
      clusterId,
      clusterInstanceId: `${clusterId}-1`,
      networkPartitionId: 'np-1',
      memberId,
      value: 1.2345678901234568e-300 * (i + 1),
      windowFrom: WINDOW_TO - 60_000,
      windowTo: WINDOW_TO,
    },
  ]);
}

type MemberEnvelope = EnvelopeOf<MemberStatEventType>;
const memberEnvelopes = (outputs: Output[]) =>
  outputs.map((o) => o.envelope).filter((e): e is MemberEnvelope => e.type.startsWith('Member'));

/** What the active publishes: the output stamped with its epoch, as encodeEnvelope writes it. */
const wire = (envelope: Envelope, epoch = Number.MAX_SAFE_INTEGER) =>
  Buffer.from(JSON.stringify({ ...envelope, epoch }));

/** Every part of every member-summary type fits the limit, decodes on its topic, and the parts list each member once, in order. */
function expectWhole(outputs: Output[], summaries: WindowSummary[], maxBytes = MAX_ENVELOPE_BYTES) {
  const envelopes = memberEnvelopes(outputs);
  for (const envelope of envelopes) {
    const payload = wire(envelope);
    const decoded = decodeEnvelope(payload, { topic: topicFor(envelope.type), maxBytes });
    expect(decoded.ok ? 'decodes' : decoded.error.message).toBe('decodes');
    expect(payload.length).toBeLessThanOrEqual(maxBytes);
  }
  const types = [...new Set(envelopes.map((e) => e.type))];
  expect(types).toHaveLength(2);
  for (const type of types) {
    const parts = envelopes.filter((e) => e.type === type);
    expect(parts.map((e) => e.id)).toEqual(parts.map((_, k) => `${type}:checkout-api:np-1:${k}:${WINDOW_TO}`));
    expect(parts.map((e) => e.data.part)).toEqual(parts.map((_, k) => k));
    const expected = summaries.filter((s) => `Member${s.kind}${s.metric}Event` === type).map((s) => s.memberId);
    expect(parts.flatMap((e) => e.data.members.map((m) => m.memberId))).toEqual(expected);
  }
  return envelopes;
}

describe('summaryOutputs: member summaries split by encoded size', () => {
  it('a 1 000-member tick with 40-character ids goes out in parts that each encode within 64 KiB and decode', () => {
    const summaries = tick(1_000, 40);
    const envelopes = expectWhole(summaryOutputs(summaries, 'sp-1', WINDOW_TO + 3), summaries);
    // ~82 bytes a member: 1 000 of them are more than one envelope can carry.
    expect(envelopes.length).toBeGreaterThan(2);
  });

  it('the same with 128-character ids, the longest an id can be', () => {
    const summaries = tick(1_000, 128);
    expectWhole(summaryOutputs(summaries, 'sp-1', WINDOW_TO + 3), summaries);
  });

  it('fills parts close to the limit, not one member per part', () => {
    const summaries = tick(3_000, 128);
    const envelopes = memberEnvelopes(summaryOutputs(summaries, 'sp-1', WINDOW_TO));
    const full = envelopes.filter((e) => e.type === 'MemberAverageLoadAverageEvent').slice(0, -1);
    expect(full.length).toBeGreaterThan(3);
    for (const envelope of full) expect(wire(envelope).length).toBeGreaterThan(MAX_ENVELOPE_BYTES - 2_048);
  });

  it('keeps at most MEMBERS_PER_STAT_EVENT members in a part, however short the ids', () => {
    const summaries = tick(2_500, 8);
    const envelopes = expectWhole(summaryOutputs(summaries, 'sp-1', WINDOW_TO), summaries);
    expect(
      envelopes.filter((e) => e.type === 'MemberAverageLoadAverageEvent').map((e) => e.data.members.length),
    ).toEqual([MEMBERS_PER_STAT_EVENT, MEMBERS_PER_STAT_EVENT, 500]);
  });

  it('splits under a smaller configured limit', () => {
    const summaries = tick(1_000, 40);
    const envelopes = expectWhole(summaryOutputs(summaries, 'sp-1', WINDOW_TO, { maxBytes: 8_192 }), summaries, 8_192);
    expect(envelopes.length).toBeGreaterThan(20);
  });

  it('both nodes split alike whatever their source and clock (the ids, the ledger and the dedupe rely on it)', () => {
    const summaries = tick(1_000, 40);
    const parts = (source: string, time: number) =>
      memberEnvelopes(summaryOutputs(summaries, source, time)).map((e) => [e.id, e.data.members]);
    const longest = `${'s'.repeat(255)}\u0001`;
    expect(parts(longest, Number.MAX_SAFE_INTEGER)).toEqual(parts('sp-1', 0));
    for (const envelope of memberEnvelopes(summaryOutputs(summaries, longest, Number.MAX_SAFE_INTEGER))) {
      expect(wire(envelope).length).toBeLessThanOrEqual(MAX_ENVELOPE_BYTES);
    }
  });

  it('an entry that cannot fit any envelope is left out and reported, never emitted over the limit, never thrown', () => {
    const summaries = tick(10, 128);
    const reported: OversizedSummaryEntry[] = [];
    const outputs = summaryOutputs(summaries, 'sp-1', WINDOW_TO, {
      maxBytes: 1_024,
      onEntryTooLarge: (entry) => void reported.push(entry),
    });
    expect(memberEnvelopes(outputs)).toEqual([]);
    expect(reported).toHaveLength(20);
    expect(reported[0]).toMatchObject({
      type: 'MemberAverageLoadAverageEvent',
      clusterId: 'checkout-api',
      networkPartitionId: 'np-1',
      memberId: summaries[0]?.memberId,
      maxBytes: 1_024,
    });
    expect(reported[0]?.bytes).toBeGreaterThan(1_024);
  });

  it('leaves out only the entries that cannot fit, keeping the others in order', () => {
    const short = tick(5, 8);
    const long = tick(1, 128);
    const summaries = [...short.slice(0, 4), ...long, ...short.slice(4)];
    // Just above the smallest limit that takes a short member: every short one fits, a long one never does.
    const fits = (maxBytes: number) => memberEnvelopes(summaryOutputs(short.slice(0, 2), 'sp-1', 0, { maxBytes }));
    let maxBytes = 1_024;
    while (fits(maxBytes).length === 0 && maxBytes < MAX_ENVELOPE_BYTES) maxBytes += 1;
    maxBytes += 64;
    const reported: OversizedSummaryEntry[] = [];
    const outputs = summaryOutputs(summaries, 'sp-1', WINDOW_TO, {
      maxBytes,
      onEntryTooLarge: (entry) => void reported.push(entry),
    });
    expect(reported.map((r) => r.memberId)).toEqual([long[0]?.memberId, long[1]?.memberId]);
    const envelopes = memberEnvelopes(outputs);
    for (const envelope of envelopes) expect(wire(envelope).length).toBeLessThanOrEqual(maxBytes);
    expect(
      envelopes
        .filter((e) => e.type === 'MemberAverageLoadAverageEvent')
        .flatMap((e) => e.data.members.map((m) => m.memberId)),
    ).toEqual(short.filter((s) => s.kind === 'Average').map((s) => s.memberId));
  });

  it('cuts where sizing every entry exactly would cut: figures of every length, limits of every size', () => {
    // The split takes each figure at its longest JSON until a part nears the limit, then sizes exactly;
    // the reference below sizes every entry exactly, as the split did before.
    const figures = [0, 7, -1.2345678901234567e-308, 0.1, 123456.789, -42, 1e21, 2.5e-7, Number.MAX_VALUE];
    const summaries = tick(1_500, 24).map((s, i) => ({ ...s, value: figures[(i * 5) % figures.length] as number }));
    for (const maxBytes of [2_048, 3_001, 8_192, 20_000, 45_678, MAX_ENVELOPE_BYTES]) {
      for (const type of ['MemberAverageLoadAverageEvent', 'MemberSecondDerivativeOfMemoryConsumptionEvent']) {
        const parts = memberEnvelopes(summaryOutputs(summaries, 'sp-1', WINDOW_TO, { maxBytes })).filter(
          (e) => e.type === type,
        );
        const first = parts[0];
        if (!first) throw new Error(`no ${type}`);
        const floorOf = (part: number) =>
          Buffer.byteLength(
            JSON.stringify({
              ...first,
              id: first.id.replace(':0:', `:${part}:`),
              time: 0,
              source: '',
              data: { ...first.data, part, members: [] },
            }),
          ) + NODE_FIELDS_RESERVE_BYTES;
        const entries = summaries
          .filter((x) => `Member${x.kind}${x.metric}Event` === type)
          .map((x) => ({ memberId: x.memberId as string, value: x.value }));
        const expected: number[] = [];
        let count = 0;
        let bytes = floorOf(0);
        for (const entry of entries) {
          const size = entryBytes(entry);
          if (count > 0 && (count >= MEMBERS_PER_STAT_EVENT || bytes + 1 + size > maxBytes)) {
            expected.push(count);
            count = 0;
            bytes = floorOf(expected.length);
          }
          bytes += (count > 0 ? 1 : 0) + size;
          count += 1;
        }
        expected.push(count);
        expect(parts.map((e) => e.data.members.length)).toEqual(expected);
        expect(parts.flatMap((e) => e.data.members)).toEqual(entries);
      }
    }
  });

  it('sizes an entry by arithmetic, byte for byte what JSON.stringify writes', () => {
    const ids = ['m-1', 'x'.repeat(128), 'quote"back\\slash', 'tab\tnew\nline\u0001', 'ünï©ødé', '😀 lone \ud800', ''];
    const values = [
      0,
      -0,
      1,
      -1.5,
      1 / 3,
      -(10 / 7) - 1e-7,
      1e21,
      123456789012345680000,
      5e-324,
      -1.7976931348623157e308,
      1e-7,
    ];
    for (const memberId of ids) {
      for (const value of values) {
        expect(entryBytes({ memberId, value })).toBe(Buffer.byteLength(JSON.stringify({ memberId, value })));
      }
    }
  });
});
