import net from 'node:net';
import { ConfigError } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import { TEST_CREDENTIALS } from '@faultline/test-support';
import { describe, expect, it } from 'vitest';
import { createBrokerNode } from '../src/index.js';
import { connect } from './mqtt.js';

const users = [{ ...TEST_CREDENTIALS.sp, role: 'sp' as const }];

function tcpConnect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

describe('createBrokerNode lifecycle', () => {
  it('listens on an ephemeral port and closes idempotently', async () => {
    const node = await createBrokerNode({ name: 'a', users });
    expect(node.name).toBe('a');
    expect(node.host).toBe('127.0.0.1');
    expect(node.port).toBeGreaterThan(0);
    const client = await connect(`mqtt://127.0.0.1:${node.port}`, TEST_CREDENTIALS.sp);
    expect(node.connectedClients()).toBe(1);
    expect(node.counters.connections).toBe(1);

    const [first, second] = [node.close(), node.close()];
    expect(second).toBe(first);
    await first;
    await node.close();
    // Its clients were disconnected and nothing listens any more.
    await client.closed;
    await expect(tcpConnect(node.port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('does not wait for a socket that never sent CONNECT when closing', async () => {
    const node = await createBrokerNode({ users });
    const idle = await tcpConnect(node.port);
    const idleClosed = new Promise<void>((resolve) => idle.once('close', () => resolve()));
    idle.on('error', () => {});
    const started = performance.now();
    await node.close();
    await idleClosed;
    // aedes' own connect timeout is 30 s; close() must not sit it out.
    expect(performance.now() - started).toBeLessThan(2_000);
  });

  it('rejects when the port is taken, and leaves nothing running', async () => {
    const first = await createBrokerNode({ users });
    try {
      await expect(createBrokerNode({ port: first.port, users })).rejects.toMatchObject({ code: 'EADDRINUSE' });
    } finally {
      await first.close();
    }
  });

  it('refuses invalid users up front', async () => {
    const bad = [
      { username: 'sp', password: 'a', role: 'sp' as const },
      { username: 'sp', password: 'b', role: 'agent' as const },
    ];
    await expect(createBrokerNode({ users: bad })).rejects.toBeInstanceOf(ConfigError);
  });

  it('accepts nobody by default', async () => {
    const logger = createMemoryLogger();
    const node = await createBrokerNode({ logger });
    try {
      await expect(connect(`mqtt://127.0.0.1:${node.port}`, TEST_CREDENTIALS.sp)).rejects.toMatchObject({ code: 4 });
      expect(node.counters).toMatchObject({ connections: 0, authFailures: 1 });
      expect(logger.records).toContainEqual(
        expect.objectContaining({
          level: 'warn',
          event: 'broker.connect_refused',
          fields: expect.objectContaining({ broker: 'broker', username: 'sp', reason: 'unknown user' }),
        }),
      );
    } finally {
      await node.close();
    }
  });
});
