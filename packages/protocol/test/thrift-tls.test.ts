import type net from 'node:net';
import { makeTestCertificates } from '@faultline/test-support';
import { afterEach, describe, expect, it } from 'vitest';
import { connectHealthStat, createHealthStatServer, fromAckWire, toBatchWire } from '../src/index.js';

/*
 * README "TLS": with certificate files configured, the Thrift port speaks TLS
 * with the server's certificate and the client verifies it against the CA.
 */
const certs = makeTestCertificates('thrift');
const otherCa = makeTestCertificates('stranger');

async function startTlsServer() {
  const errors: Error[] = [];
  const server = createHealthStatServer(
    {
      publish: async (batch) => {
        if (!batch.ok) throw new Error(batch.error.message);
        return {
          agentId: batch.value.agentId,
          sequence: batch.value.sequence,
          duplicate: false,
          epoch: 1,
          replicated: true,
        };
      },
    },
    { onConnectionError: (e) => errors.push(e), tls: { cert: certs.cert, key: certs.key } },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as net.AddressInfo).port, errors };
}

describe('HealthStatService over TLS', () => {
  const cleanup: (() => void)[] = [];
  afterEach(() => {
    for (const fn of cleanup.splice(0)) fn();
  });

  it('answers a client that verifies the server against the CA', async () => {
    const { server, port } = await startTlsServer();
    cleanup.push(() => server.close());
    const connection = connectHealthStat('127.0.0.1', port, { tls: { ca: certs.ca } });
    cleanup.push(() => connection.close());
    await connection.ready;
    const ack = await connection.client.publish(toBatchWire({ agentId: 'a-1', sequence: 7, stats: [] }));
    expect(fromAckWire(ack)).toMatchObject({ agentId: 'a-1', sequence: 7, duplicate: false });
  });

  it('a client that trusts another CA refuses the server', async () => {
    const { server, port } = await startTlsServer();
    cleanup.push(() => server.close());
    const connection = connectHealthStat('127.0.0.1', port, { tls: { ca: otherCa.ca } });
    cleanup.push(() => connection.close());
    await expect(connection.ready).rejects.toThrow(/certificate/i);
  });

  it('a plain TCP client gets no answer from the TLS port', async () => {
    const { server, port } = await startTlsServer();
    cleanup.push(() => server.close());
    const connection = connectHealthStat('127.0.0.1', port);
    cleanup.push(() => connection.close());
    await connection.ready.catch(() => {});
    await expect(connection.client.publish(toBatchWire({ agentId: 'a-1', sequence: 1, stats: [] }))).rejects.toThrow();
  });
});
