import { describe, expect, it } from 'vitest';
import { batchOf, decodePublishColumns, type HealthStatBatch, toBatchWire, validateBatch } from './health.js';
import { testStat } from './testing/batch.js';
import { prng, randomBatch } from './testing/random-batch.js';
import { generated, HealthStatService, thrift } from './thrift.js';
import {
  encodeAckReply,
  encodeApplicationException,
  encodeExceptionReply,
  MAX_SKIP_DEPTH,
  readBatchStruct,
  readPublishCall,
  WireDecodeError,
} from './wire-codec.js';

type Protocol = InstanceType<typeof thrift.TBinaryProtocol>;

/** A publish call's start up to its batch's stats list of `size` elements of `elementType` (the elements are the caller's). */
function statsListCall(p: Protocol, elementType: number, size: number): void {
  p.writeMessageBegin('publish', thrift.Thrift.MessageType.CALL, 1);
  p.writeFieldBegin('batch', thrift.Thrift.Type.STRUCT, 1);
  p.writeFieldBegin('stats', thrift.Thrift.Type.LIST, 3);
  p.writeListBegin(elementType, size);
}

/** A call frame's payload (no size) written by thrift's runtime. */
function payloadOf(write: (p: Protocol) => void): Buffer {
  let frame = Buffer.alloc(0);
  const transport = new thrift.TFramedTransport(undefined, (buf?: Buffer) => {
    if (buf) frame = Buffer.from(buf);
  });
  write(new thrift.TBinaryProtocol(transport as never));
  transport.flush();
  return frame.subarray(4);
}

/** A publish call of `batch` as thrift's generated client sends it. */
function callOf(batch: HealthStatBatch, seqid = 1): Buffer {
  let frame = Buffer.alloc(0);
  const transport = new thrift.TFramedTransport(undefined, (buf?: Buffer) => {
    if (buf) frame = Buffer.from(buf);
  });
  const client = new HealthStatService.Client(transport, thrift.TBinaryProtocol) as unknown as {
    seqid(): number;
    _seqid: number;
    send_publish(batch: unknown): void;
  };
  client._seqid = seqid - 1;
  client.seqid = () => seqid;
  client.send_publish(toBatchWire(batch));
  return frame.subarray(4);
}

/**
 * What thrift's generated processor makes of a call's payload: the batch its
 * handler is given (validated as the SP did) and the reply frame it writes
 * for `answer`; 'throws' when its reader throws.
 */
async function generatedServe(
  payload: Buffer,
  answer: () => unknown = () => ({ agentId: 'a', sequence: 1, duplicate: false, epoch: 1, replicated: true }),
): Promise<{ seen: ReturnType<typeof validateBatch> | 'throws'; reply: Buffer | undefined }> {
  let seen: ReturnType<typeof validateBatch> | 'throws' = 'throws';
  let reply: Buffer | undefined;
  const processor = new (
    HealthStatService as unknown as { Processor: new (h: unknown) => { process(i: unknown, o: unknown): void } }
  ).Processor({
    publish: (wire: unknown) => {
      seen = validateBatch(wire);
      return Promise.resolve().then(answer);
    },
  });
  const input = new thrift.TBinaryProtocol(new thrift.TFramedTransport(payload) as never);
  const output = new thrift.TBinaryProtocol(
    new thrift.TFramedTransport(undefined, (buf?: Buffer) => {
      if (buf) reply = Buffer.from(buf);
    }) as never,
  );
  try {
    processor.process(input, output);
  } catch {
    return { seen: 'throws', reply: undefined };
  }
  await new Promise((resolve) => setImmediate(resolve));
  return { seen, reply };
}

/** This codec's reading of the same payload: the validated batch, or 'throws'. */
function ownRead(payload: Buffer): ReturnType<typeof validateBatch> | 'throws' {
  try {
    return validateBatch(readPublishCall(payload).batch);
  } catch (error) {
    expect(error).toBeInstanceOf(WireDecodeError);
    return 'throws';
  }
}

describe('wire codec: reading a publish call', () => {
  it('reads what the generated client writes exactly as the generated processor does', async () => {
    const random = prng(18);
    for (let i = 0; i < 300; i++) {
      const batch = randomBatch(random);
      const payload = callOf(batch, 1 + i);
      const own = ownRead(payload);
      expect(own).toEqual({ ok: true, value: batch });
      expect((await generatedServe(payload)).seen).toEqual(own);
      expect(readPublishCall(payload).seqid).toBe(1 + i);
    }
  });

  it('agrees with the generated processor on damaged calls: whatever it accepts, the other accepted the same', async () => {
    const random = prng(1802);
    let accepted = 0;
    let refused = 0;
    let unreadable = 0;
    for (let i = 0; i < 3_000; i++) {
      const payload = Buffer.from(callOf(randomBatch(random)));
      const damage = Math.floor(random() * 3);
      if (damage === 0) payload[Math.floor(random() * payload.length)] = Math.floor(random() * 256);
      else if (damage === 1) {
        for (let j = 0; j < 4; j++) {
          const at = Math.floor(random() * payload.length);
          payload[at] = (payload[at] as number) ^ (1 << Math.floor(random() * 8));
        }
      }
      const cut = damage === 2 ? payload.subarray(0, Math.floor(random() * payload.length)) : payload;
      const own = ownRead(cut);
      if (own === 'throws') {
        unreadable += 1;
        continue;
      }
      const theirs = (await generatedServe(cut)).seen;
      if (own.ok) {
        accepted += 1;
        expect(theirs).toEqual(own);
      } else {
        refused += 1;
        // A refusal is a refusal there too, or their reader could not read it at all.
        if (theirs !== 'throws') expect(theirs.ok).toBe(false);
      }
    }
    // The damage reached every outcome.
    expect(accepted).toBeGreaterThan(100);
    expect(refused).toBeGreaterThan(100);
    expect(unreadable).toBeGreaterThan(100);
  });

  it('skips unknown fields and known fields of another type, the last of a repeated field winning', () => {
    const payload = payloadOf((p) => {
      p.writeMessageBegin('publish', thrift.Thrift.MessageType.CALL, 9);
      p.writeFieldBegin('x', thrift.Thrift.Type.MAP, 7);
      p.writeMapBegin(thrift.Thrift.Type.STRING, thrift.Thrift.Type.LIST, 1);
      p.writeString('k');
      p.writeListBegin(thrift.Thrift.Type.DOUBLE, 2);
      p.writeDouble(1);
      p.writeDouble(2);
      p.writeFieldBegin('batch', thrift.Thrift.Type.STRUCT, 1);
      p.writeFieldBegin('agentId', thrift.Thrift.Type.I32, 1); // another type: skipped
      p.writeI32(5);
      p.writeFieldBegin('agentId', thrift.Thrift.Type.STRING, 1);
      p.writeString('first');
      p.writeFieldBegin('agentId', thrift.Thrift.Type.STRING, 1);
      p.writeString('php-m-1');
      p.writeFieldBegin('sequence', thrift.Thrift.Type.I64, 2);
      p.writeI64(3);
      p.writeFieldBegin('stats', thrift.Thrift.Type.LIST, 3);
      p.writeListBegin(thrift.Thrift.Type.STRUCT, 0);
      p.writeFieldBegin('future', 16 as never, 9); // UUID, a type newer than the IDL
      (p as unknown as { writeUuid(u: string): void }).writeUuid('6ba7b810-9dad-11d1-80b4-00c04fd430c8');
      p.writeFieldStop();
      p.writeFieldStop();
    });
    expect(readPublishCall(payload)).toEqual({ seqid: 9, batch: { agentId: 'php-m-1', sequence: 3, stats: [] } });
  });

  it('gives each stat its own ids when they differ from the previous stat only in one byte, wherever it is', () => {
    // The ids are compared with the previous stat's four bytes at a time, then the rest byte by byte.
    for (let length = 1; length <= 9; length++) {
      const base = 'm'.repeat(length);
      for (let at = 0; at < length; at++) {
        const other = `${base.slice(0, at)}n${base.slice(at + 1)}`;
        const stats = [base, other, other, base].map((memberId, i) => ({
          clusterId: 'php',
          clusterInstanceId: 'php-1',
          networkPartitionId: 'np-1',
          partitionId: 'p-1',
          memberId,
          healthDescription: 'load_average' as const,
          value: i,
          timestamp: 1_700_000_000_000 + i,
        }));
        const batch: HealthStatBatch = { agentId: 'a', sequence: 1, stats };
        expect(ownRead(callOf(batch))).toEqual({ ok: true, value: batch });
      }
    }
  });

  it('gives a stat the ids of its own bytes, though the stat before repeated an id field after its five', async () => {
    const writeStat = (p: Protocol, clusterIds: string[]) => {
      const [first, ...again] = clusterIds;
      p.writeFieldBegin('clusterId', thrift.Thrift.Type.STRING, 1);
      p.writeString(first as string);
      for (const [id, name] of [
        [2, 'php-1'],
        [3, 'np-1'],
        [4, 'p-1'],
        [5, 'php-m-1'],
      ] as const) {
        p.writeFieldBegin('id', thrift.Thrift.Type.STRING, id);
        p.writeString(name);
      }
      for (const clusterId of again) {
        p.writeFieldBegin('clusterId', thrift.Thrift.Type.STRING, 1);
        p.writeString(clusterId);
      }
      p.writeFieldBegin('healthDescription', thrift.Thrift.Type.STRING, 6);
      p.writeString('load_average');
      p.writeFieldBegin('value', thrift.Thrift.Type.DOUBLE, 7);
      p.writeDouble(1);
      p.writeFieldBegin('timestamp', thrift.Thrift.Type.I64, 8);
      p.writeI64(5);
      p.writeFieldStop();
    };
    const payload = payloadOf((p) => {
      p.writeMessageBegin('publish', thrift.Thrift.MessageType.CALL, 1);
      p.writeFieldBegin('batch', thrift.Thrift.Type.STRUCT, 1);
      p.writeFieldBegin('agentId', thrift.Thrift.Type.STRING, 1);
      p.writeString('php-m-1');
      p.writeFieldBegin('sequence', thrift.Thrift.Type.I64, 2);
      p.writeI64(1);
      p.writeFieldBegin('stats', thrift.Thrift.Type.LIST, 3);
      p.writeListBegin(thrift.Thrift.Type.STRUCT, 3);
      writeStat(p, ['php', 'other']);
      writeStat(p, ['php']);
      writeStat(p, ['php']);
      p.writeFieldStop();
      p.writeFieldStop();
    });
    const stats = readPublishCall(payload).batch?.stats;
    expect(stats?.map((s) => s?.clusterId)).toEqual(['other', 'php', 'php']);
    expect(ownRead(payload)).toEqual((await generatedServe(payload)).seen);
  });

  it('reads the old unversioned message header', () => {
    const payload = payloadOf((p) => {
      const w = p as unknown as { trans: { write(b: Buffer): void } };
      p.writeI32(7);
      w.trans.write(Buffer.from('publish'));
      p.writeByte(thrift.Thrift.MessageType.CALL);
      p.writeI32(4);
      p.writeFieldStop();
    });
    expect(readPublishCall(payload)).toEqual({ seqid: 4, batch: undefined });
  });

  it.each([
    [
      'another call',
      (p: Protocol) => {
        p.writeMessageBegin('publisH', thrift.Thrift.MessageType.CALL, 1);
        p.writeFieldStop();
      },
      'not a publish call',
    ],
    [
      'a reply instead of a call',
      (p: Protocol) => {
        p.writeMessageBegin('publish', thrift.Thrift.MessageType.REPLY, 1);
        p.writeFieldStop();
      },
      'not a call',
    ],
    [
      'two calls in one frame',
      (p: Protocol) => {
        for (let i = 0; i < 2; i++) {
          p.writeMessageBegin('publish', thrift.Thrift.MessageType.CALL, 1);
          p.writeFieldStop();
        }
      },
      'more than one call',
    ],
    [
      'a list of more than 10 000 stats',
      (p: Protocol) => {
        statsListCall(p, thrift.Thrift.Type.STRUCT, 10_001);
        for (let i = 0; i < 10_001; i++) p.writeFieldStop();
      },
      'at most 10000',
    ],
    [
      'a list announcing more elements than it has bytes',
      (p: Protocol) => {
        p.writeMessageBegin('publish', thrift.Thrift.MessageType.CALL, 1);
        p.writeFieldBegin('x', thrift.Thrift.Type.LIST, 2);
        p.writeListBegin(thrift.Thrift.Type.I64, 9_000);
      },
      'elements in',
    ],
    [
      'a list of stats whose element type is not a struct (thrift would read its elements as stats all the same)',
      (p: Protocol) => {
        statsListCall(p, thrift.Thrift.Type.I32, 1);
        p.writeI32(0);
        p.writeFieldStop();
        p.writeFieldStop();
      },
      'element type 8',
    ],
    [
      'a negative string length',
      (p: Protocol) => {
        p.writeMessageBegin('publish', thrift.Thrift.MessageType.CALL, 1);
        p.writeFieldBegin('x', thrift.Thrift.Type.STRING, 2);
        p.writeI32(-5);
      },
      'negative length',
    ],
    [
      'an unknown type',
      (p: Protocol) => {
        p.writeMessageBegin('publish', thrift.Thrift.MessageType.CALL, 1);
        p.writeFieldBegin('x', 99 as never, 2);
      },
      'invalid type 99',
    ],
  ])('refuses %s', (_, write, why) => {
    expect(() => readPublishCall(payloadOf(write))).toThrow(why);
  });

  it(`refuses values nested deeper than ${MAX_SKIP_DEPTH}, without exhausting the stack`, () => {
    // 300 000 nested structs in one frame: a recursive skip without a bound would overflow the stack.
    const depth = 300_000;
    const nested = (levels: number) =>
      payloadOf((p) => {
        p.writeMessageBegin('publish', thrift.Thrift.MessageType.CALL, 1);
        for (let i = 0; i < levels; i++) p.writeFieldBegin('x', thrift.Thrift.Type.STRUCT, 2);
        for (let i = 0; i <= levels; i++) p.writeFieldStop();
      });
    expect(() => readPublishCall(nested(depth))).toThrow(`nested deeper than ${MAX_SKIP_DEPTH}`);
    expect(readPublishCall(nested(MAX_SKIP_DEPTH)).batch).toBeUndefined();
  });

  it('reads an i64 beyond the safe integers as NaN, which validation refuses', () => {
    const payload = payloadOf((p) => {
      p.writeMessageBegin('publish', thrift.Thrift.MessageType.CALL, 1);
      p.writeFieldBegin('batch', thrift.Thrift.Type.STRUCT, 1);
      p.writeFieldBegin('sequence', thrift.Thrift.Type.I64, 2);
      const w = p as unknown as { trans: { write(b: Buffer): void } };
      w.trans.write(Buffer.from([0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]));
      p.writeFieldStop();
      p.writeFieldStop();
    });
    const { batch } = readPublishCall(payload);
    expect(batch?.sequence).toBeNaN();
    expect(validateBatch(batch).ok).toBe(false);
  });

  it('reads a bare batch struct, and nothing after it', () => {
    const batch = randomBatch(prng(7));
    const struct = callOf(batch).subarray(4 + 4 + 7 + 4 + 3, -1); // header, the args' field header, their stop
    expect(validateBatch(readBatchStruct(struct))).toEqual({ ok: true, value: batch });
    expect(() => readBatchStruct(Buffer.concat([struct, Buffer.from([0])]))).toThrow('bytes after the batch');
  });
});

/** A call of one stat of php-m-1 written field by field; `extra` writes more into the stat after its eight fields. */
function handCall(extra: (p: Protocol) => void = () => {}, batchExtra: (p: Protocol) => void = () => {}): Buffer {
  const T = thrift.Thrift.Type;
  const stat = testStat();
  return payloadOf((p) => {
    p.writeMessageBegin('publish', thrift.Thrift.MessageType.CALL, 3);
    p.writeFieldBegin('batch', T.STRUCT, 1);
    p.writeFieldBegin('agentId', T.STRING, 1);
    p.writeString('php-m-1');
    p.writeFieldBegin('sequence', T.I64, 2);
    p.writeI64(1);
    p.writeFieldBegin('stats', T.LIST, 3);
    p.writeListBegin(T.STRUCT, 1);
    const ids = ['clusterId', 'clusterInstanceId', 'networkPartitionId', 'partitionId', 'memberId'] as const;
    ids.forEach((field, i) => {
      p.writeFieldBegin(field, T.STRING, i + 1);
      p.writeString(stat[field]);
    });
    p.writeFieldBegin('healthDescription', T.STRING, 6);
    p.writeString(stat.healthDescription);
    p.writeFieldBegin('value', T.DOUBLE, 7);
    p.writeDouble(stat.value);
    p.writeFieldBegin('timestamp', T.I64, 8);
    p.writeI64(stat.timestamp);
    extra(p);
    p.writeFieldStop();
    batchExtra(p);
    p.writeFieldStop();
    p.writeFieldStop();
  });
}

describe('wire codec: an agent’s call read into columns', () => {
  it('reads every call of one member’s stats the generated client writes, as the same batch the general reading makes', () => {
    const random = prng(2026);
    for (let i = 0; i < 300; i++) {
      const batch = randomBatch(random, { oneMember: true });
      const payload = callOf(batch, 1 + i);
      const read = decodePublishColumns(payload);
      expect(read?.seqid).toBe(1 + i);
      expect(read && batchOf(read.batch)).toEqual(batch);
      expect(ownRead(payload)).toEqual({ ok: true, value: batch });
    }
  });

  it('leaves every other form to the general reading, which reads or refuses it', () => {
    const one = { agentId: 'php-m-1', sequence: 1, stats: [testStat()] };
    const T = thrift.Thrift.Type;
    /** Writes field `id` of `type`: an i32 or a string. */
    const field = (name: string, type: number, id: number) => (p: Protocol) => {
      p.writeFieldBegin(name, type, id);
      if (type === T.I32) p.writeI32(1);
      else p.writeString('php-m-1');
    };
    const cases: [string, Buffer, 'read' | 'refused'][] = [
      ['stats of two members', callOf({ ...one, stats: [testStat(), testStat({ memberId: 'php-m-2' })] }), 'read'],
      ['no stats', callOf({ ...one, stats: [] }), 'read'],
      ['a ninth field in a stat', handCall(field('x', T.I32, 9)), 'read'],
      ['a field of the batch it does not know', handCall(undefined, field('x', T.I32, 9)), 'read'],
      ['a field of the batch twice', handCall(undefined, field('agentId', T.STRING, 1)), 'read'],
      ['a value that is not finite', callOf({ ...one, stats: [testStat({ value: Number.NaN })] }), 'refused'],
      ['a timestamp past the safe integers', callOf({ ...one, stats: [testStat({ timestamp: 2 ** 60 })] }), 'refused'],
      ['a negative timestamp', callOf({ ...one, stats: [testStat({ timestamp: -1 })] }), 'refused'],
      ['an id off its pattern', callOf({ ...one, stats: [testStat({ memberId: 'php m 1' })] }), 'refused'],
      [
        'a description it does not know',
        callOf({ ...one, stats: [testStat({ healthDescription: 'nope' as 'load_average' })] }),
        'refused',
      ],
      ['an agent id off its pattern', callOf({ ...one, agentId: 'php m 1' }), 'refused'],
      ['sequence 0', callOf({ ...one, sequence: 0 }), 'refused'],
    ];
    for (const [name, payload, outcome] of cases) {
      expect({ name, columns: decodePublishColumns(payload) }).toEqual({ name, columns: undefined });
      const own = ownRead(payload);
      expect({ name, outcome: own !== 'throws' && own.ok ? 'read' : 'refused' }).toEqual({ name, outcome });
    }
  });

  it('takes from a damaged call only what the general reading takes, as the same batch', () => {
    const random = prng(2027);
    let taken = 0;
    let left = 0;
    for (let i = 0; i < 5_000; i++) {
      const payload = Buffer.from(callOf(randomBatch(random, { oneMember: true })));
      const flips = 1 + Math.floor(random() * 3);
      for (let f = 0; f < flips; f++) {
        const at = Math.floor(random() * payload.length);
        payload[at] =
          random() < 0.5 ? Math.floor(random() * 256) : (payload[at] as number) ^ (1 << Math.floor(random() * 8));
      }
      const cut = random() < 0.2 ? payload.subarray(0, Math.floor(random() * payload.length)) : payload;
      const read = decodePublishColumns(cut);
      if (read === undefined) {
        left += 1;
        continue;
      }
      taken += 1;
      const own = ownRead(cut);
      expect(own).toEqual({ ok: true, value: batchOf(read.batch) });
      expect(readPublishCall(cut).seqid).toBe(read.seqid);
    }
    // Many flips land in values and timestamps, which stay valid; many break the form.
    expect(taken).toBeGreaterThan(150);
    expect(left).toBeGreaterThan(500);
  });
});

describe('wire codec: writing a reply', () => {
  const call = callOf({ agentId: 'php-m-1:7', sequence: 3, stats: [] }, 77);

  it.each([
    [
      'an acknowledgement',
      { agentId: 'php-m-1:7', sequence: 2 ** 40 + 3, duplicate: true, epoch: 12, replicated: false },
    ],
    [
      'an acknowledgement of a non-ASCII agent id',
      { agentId: 'ürün-ß-1', sequence: 1, duplicate: false, epoch: 0, replicated: true },
    ],
  ])('writes %s byte for byte as thrift does', async (_, ack) => {
    const { reply } = await generatedServe(call, () => new generated.BatchAck(ack));
    expect(encodeAckReply(77, ack)).toEqual(reply);
  });

  it.each([
    [
      'NotActive with its node',
      () => new generated.NotActive({ message: 'sp-1 is not the active node', nodeId: 'sp-1' }),
    ],
    ['NotActive without a node', () => new generated.NotActive({ message: 'not active' })],
    ['InvalidBatch', () => new generated.InvalidBatch({ message: 'credential_invalid: ✗' })],
  ])('writes %s byte for byte as thrift does', async (_, exception) => {
    const { reply } = await generatedServe(call, () => {
      throw exception();
    });
    const e = exception() as Error & { nodeId?: string };
    const kind = e instanceof generated.NotActive ? 'NotActive' : 'InvalidBatch';
    expect(encodeExceptionReply(77, { kind, message: e.message, nodeId: e.nodeId } as never)).toEqual(reply);
  });

  it('writes an undeclared error as thrift does: a TApplicationException', async () => {
    const { reply } = await generatedServe(call, () => {
      throw new Error('boom');
    });
    expect(encodeApplicationException(77, 'boom')).toEqual(reply);
  });
});
