import net from 'node:net';
import type { Result } from '@faultline/core';
import { waitFor } from '@faultline/test-support';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type AnyBatch,
  type BatchAck,
  type BatchDecodeError,
  batchOf,
  connectHealthStat,
  createHealthStatServer,
  fromAckWire,
  type HealthStatBatch,
  HealthStatService,
  HeldFrames,
  isStatColumns,
  thrift,
  thriftGenerated,
  toBatchWire,
} from '../src/index.js';

/*
 * The generated code against the npm thrift 0.24 runtime over real TCP, with
 * the settings README "Thrift" fixes: framed transport, binary protocol, a maximum
 * frame size, server.on('error'). The SP's own source builds on exactly this.
 */
async function startServer(
  handler: (batch: Result<AnyBatch, BatchDecodeError>, peer: string | undefined) => Promise<BatchAck>,
  options: { maxHeldFrameBytes?: number; heldFrames?: HeldFrames; maxFrameBytes?: number } = {},
) {
  const errors: Error[] = [];
  const server = createHealthStatServer({ publish: handler }, { onConnectionError: (e) => errors.push(e), ...options });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as net.AddressInfo).port, errors };
}

/** A handler acknowledging every valid batch under `epoch`, refusing an invalid one. */
const acking =
  (epoch: number) =>
  async (batch: Result<AnyBatch, BatchDecodeError>): Promise<BatchAck> => {
    if (!batch.ok) throw new thriftGenerated.InvalidBatch({ message: batch.error.message });
    const { agentId, sequence } = batch.value;
    return { agentId, sequence, duplicate: false, epoch, replicated: true };
  };

async function connect(port: number) {
  const connection = connectHealthStat('127.0.0.1', port);
  await connection.ready;
  return { connection: { end: connection.close }, client: connection.client };
}

/** A handler whose every call takes 1 ms of this process, then counts it (`onCall`) and acknowledges it. */
const oneMsCalls =
  (onCall: () => void) =>
  async (batch: Result<AnyBatch, BatchDecodeError>): Promise<BatchAck> => {
    const until = performance.now() + 1;
    while (performance.now() < until);
    onCall();
    if (!batch.ok) throw new Error(batch.error.message);
    return { ...batch.value, duplicate: false, epoch: 1, replicated: false };
  };

/** The frames a client sends for `n` pipelined calls (one member's batches, sequences 1…n), captured off a socket. */
async function sentFrames(n: number, agentId = 'm-1'): Promise<Buffer[]> {
  const chunks: Buffer[] = [];
  const sink = net.createServer((socket) => socket.on('data', (chunk) => chunks.push(chunk)));
  await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
  const { connection, client } = await connect((sink.address() as net.AddressInfo).port);
  for (let i = 0; i < n; i++)
    void client.publish(toBatchWire({ agentId, sequence: i + 1, stats: [stat] })).catch(() => {});
  try {
    return await waitFor(() => {
      const frames = framesOf(Buffer.concat(chunks));
      return frames.length === n ? frames : undefined;
    }, `${n} frames sent`);
  } finally {
    connection.end();
    sink.close();
  }
}

/** The whole frames of `bytes` (framed transport: a 4-byte size before each), each with its size. */
function framesOf(bytes: Buffer): Buffer[] {
  const found: Buffer[] = [];
  for (
    let at = 0;
    at + 4 <= bytes.length && at + 4 + bytes.readInt32BE(at) <= bytes.length;
    at += 4 + bytes.readInt32BE(at)
  ) {
    found.push(bytes.subarray(at, at + 4 + bytes.readInt32BE(at)));
  }
  return found;
}

const stat = {
  clusterId: 'php',
  clusterInstanceId: 'php-1',
  networkPartitionId: 'np-1',
  partitionId: 'p-1',
  memberId: 'm-1',
  healthDescription: 'memory_consumption' as const,
  value: 40,
  timestamp: Date.now(),
};

describe('HealthStatService over TCP', () => {
  const cleanup: (() => void)[] = [];
  afterEach(() => {
    for (const fn of cleanup.splice(0)) fn();
  });

  it('acknowledges a batch with a typed reply, i64 intact', async () => {
    const { server, port } = await startServer(acking(3));
    const { connection, client } = await connect(port);
    cleanup.push(
      () => connection.end(),
      () => server.close(),
    );
    const ack = fromAckWire(await client.publish(toBatchWire({ agentId: 'a-1', sequence: 2 ** 40, stats: [stat] })));
    expect(ack).toEqual({ agentId: 'a-1', sequence: 2 ** 40, duplicate: false, epoch: 3, replicated: true });
  });

  it('hands an agent’s call (one member’s stats) over in columns, a call of two members’ as objects', async () => {
    const seen: AnyBatch[] = [];
    const { server, port } = await startServer(async (batch) => {
      if (!batch.ok) throw batch.error;
      seen.push(batch.value);
      return acking(1)(batch);
    });
    const { connection, client } = await connect(port);
    cleanup.push(
      () => connection.end(),
      () => server.close(),
    );
    const one: HealthStatBatch = { agentId: 'm-1', sequence: 1, stats: [stat, { ...stat, value: 41 }] };
    const two: HealthStatBatch = { agentId: 'm-1', sequence: 2, stats: [stat, { ...stat, memberId: 'm-2' }] };
    await client.publish(toBatchWire(one));
    await client.publish(toBatchWire(two));
    expect(seen.map(isStatColumns)).toEqual([true, false]);
    expect(seen.map(batchOf)).toEqual([one, two]);
  });

  it('carries NotActive to the client as a declared exception', async () => {
    const { server, port } = await startServer(async () => {
      throw new thriftGenerated.NotActive({ message: 'passive', nodeId: 'sp-2' });
    });
    const { connection, client } = await connect(port);
    cleanup.push(
      () => connection.end(),
      () => server.close(),
    );
    await expect(client.publish(toBatchWire({ agentId: 'a-1', sequence: 1, stats: [] }))).rejects.toMatchObject({
      message: 'passive',
      nodeId: 'sp-2',
    });
  });

  it('drops a connection that sends a negative frame size and keeps serving others', async () => {
    const { server, port, errors } = await startServer(async () => ({
      agentId: 'after',
      sequence: 1,
      duplicate: false,
      epoch: 1,
      replicated: false,
    }));
    cleanup.push(() => server.close());
    const raw = net.connect(port, '127.0.0.1');
    raw.on('error', () => {});
    const closed = new Promise<void>((resolve) => raw.on('close', () => resolve()));
    raw.write(Buffer.from([0xff, 0xff, 0xff, 0xf0, 1, 2, 3, 4]));
    await closed;
    expect(errors.length).toBeGreaterThan(0);
    const { connection, client } = await connect(port);
    cleanup.push(() => connection.end());
    const ack = await client.publish(toBatchWire({ agentId: 'after', sequence: 1, stats: [stat] }));
    expect(ack.agentId).toBe('after');
  });

  it('answers a call sent one byte per write, and one whose ack it cannot write with an application error', async () => {
    let calls = 0;
    const { server, port, errors } = await startServer(async (batch) => {
      calls += 1;
      if (!batch.ok) throw new thriftGenerated.InvalidBatch({ message: batch.error.message });
      // The second call's ack holds a sequence no i64 can carry: the server answers an error and serves on.
      return {
        ...batch.value,
        sequence: calls === 2 ? Number.NaN : batch.value.sequence,
        duplicate: false,
        epoch: 1,
        replicated: true,
      };
    });
    cleanup.push(() => server.close());
    let frame = Buffer.alloc(0);
    const transport = new thrift.TFramedTransport(undefined, (buf?: Buffer) => {
      if (buf) frame = Buffer.from(buf);
    });
    const writer = new HealthStatService.Client(transport, thrift.TBinaryProtocol) as unknown as {
      send_publish(batch: unknown): void;
    };
    writer.send_publish(toBatchWire({ agentId: 'm-1', sequence: 1, stats: [stat] }));
    const raw = net.connect(port, '127.0.0.1');
    raw.setNoDelay(true);
    raw.on('error', () => {});
    const replied = new Promise<Buffer>((resolve) => raw.once('data', resolve));
    await new Promise<void>((resolve) => raw.once('connect', () => resolve()));
    for (const byte of frame) {
      raw.write(Buffer.from([byte]));
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect((await replied).length).toBeGreaterThan(4);
    raw.destroy();
    expect(calls).toBe(1);
    const { connection, client } = await connect(port);
    cleanup.push(() => connection.end());
    await expect(client.publish(toBatchWire({ agentId: 'm-1', sequence: 2, stats: [stat] }))).rejects.toThrow(
      'the reply could not be written',
    );
    const ack = await client.publish(toBatchWire({ agentId: 'm-1', sequence: 3, stats: [stat] }));
    expect(fromAckWire(ack).sequence).toBe(3);
    expect(errors).toEqual([]);
  });

  it('hands the handler every pipelined call in order, with the peer address and the credential', async () => {
    const seen: { sequence: number; peer: string | undefined; credential: string | undefined }[] = [];
    const { server, port } = await startServer(async (batch, peer) => {
      if (!batch.ok) throw new thriftGenerated.InvalidBatch({ message: batch.error.message });
      seen.push({ sequence: batch.value.sequence, peer, credential: batch.value.credential });
      return { ...batch.value, duplicate: false, epoch: 1, replicated: false };
    });
    const { connection, client } = await connect(port);
    cleanup.push(
      () => connection.end(),
      () => server.close(),
    );
    const acks = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        client.publish(toBatchWire({ agentId: 'm-1', sequence: i + 1, stats: [stat], credential: 'm-1:php:np-1:x' })),
      ),
    );
    expect(acks.map((a) => fromAckWire(a).sequence)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    expect(seen.map((s) => s.sequence)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    expect(new Set(seen.map((s) => s.peer))).toEqual(new Set(['127.0.0.1']));
    expect(seen.every((s) => s.credential === 'm-1:php:np-1:x')).toBe(true);
  });

  it('handles about one budget of frames a turn of the event loop, all connections together', async () => {
    // Each call takes 1 ms of this process; 20 connections each send 40 calls at once (agents after a stall).
    let handled = 0;
    let mostInOneTurn = 0;
    let thisTurn = 0;
    let turning = true;
    const turn = () => {
      mostInOneTurn = Math.max(mostInOneTurn, thisTurn);
      thisTurn = 0;
      if (turning) setImmediate(turn);
    };
    // A frame budget far below what the 20 connections pipeline: whole frames waiting for their turn are no hoard.
    const { server, port, errors } = await startServer(
      oneMsCalls(() => {
        handled += 1;
        thisTurn += 1;
      }),
      { heldFrames: new HeldFrames(16 * 1024) },
    );
    const clients = await Promise.all(Array.from({ length: 20 }, () => connect(port)));
    cleanup.push(() => {
      turning = false;
      for (const c of clients) c.connection.end();
      server.close();
    });
    setImmediate(turn);
    await Promise.all(
      clients.flatMap(({ client }, c) =>
        Array.from({ length: 40 }, (_, i) =>
          client.publish(toBatchWire({ agentId: `m-${c}`, sequence: i + 1, stats: [stat] })),
        ),
      ),
    );
    expect(handled).toBe(800);
    expect(errors).toEqual([]);
    // A budget (5 ms: some 5 calls) and at most one call of each other connection (≤ 25); a budget each made
    // up to 100 (42 seen).
    expect(mostInOneTurn).toBeLessThan(30);
  });

  it('leaves the frames a turn could not take to the next turn, not to a second budget in this one', async () => {
    // 20 connections' calls arrive at once at an idle server (agents on a common tick), each call taking 1 ms of
    // this process. A timer fires once a turn of the event loop at most (in its first phase, where the SP's timers
    // and its delay monitor fire): the calls handled between two firings are one turn's.
    const calls = Buffer.concat(await sentFrames(40));
    let handled = 0;
    let mostBetweenTimers = 0;
    let sinceTimer = 0;
    let ticking = true;
    const tick = () => {
      mostBetweenTimers = Math.max(mostBetweenTimers, sinceTimer);
      sinceTimer = 0;
      if (ticking) setTimeout(tick, 0);
    };
    const { server, port, errors } = await startServer(
      oneMsCalls(() => {
        handled += 1;
        sinceTimer += 1;
      }),
      { heldFrames: new HeldFrames(16 * 1024 * 1024) },
    );
    const sockets = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const socket = net.connect(port, '127.0.0.1');
        socket.on('error', () => {});
        socket.on('data', () => {});
        await new Promise((resolve) => socket.once('connect', resolve));
        return socket;
      }),
    );
    cleanup.push(() => {
      ticking = false;
      for (const socket of sockets) socket.destroy();
      server.close();
    });
    setTimeout(tick, 0);
    for (const socket of sockets) socket.write(calls);
    // Every connection's calls reach the server's sockets before its next read.
    const until = performance.now() + 20;
    while (performance.now() < until);
    await waitFor(() => handled === 800, '800 calls handled');
    expect(errors).toEqual([]);
    // One budget (5 ms: 5 calls, a sixth begun within it) a turn. The turn's reads used to spend a budget and the
    // calls they left waiting another one in the same turn's last phase: 10–11 calls between two timers.
    expect(mostBetweenTimers).toBeLessThanOrEqual(7);
  });

  it('lets no connection that sends a frame every turn hold back those waiting for a turn', async () => {
    // One agent's calls take 6 ms each (more than a turn's budget) and each arrives as the last is handled: a read
    // of one whole frame in every turn, which never leaves that connection waiting. Another agent's 40 calls
    // (1 ms each) arrive at once: the ones past a budget wait for a turn, and must get one.
    const steadyFrames = await sentFrames(200, 'steady');
    let steadyLeft = steadyFrames.length;
    let steadySocket: net.Socket | undefined;
    const sendSteady = () => {
      const frame = steadyFrames.shift();
      if (frame) steadySocket?.write(frame);
    };
    const { server, port, errors } = await startServer(
      async (batch) => {
        const steady = batch.ok && batch.value.agentId === 'steady';
        const until = performance.now() + (steady ? 6 : 1);
        while (performance.now() < until);
        if (steady) {
          steadyLeft -= 1;
          sendSteady();
        }
        if (!batch.ok) throw new Error(batch.error.message);
        return { ...batch.value, duplicate: false, epoch: 1, replicated: false };
      },
      { heldFrames: new HeldFrames(16 * 1024 * 1024) },
    );
    const socket = net.connect(port, '127.0.0.1');
    steadySocket = socket;
    socket.on('error', () => {});
    socket.on('data', () => {});
    await new Promise((resolve) => socket.once('connect', resolve));
    const burst = await connect(port);
    cleanup.push(() => {
      socket.destroy();
      burst.connection.end();
      server.close();
    });
    sendSteady();
    await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        burst.client.publish(toBatchWire({ agentId: 'burst', sequence: i + 1, stats: [stat] })),
      ),
    );
    const steadyLeftWhenBurstDone = steadyLeft;
    expect(errors).toEqual([]);
    // 40 ms of calls, some turns' worth: done with most of the other agent's 200 calls (1.2 s) still to come,
    // not after the last of them (the turns' reads used to spend every budget before a waiting frame's turn).
    expect(steadyLeftWhenBurstDone).toBeGreaterThan(100);
  });

  it('ends a connection that announces more than 10 000 elements, or calls anything but publish', async () => {
    let calls = 0;
    const { server, port, errors } = await startServer(async () => {
      calls += 1;
      return { agentId: 'x', sequence: 1, duplicate: false, epoch: 1, replicated: false };
    });
    cleanup.push(() => server.close());
    const frameOf = (write: (p: InstanceType<typeof thrift.TBinaryProtocol>) => void) => {
      let frame = Buffer.alloc(0);
      const transport = new thrift.TFramedTransport(undefined, (buf?: Buffer) => {
        if (buf) frame = Buffer.from(buf);
      });
      const p = new thrift.TBinaryProtocol(transport as never);
      write(p);
      transport.flush();
      return frame;
    };
    const huge = frameOf((p) => {
      p.writeMessageBegin('publish', thrift.Thrift.MessageType.CALL, 1);
      p.writeStructBegin('args');
      p.writeFieldBegin('batch', thrift.Thrift.Type.STRUCT, 1);
      p.writeStructBegin('batch');
      p.writeFieldBegin('stats', thrift.Thrift.Type.LIST, 3);
      p.writeListBegin(thrift.Thrift.Type.STRUCT, 10_001);
      for (let i = 0; i < 10_001; i++) p.writeFieldStop();
    });
    const other = frameOf((p) => {
      p.writeMessageBegin('x'.repeat(100_000), thrift.Thrift.MessageType.CALL, 1);
      p.writeStructBegin('args');
      p.writeFieldStop();
      p.writeStructEnd();
      p.writeMessageEnd();
    });
    for (const frame of [huge, other]) {
      const raw = net.connect(port, '127.0.0.1');
      raw.on('error', () => {});
      let replied = 0;
      raw.on('data', (chunk: Buffer) => {
        replied += chunk.length;
      });
      const closed = new Promise<void>((resolve) => raw.on('close', () => resolve()));
      raw.write(frame);
      await closed;
      expect(replied).toBe(0);
    }
    expect(calls).toBe(0);
    expect(errors).toHaveLength(2);
  });

  it('bounds what all connections hold of frames not complete yet: past it, the one holding most is closed; the others are served', async () => {
    // Frames up to 3 MB here; what a connection keeps counts whole (its buffer, up to twice what waits).
    const heldFrames = new HeldFrames(3_000_000);
    const { server, port, errors } = await startServer(acking(1), { heldFrames, maxFrameBytes: 3_000_000 });
    cleanup.push(() => server.close());
    // Two connections announce 2 900 000-byte frames and send only part of them (nothing is checked before a
    // frame is whole).
    const hoarder = async (bytes: number) => {
      const socket = net.connect(port, '127.0.0.1');
      await new Promise((resolve) => socket.once('connect', resolve));
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      socket.on('error', () => {});
      const header = Buffer.alloc(4);
      header.writeInt32BE(2_900_000);
      socket.write(Buffer.concat([header, Buffer.alloc(bytes)]));
      cleanup.push(() => socket.destroy());
      return { socket, closed };
    };
    const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    const until = async (done: () => boolean) => {
      for (let i = 0; i < 400 && !done(); i++) await sleep(5);
    };
    const a = await hoarder(600_000);
    const b = await hoarder(500_000);
    // The server has read both (1 100 000 bytes waiting, buffers of at most twice that: under the budget).
    await until(() => heldFrames.bytes >= 1_100_000);
    expect(heldFrames.bytes).toBeGreaterThanOrEqual(1_100_000);
    expect(errors).toEqual([]);
    // A sends 2 000 000 more: past the budget. A keeps the most, so A goes.
    a.socket.write(Buffer.alloc(2_000_000));
    await a.closed;
    await until(() => errors.length > 0);
    expect(errors.map((e) => e.message)).toEqual([
      expect.stringMatching(
        /^incomplete frames over the server's budget \(3000000 bytes\): this connection held the most, \d+$/,
      ),
    ]);
    // B keeps its connection, and an agent's call is served meanwhile.
    const { connection, client } = await connect(port);
    cleanup.push(() => connection.end());
    const ack = fromAckWire(await client.publish(toBatchWire({ agentId: 'a-1', sequence: 1, stats: [stat] })));
    expect(ack.sequence).toBe(1);
    expect(b.socket.destroyed).toBe(false);
    expect(errors).toHaveLength(1);
  });

  it('keeps no large buffer (and counts none) for a few bytes of the next frame behind a large one', async () => {
    const heldFrames = new HeldFrames(64 * 1024 * 1024);
    const { server, port, errors } = await startServer(acking(1), { heldFrames });
    cleanup.push(() => server.close());
    // A publish call whose only field is an unknown 900 000-byte string: read whole, answered InvalidBatch,
    // the connection kept. Then 10 bytes of a next frame.
    const name = Buffer.from('publish');
    const head = Buffer.alloc(4 + 4 + name.length + 4);
    head.writeUInt32BE(0x80010001, 0);
    head.writeInt32BE(name.length, 4);
    name.copy(head, 8);
    head.writeInt32BE(1, 8 + name.length);
    const field = Buffer.alloc(1 + 2 + 4);
    field.writeUInt8(11, 0); // a string
    field.writeInt16BE(99, 1);
    field.writeInt32BE(900_000, 3);
    const call = Buffer.concat([head, field, Buffer.alloc(900_000), Buffer.from([0])]);
    const frame = Buffer.alloc(4);
    frame.writeInt32BE(call.length);
    const socket = net.connect(port, '127.0.0.1');
    cleanup.push(() => socket.destroy());
    socket.on('error', () => {});
    const answered = new Promise((resolve) => socket.once('data', resolve));
    await new Promise((resolve) => socket.once('connect', resolve));
    // In pieces, as a slow peer would: the server's buffer grows past 1 MB while the frame comes in.
    const next = Buffer.from([0, 0, 0, 100, 1, 2, 3, 4, 5, 6]); // a 100-byte frame's size and 6 of its bytes
    const bytes = Buffer.concat([frame, call, next]);
    for (let at = 0; at < bytes.length; at += 16 * 1024) {
      socket.write(bytes.subarray(at, at + 16 * 1024));
      await new Promise((resolve) => setImmediate(resolve));
    }
    await answered;
    for (let i = 0; i < 200 && heldFrames.bytes !== 10; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    // The 10 bytes waiting are all it keeps, and all it counts.
    expect(heldFrames.bytes).toBe(10);
    expect(errors).toEqual([]);
    expect(socket.destroyed).toBe(false);
  });
});
