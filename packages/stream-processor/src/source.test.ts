import net from 'node:net';
import tls from 'node:tls';
import { type Clock, systemClock } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import type { HealthStatHandler } from '@faultline/protocol';
import { makeTestCertificates, waitFor } from '@faultline/test-support';
import { afterEach, describe, expect, it } from 'vitest';
import { ThriftSource } from './source.js';

/** Real timers (the idle sweep), a monotonic time the test moves: the log's 10 s window. */
function steppedClock(): { clock: Clock; advance: (ms: number) => void } {
  let offset = 0;
  const clock: Clock = { ...systemClock, monotonicNow: () => systemClock.monotonicNow() + offset };
  return { clock, advance: (ms) => (offset += ms) };
}

const handler: HealthStatHandler = {
  publish: async () => {
    throw new Error('no batch is expected here');
  },
};

/** A frame size below zero: the server ends that connection at once (a dropped connection). */
const BAD_FRAME = Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);

/** Opens a connection from `localAddress`, sends a bad frame, resolves once the server has closed it. */
function dropOnce(port: number, localAddress: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port, localAddress }, () => socket.write(BAD_FRAME));
    socket.on('error', () => {}); // a reset is as good as a close here
    socket.on('close', () => resolve());
    socket.setTimeout(5_000, () => reject(new Error('the server kept the connection')));
  });
}

function dropOnceOverTls(port: number, ca: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => socket.write(BAD_FRAME));
    socket.on('error', () => {});
    socket.on('close', () => resolve());
    socket.setTimeout(5_000, () => reject(new Error('the server kept the connection')));
  });
}

describe('the Thrift source', () => {
  const sources: ThriftSource[] = [];
  afterEach(async () => {
    await Promise.all(sources.splice(0).map((s) => s.close()));
  });

  const start = async (options: { tls?: { cert: Buffer; key: Buffer } } = {}) => {
    const logger = createMemoryLogger();
    const { clock, advance } = steppedClock();
    const source = new ThriftSource({
      host: '127.0.0.1',
      port: 0,
      maxFrameBytes: 1_024,
      maxConnections: 1_000,
      maxConnectionsPerPeer: 1_000,
      idleTimeoutMs: 60_000,
      ...options,
      handler,
      clock,
      logger,
    });
    sources.push(source);
    const port = await source.open();
    const dropped = () => logger.records.filter((r) => r.event === 'sp.thrift_connection_dropped');
    return { source, port, logger, advance, dropped };
  };

  it('logs dropped connections at most once per 10 s per peer, and counts every one', async () => {
    const { source, port, advance, dropped } = await start();
    for (let i = 0; i < 100; i++) await dropOnce(port, '127.0.0.1');
    await waitFor(() => source.counters.badFrames === 100 || undefined, '100 bad frames counted');
    expect(dropped()).toHaveLength(1);
    expect(dropped()[0]?.level).toBe('warn');
    expect(dropped()[0]?.fields).toMatchObject({ peer: '127.0.0.1', suppressed: 0 });

    // Another peer has its own line at once.
    await dropOnce(port, '127.0.0.2');
    await waitFor(() => source.counters.badFrames === 101 || undefined, 'the other peer counted');
    expect(dropped().map((r) => r.fields.peer)).toEqual(['127.0.0.1', '127.0.0.2']);

    // 10 s later the first peer's next drop is logged with the count left out meanwhile.
    advance(10_000);
    await dropOnce(port, '127.0.0.1');
    await waitFor(() => source.counters.badFrames === 102 || undefined, 'one more bad frame');
    expect(dropped()).toHaveLength(3);
    expect(dropped().at(-1)?.fields).toMatchObject({ peer: '127.0.0.1', suppressed: 99 });
  });

  it('over TLS too: the decrypted connection is the peer', async () => {
    const certs = makeTestCertificates('sp-source');
    const { source, port, dropped } = await start({ tls: { cert: certs.cert, key: certs.key } });
    for (let i = 0; i < 20; i++) await dropOnceOverTls(port, certs.ca);
    await waitFor(() => source.counters.badFrames === 20 || undefined, '20 bad frames counted');
    expect(source.counters.tlsHandshakeFailures).toBe(0);
    expect(dropped()).toHaveLength(1);
    expect(dropped()[0]?.fields).toMatchObject({ peer: '127.0.0.1', suppressed: 0 });
  });
});
