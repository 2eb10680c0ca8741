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
    // Bound to 127.0.0.2 only (Linux answers the whole 127/8 on loopback): 127.0.0.1 finds nothing there.
    const server = http.createServer((request, response) => {
      const body =
        request.url === '/status' ? { nodeId: 'sp-1', role: 'ACTIVE' } : { node: 'autoscaler-a', role: 'ACTIVE' };
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    });
    servers.push(server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.2', () => resolve());
    });
    const port = (server.address() as net.AddressInfo).port;
    expect(await spStatus({ statusPort: port })).toBeUndefined();
    expect((await spStatus({ statusPort: port, statusHost: '127.0.0.2' }))?.nodeId).toBe('sp-1');
    const asked = { healthPort: port, healthHost: '127.0.0.2' };
    expect((await autoscalerHealth({ id: 'autoscaler-a', ...asked }))?.node).toBe('autoscaler-a');
    expect(await autoscalerHealth({ id: 'autoscaler-b', ...asked })).toBeUndefined();
  });
});
