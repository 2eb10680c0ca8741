import { describe, expect, it } from 'vitest';
import { decodeCheckedBatch, encodeCheckedBatch } from './checked-batch.js';
import { batchOf, HEALTH_DESCRIPTIONS, type HealthStatBatch, isStatColumns, validateBatch } from './health.js';
import { columnsOf, testStat } from './testing/batch.js';
import { prng, randomBatch } from './testing/random-batch.js';

/** The batch as validation hands it on (ids of a repeated stat are one string, descriptions the constants). */
function validated(batch: HealthStatBatch): HealthStatBatch {
  const result = validateBatch(batch);
  if (!result.ok) throw result.error;
  return result.value;
}

function decoded(bytes: Buffer): HealthStatBatch {
  const result = decodeCheckedBatch(bytes);
  if (!result.ok) throw result.error;
  return batchOf(result.value);
}

function refusal(bytes: Buffer): string {
  const result = decodeCheckedBatch(bytes);
  if (result.ok) throw new Error('expected a refusal');
  return result.error.message;
}

const stat = testStat({ value: 12.5, timestamp: 1_700_000_000_000 });
const one: HealthStatBatch = validated({
  agentId: 'php-m-1:7',
  sequence: 3,
  credential: 'token',
  stats: [stat, { ...stat, healthDescription: 'memory_consumption', value: 40 }],
});

/**
 * The offsets of one's fields in its checked form: sequence 0, agent id 8
 * (2 + 9), credential 19 (4 + 5), the id count 28, ids from 30, the stat
 * count after them, then the stats.
 */
const AT = { sequence: 0, agentLength: 8, credentialLength: 19, idCount: 28 };

describe('checked batch: the form the active forwards to the passive', () => {
  it('reads back every valid batch exactly as validation handed it, credential or none', () => {
    const random = prng(44);
    for (let i = 0; i < 500; i++) {
      const batch = validated(randomBatch(random));
      expect(decoded(encodeCheckedBatch(batch))).toEqual(batch);
    }
  });

  it('sends each distinct id once, and gives every stat its own ids', () => {
    const other = { ...stat, partitionId: 'p-2' };
    const batch = validated({ agentId: 'php-m-1', sequence: 1, stats: [stat, stat, other, other] });
    const stats = decoded(encodeCheckedBatch(batch)).stats;
    expect(stats.map((s) => s.partitionId)).toEqual(['p-1', 'p-1', 'p-2', 'p-2']);
    // Each distinct id travels once.
    const bytes = encodeCheckedBatch(batch);
    expect(bytes.toString('latin1').split('php-m-1').length - 1).toBe(2); // the agent id and the member id
  });

  it('keeps an empty credential apart from none, and -0 as -0', () => {
    const empty = decoded(encodeCheckedBatch({ ...one, credential: '' }));
    expect(Object.hasOwn(empty, 'credential') && empty.credential === '').toBe(true);
    const none = decoded(encodeCheckedBatch({ agentId: one.agentId, sequence: 1, stats: one.stats }));
    expect(Object.hasOwn(none, 'credential')).toBe(false);
    const zero = decoded(encodeCheckedBatch({ ...one, stats: [{ ...stat, value: -0, timestamp: -0 }] }));
    expect(Object.is(zero.stats[0]?.value, -0) && Object.is(zero.stats[0]?.timestamp, -0)).toBe(true);
    expect(Object.keys(zero.stats[0] ?? {})).toEqual(Object.keys(stat));
  });

  it('sends a description as its place in HEALTH_DESCRIPTIONS: that list may only grow at its end', () => {
    // An active and a passive of two releases read each other's batches: a reordered list would swap descriptions.
    expect(HEALTH_DESCRIPTIONS).toEqual(['load_average', 'memory_consumption', 'requests_in_flight', 'ports_not_open']);
  });

  it('reads back a batch of many distinct ids (past the scan, into the map)', () => {
    const stats = Array.from({ length: 300 }, (_, i) => ({ ...stat, partitionId: `p-${i % 100}` }));
    const batch = validated({ agentId: 'php-m-1', sequence: 9, stats });
    expect(decoded(encodeCheckedBatch(batch))).toEqual(batch);
  });

  it('is some 17 bytes a stat for a batch of one member, a seventh of the Thrift call', () => {
    const stats = Array.from({ length: 200 }, (_, i) => ({ ...stat, value: i }));
    const batch = validated({ agentId: 'php-m-1', sequence: 1, credential: 'x'.repeat(120), stats });
    const size = encodeCheckedBatch(batch).length;
    expect(size).toBeLessThan(200 * 17 + 250);
  });

  it('leaves the headroom it is asked for in front of the batch', () => {
    const bytes = encodeCheckedBatch(one, 13);
    expect(decoded(bytes.subarray(13))).toEqual(one);
  });

  it('refuses each thing validation refuses, and names it', () => {
    const base = encodeCheckedBatch(one);
    const changed = (edit: (b: Buffer) => void): Buffer => {
      const copy = Buffer.from(base);
      edit(copy);
      return copy;
    };
    // The stat count, then two stats of 17 bytes, the first with its five id indices.
    const statsAt = base.length - 2 * 17 - 10 - 4;
    expect(refusal(changed((b) => b.writeDoubleBE(0, AT.sequence)))).toMatch(/sequence 0/);
    expect(refusal(changed((b) => b.writeDoubleBE(2 ** 60, AT.sequence)))).toMatch(/sequence/);
    expect(refusal(changed((b) => b.write('!', AT.agentLength + 2)))).toMatch(/agent id/);
    expect(refusal(changed((b) => b.write(' ', AT.idCount + 2 + 2)))).toMatch(/id 0 does not follow/);
    // The first stat: its description, then its ids, value and timestamp.
    const first = statsAt + 4;
    expect(refusal(changed((b) => b.writeUInt8(0x80 | 9, first)))).toMatch(/stats\.0: description 9/);
    expect(refusal(changed((b) => b.writeUInt8(0, first)))).toMatch(/first stat carries no ids/);
    expect(refusal(changed((b) => b.writeUInt16BE(5, first + 1)))).toMatch(/id index 5 of 5/);
    expect(refusal(changed((b) => b.writeDoubleBE(Number.NaN, first + 11)))).toMatch(/stats\.0: value NaN/);
    expect(refusal(changed((b) => b.writeDoubleBE(-1, first + 19)))).toMatch(/stats\.0: timestamp/);
    expect(refusal(changed((b) => b.writeDoubleBE(0.5, first + 19)))).toMatch(/stats\.0: timestamp/);
    expect(refusal(changed((b) => b.writeUInt32BE(10_001, statsAt)))).toMatch(/10001 stats \(at most 10000\)/);
    expect(refusal(changed((b) => b.writeUInt32BE(3, statsAt)))).toMatch(/3 stats in 44 bytes/);
    expect(refusal(changed((b) => b.writeUInt16BE(60_000, AT.idCount)))).toMatch(/60000 ids in/);
    expect(refusal(Buffer.concat([base, Buffer.from([0])]))).toMatch(/1 bytes after the stats/);
    expect(refusal(base.subarray(0, base.length - 1))).toMatch(/truncated/);
    expect(refusal(Buffer.alloc(0))).toMatch(/truncated/);
  });

  it('reads a damaged batch as a refusal or as a batch validation accepts, never a throw', () => {
    const random = prng(1804);
    let accepted = 0;
    for (let i = 0; i < 3_000; i++) {
      const bytes = Buffer.from(encodeCheckedBatch(validated(randomBatch(random))));
      const flips = 1 + Math.floor(random() * 3);
      for (let f = 0; f < flips && bytes.length > 0; f++) {
        const at = Math.floor(random() * bytes.length);
        bytes[at] =
          random() < 0.5 ? Math.floor(random() * 256) : (bytes[at] as number) ^ (1 << Math.floor(random() * 8));
      }
      const cut = random() < 0.2 ? bytes.subarray(0, Math.floor(random() * bytes.length)) : bytes;
      const result = decodeCheckedBatch(cut);
      if (!result.ok) continue;
      accepted += 1;
      const batch = batchOf(result.value);
      expect(validateBatch(batch)).toEqual({ ok: true, value: batch });
    }
    // Many flips land in values and timestamps, which stay valid.
    expect(accepted).toBeGreaterThan(100);
  });

  it('writes a batch in columns byte for byte as the same batch as objects, and reads it back in columns', () => {
    const random = prng(2028);
    for (let i = 0; i < 300; i++) {
      const batch = validated(randomBatch(random, { oneMember: true }));
      const columns = columnsOf(batch);
      const bytes = encodeCheckedBatch(columns, 3);
      expect(bytes.subarray(3)).toEqual(encodeCheckedBatch(batch, 3).subarray(3));
      const read = decodeCheckedBatch(bytes.subarray(3));
      expect(read.ok && isStatColumns(read.value)).toBe(true);
      expect(read.ok && read.value).toEqual(columns);
    }
  });

  it('reads a batch whose later stats carry ids as objects, with the same refusals as before', () => {
    const two = validated({ ...one, stats: [stat, { ...stat, memberId: 'php-m-2' }] });
    const read = decodeCheckedBatch(encodeCheckedBatch(two));
    expect(read.ok && isStatColumns(read.value)).toBe(false);
    expect(read).toEqual({ ok: true, value: two });
    // The first stat's description is judged before its ids, in columns as in objects.
    const bytes = encodeCheckedBatch(columnsOf(one));
    const first = bytes.length - 2 * 17 - 10;
    bytes[first] = 0x80 | 9;
    bytes.writeUInt16BE(200, first + 1);
    expect(refusal(bytes)).toBe('bad checked batch: stats.0: description 9');
  });

  it('will not write what it could not read back', () => {
    expect(() => encodeCheckedBatch({ ...one, agentId: 'a'.repeat(70_000) })).toThrow(RangeError);
    expect(() =>
      encodeCheckedBatch({ ...one, stats: [{ ...stat, healthDescription: 'nope' as 'load_average' }] }),
    ).toThrow(RangeError);
  });
});
