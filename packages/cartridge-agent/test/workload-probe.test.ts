import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createWorkload } from '@faultline/cloud-controller';
import { systemClock } from '@faultline/core';
import { freePort } from '@faultline/test-support';
import { afterEach, describe, expect, it } from 'vitest';
import { httpWorkloadProbe } from '../src/index.js';

/* The agent's stats read (GET /stats) against real HTTP servers on loopback: the member workload and misbehaving ones. */
describe('workload probe', () => {
  const cleanups: (() => Promise<unknown> | unknown)[] = [];
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn();
  });

  const probeOn = (port: number, timeoutMs = 2_000) =>
    httpWorkloadProbe({ host: '127.0.0.1', port, timeoutMs, clock: systemClock });

  async function server(handler: http.RequestListener): Promise<number> {
    const s = http.createServer(handler);
    await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => {
      s.closeAllConnections();
      return new Promise((resolve) => s.close(resolve));
    });
    return (s.address() as AddressInfo).port;
  }

  it('reads requests in flight from the member workload', async () => {
    const workload = createWorkload({ latencyMs: 300 });
    const port = await workload.listen(0, '127.0.0.1');
    cleanups.push(() => workload.close());
    const slow = http.get({ host: '127.0.0.1', port, path: '/', agent: false });
    slow.on('error', () => {});
    cleanups.push(() => slow.destroy());
    const probe = probeOn(port);
    for (let i = 0; i < 100 && workload.requestsInFlight === 0; i++) await new Promise((r) => setTimeout(r, 5));
    expect(await probe.stats()).toEqual({ type: 'ok', requestsInFlight: 1 });
  });

  it('finds no answer on a closed port', async () => {
    const probe = probeOn(await freePort());
    expect(await probe.stats()).toMatchObject({ type: 'no-answer', reason: expect.stringMatching(/ECONNREFUSED/) });
  });

  it('finds no answer from a hung workload once its deadline passes, not before', async () => {
    const port = await server(() => {}); // accepts, never answers (a SIGSTOPped process looks the same)
    const started = Date.now();
    const result = await probeOn(port, 300).stats();
    expect(result).toMatchObject({ type: 'no-answer', reason: expect.stringMatching(/no answer within 300 ms/) });
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
  });

  it('calls an answer that is not stats invalid: the port is open, the figure unknown', async () => {
    const port = await server((req, res) => {
      if (req.url === '/stats') res.writeHead(500).end('boom');
      else res.writeHead(503).end();
    });
    expect(await probeOn(port).stats()).toEqual({ type: 'invalid', reason: 'HTTP 500' });
    const huge = await server((_req, res) => res.writeHead(200).end('x'.repeat(100_000)));
    expect(await probeOn(huge).stats()).toMatchObject({ type: 'invalid' });
  });
});
