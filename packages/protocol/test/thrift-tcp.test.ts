import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type BatchAckWire,
  connectHealthStat,
  createHealthStatServer,
  fromAckWire,
  type HealthStatBatchWire,
  thriftGenerated,
  toAckWire,
  toBatchWire,
  validateBatch,
} from '../src/index.js';

/*
 * The generated code against the npm thrift 0.24 runtime over real TCP, with
 * the settings DESIGN.md fixes: framed transport, binary protocol, a maximum
 * frame size, server.on('error'). The SP's own source builds on exactly this.
 */
async function startServer(handler: (batch: HealthStatBatchWire) => Promise<BatchAckWire>) {
  const errors: Error[] = [];
  const server = createHealthStatServer({ publish: handler }, { onConnectionError: (e) => errors.push(e) });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as net.AddressInfo).port, errors };
}

async function connect(port: number) {
  const connection = connectHealthStat('127.0.0.1', port);
  await connection.ready;
  return { connection: { end: connection.close }, client: connection.client };
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
    const { server, port } = await startServer(async (wire) => {
      const batch = validateBatch(wire);
      if (!batch.ok) throw new thriftGenerated.InvalidBatch({ message: batch.error.message });
      return toAckWire({
        agentId: batch.value.agentId,
        sequence: batch.value.sequence,
        duplicate: false,
        epoch: 3,
        replicated: true,
      });
    });
    const { connection, client } = await connect(port);
    cleanup.push(
      () => connection.end(),
      () => server.close(),
    );
    const ack = fromAckWire(await client.publish(toBatchWire({ agentId: 'a-1', sequence: 2 ** 40, stats: [stat] })));
    expect(ack).toEqual({ agentId: 'a-1', sequence: 2 ** 40, duplicate: false, epoch: 3, replicated: true });
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
    const { server, port, errors } = await startServer(async (wire) =>
      toAckWire({ agentId: wire.agentId, sequence: 1, duplicate: false, epoch: 1, replicated: false }),
    );
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
});
