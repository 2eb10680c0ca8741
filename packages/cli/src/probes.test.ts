import http from 'node:http';
import type net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { autoscalerHealth, spStatus, urlHost } from './probes.js';

describe('where the CLI reaches a node', () => {
  it('reaches a wildcard bind on loopback, a named host as it is, an IPv6 literal in brackets', () => {
    expect(urlHost(undefined)).toBe('127.0.0.1');
    expect(urlHost('0.0.0.0')).toBe('127.0.0.1');
    expect(urlHost('::')).toBe('127.0.0.1');
    expect(urlHost('10.0.0.7')).toBe('10.0.0.7');
    expect(urlHost('sp-1.internal')).toBe('sp-1.internal');
    expect(urlHost('::1')).toBe('[::1]');
  });

  const servers: http.Server[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
  });

  it('asks the node on its configured host, not on 127.0.0.1 whatever it says', async () => {
    // Bound to ::1 only: a probe of 127.0.0.1 finds nothing there.
    const server = http.createServer((request, response) => {
      const body =
        request.url === '/status' ? { nodeId: 'sp-1', role: 'ACTIVE' } : { node: 'autoscaler-a', role: 'ACTIVE' };
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    });
    servers.push(server);
    const bound = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(0, '::1', () => resolve(true));
    });
    if (!bound) return; // no IPv6 loopback on this machine: nothing to tell apart
    const port = (server.address() as net.AddressInfo).port;
    expect(await spStatus({ statusPort: port })).toBeUndefined();
    expect((await spStatus({ statusPort: port, statusHost: '::1' }))?.nodeId).toBe('sp-1');
    expect((await autoscalerHealth({ id: 'autoscaler-a', healthPort: port, healthHost: '::1' }))?.node).toBe(
      'autoscaler-a',
    );
    expect(await autoscalerHealth({ id: 'autoscaler-b', healthPort: port, healthHost: '::1' })).toBeUndefined();
  });
});
