import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  BATCH_REFUSALS,
  decodeBatch,
  decodePublishCall,
  encodeBatch,
  fastBatch,
  type HealthStatBatch,
  healthStatBatchSchema,
  MAX_REFUSAL_MESSAGE_LENGTH,
  refusalMessage,
  refusalOf,
  toBatchWire,
  validateBatch,
  valueInRange,
} from './health.js';
import { testMember } from './testing/index.js';
import { generated, HealthStatService, thrift } from './thrift.js';

const stat = {
  ...testMember(),
  healthDescription: 'load_average' as const,
  value: 12.5,
  timestamp: 1_700_000_000_123,
};
const batch: HealthStatBatch = { agentId: 'agent-php-m-1', sequence: 7, stats: [stat, { ...stat, value: 13 }] };

describe('health-stat batch codec', () => {
  it('round-trips through the binary protocol, i64 fields as numbers', () => {
    expect(decodeBatch(encodeBatch(batch))).toEqual({ ok: true, value: batch });
  });

  it('rejects a batch with missing required fields with a typed error', () => {
    // The generated reader does not enforce `required`: bytes without agentId decode to null.
    const wire = new generated.HealthStatBatch();
    wire.sequence = 1;
    wire.stats = [];
    const chunks: Buffer[] = [];
    const transport = new thrift.TBufferedTransport(undefined, (buf?: Buffer) => void (buf && chunks.push(buf)));
    (wire as unknown as { write(p: unknown): void }).write(new thrift.TBinaryProtocol(transport));
    transport.flush();
    const result = decodeBatch(Buffer.concat(chunks));
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.error.code).toBe('FL_ERR_BATCH_INVALID');
      expect(result.error.message).toContain('agentId');
    }
  });

  it.each([
    [
      'an unknown health description',
      { ...batch, stats: [{ ...stat, healthDescription: 'mood' }] },
      'healthDescription',
    ],
    ['a zero sequence', { ...batch, sequence: 0 }, 'sequence'],
    ['a NaN value', { ...batch, stats: [{ ...stat, value: Number.NaN }] }, 'value'],
    ['an empty member id', { ...batch, stats: [{ ...stat, memberId: '' }] }, 'memberId'],
    ['stats that are not a list', { ...batch, stats: null }, 'stats'],
  ])('rejects %s', (_label, wire, field) => {
    const result = validateBatch(wire);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error.message).toContain(field);
  });

  it('never throws on truncated or random bytes', () => {
    const good = encodeBatch(batch);
    for (let cut = 0; cut < good.length; cut++) expect(decodeBatch(good.subarray(0, cut)).ok).toBe(false);
    for (let i = 0; i < 2_000; i++) expect(() => decodeBatch(randomBytes(1 + (i % 200)))).not.toThrow();
  });

  it('the fast path accepts exactly what the zod schema accepts (10 000 mutations)', () => {
    const mutations: ((b: Record<string, unknown>, s: Record<string, unknown>) => void)[] = [
      (b) => (b.agentId = ''),
      (b) => (b.agentId = 'x'.repeat(129)),
      (b) => (b.agentId = 'php-m-1:1700000000000'),
      (b) => (b.agentId = 'php-m-1:17x'),
      (_, s) => (s.clusterId = 'php\u001b[2J'),
      (_, s) => (s.memberId = '-leading-dash'),
      (b) => (b.sequence = 0),
      (b) => (b.sequence = 2 ** 53),
      (b) => (b.sequence = 1.5),
      (b) => (b.stats = 'no'),
      (_, s) => (s.value = Number.POSITIVE_INFINITY),
      (_, s) => (s.value = '3'),
      (_, s) => (s.timestamp = -1),
      (_, s) => (s.timestamp = null),
      (_, s) => (s.healthDescription = 'cpu'),
      (_, s) => (s.memberId = 42),
      (_, s) => delete s.partitionId,
      () => {},
    ];
    let accepted = 0;
    for (let i = 0; i < 10_000; i++) {
      const copy = structuredClone({ ...batch, stats: [stat, { ...stat, value: i }] }) as unknown as Record<
        string,
        unknown
      >;
      const stats = copy.stats as Record<string, unknown>[];
      const target = stats[i % 2] as Record<string, unknown>;
      (mutations[i % mutations.length] as (b: Record<string, unknown>, s: Record<string, unknown>) => void)(
        copy,
        target,
      );
      const fast = fastBatch(copy) !== undefined;
      const slow = healthStatBatchSchema.safeParse(copy).success;
      expect(fast, JSON.stringify(copy)).toBe(slow);
      if (fast) accepted += 1;
    }
    expect(accepted).toBeGreaterThan(0);
    expect(accepted).toBeLessThan(10_000);
  });

  it("matches a batch's repeated ids once; any id unlike the stat's before is matched again", () => {
    // Off the wire, each stat's ids are strings of their own: equal in value, not the same strings.
    const many = { ...batch, stats: Array.from({ length: 50 }, (_, i) => ({ ...stat, value: i })) };
    expect(decodeBatch(encodeBatch(many))).toEqual({ ok: true, value: many });
    const other = { ...many, stats: [...many.stats, { ...stat, memberId: 'php-m-2', partitionId: 'p-2' }] };
    expect(decodeBatch(encodeBatch(other))).toEqual({ ok: true, value: other });
    for (const bad of ['-leading-dash', '', 'a'.repeat(129), 'has space', 42, undefined]) {
      const wire = { ...many, stats: [...many.stats, { ...stat, memberId: bad }, stat] };
      const result = validateBatch(wire);
      expect(result.ok, String(bad)).toBe(false);
      if (!result.ok) expect(result.error.message).toContain('stats.50.memberId');
    }
  });

  it('carries the credential through the wire, and reads an absent one as none', () => {
    const signed = { ...batch, credential: 'php-m-1:php:np-1:mac' };
    expect(decodeBatch(encodeBatch(signed))).toEqual({ ok: true, value: signed });
    const decoded = decodeBatch(encodeBatch(batch));
    expect(decoded.ok && 'credential' in decoded.value).toBe(false);
    expect(validateBatch({ ...batch, credential: 42 }).ok).toBe(false);
    expect(fastBatch({ ...batch, credential: null })).toEqual(batch);
  });

  it('a hostile batch costs one pass and names at most 3 issues (10 000 empty stats once made 80 000)', () => {
    const empty = { agentId: 'a', sequence: 1, stats: Array.from({ length: 10_000 }, () => ({})) };
    const started = performance.now();
    const result = validateBatch(empty);
    const tookMs = performance.now() - started;
    expect(result.ok).toBe(false);
    if (!result.ok) {
      // The first bad stat only, three of its eight issues and how many more.
      expect(result.error.message).toMatch(/stats\.0\./);
      expect(result.error.message).not.toMatch(/stats\.1\./);
      expect(result.error.message.split('; ')).toHaveLength(4);
      expect(result.error.message).toContain('5 more');
      expect(result.error.message.length).toBeLessThan(1_024);
    }
    expect(tookMs).toBeLessThan(50);
    // A bad stat after 9 999 good ones: the same, naming only that one.
    const late = { ...batch, stats: [...Array.from({ length: 9_999 }, () => stat), { ...stat, value: 'x' }] };
    const lateResult = validateBatch(late);
    expect(lateResult.ok).toBe(false);
    if (!lateResult.ok)
      expect(lateResult.error.message).toBe(
        'invalid health-stat batch: stats.9999.value: Invalid input: expected number, received string',
      );
  });

  it('refuses to decode a list of more than 10 000 stats before building one', () => {
    const chunks: Buffer[] = [];
    const transport = new thrift.TBufferedTransport(undefined, (buf?: Buffer) => void (buf && chunks.push(buf)));
    const p = new thrift.TBinaryProtocol(transport);
    p.writeStructBegin('HealthStatBatch');
    p.writeFieldBegin('stats', thrift.Thrift.Type.LIST, 3);
    p.writeListBegin(thrift.Thrift.Type.STRUCT, 1_000_000);
    p.writeFieldStop();
    transport.flush();
    const result = decodeBatch(Buffer.concat(chunks));
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error.message).toContain('1000000 elements');
  });

  it('bounds values per health description', () => {
    expect(valueInRange('memory_consumption', 100)).toBe(true);
    expect(valueInRange('memory_consumption', 100.5)).toBe(false);
    expect(valueInRange('memory_consumption', -0.1)).toBe(false);
    expect(valueInRange('ports_not_open', 1)).toBe(true);
    expect(valueInRange('ports_not_open', 0)).toBe(true);
    expect(valueInRange('ports_not_open', 0.5)).toBe(false);
    expect(valueInRange('load_average', 250)).toBe(true);
    expect(valueInRange('load_average', 1e300)).toBe(false);
    expect(valueInRange('requests_in_flight', 1e300)).toBe(false);
    expect(valueInRange('requests_in_flight', -1)).toBe(false);
    expect(valueInRange('ports_not_open', Number.NaN)).toBe(false);
    expect(valueInRange('load_average', Number.NaN)).toBe(false);
    // Not a description (a caller that skipped validation): refused, never a throw.
    expect(valueInRange('mood' as never, 1)).toBe(false);
  });

  it('a refusal message is `<reason>: <detail>`, at most 1 KiB, and reads back as its reason', () => {
    for (const reason of BATCH_REFUSALS) expect(refusalOf(refusalMessage(reason, 'why'))).toBe(reason);
    expect(refusalMessage('invalid', 'x'.repeat(5_000))).toHaveLength(MAX_REFUSAL_MESSAGE_LENGTH);
    expect(refusalOf('stats: too many')).toBe('invalid');
    expect(refusalOf('')).toBe('invalid');
  });

  it('decodes a raw publish call as a server receives it, and refuses anything else', () => {
    let frame = Buffer.alloc(0);
    const transport = new thrift.TFramedTransport(undefined, (buf?: Buffer) => {
      if (buf) frame = Buffer.from(buf);
    });
    const client = new HealthStatService.Client(transport, thrift.TBinaryProtocol) as unknown as {
      send_publish(batch: unknown): void;
    };
    client.send_publish(toBatchWire(batch));
    expect(decodePublishCall(frame.subarray(4))).toEqual({ ok: true, value: batch });
    expect(decodePublishCall(randomBytes(40)).ok).toBe(false);
    expect(decodePublishCall(frame.subarray(4, 30)).ok).toBe(false);
  });
});
