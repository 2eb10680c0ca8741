import http from 'node:http';
import os from 'node:os';
import type { ActionEntry } from '@faultline/autoscaler';
import { systemClock } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { ActionFeed } from './action-feed.js';
import type { CausalChain } from './causal-chain.js';
import { type ConsoleServer, MAX_LIVE_PAGES, startConsole } from './console-server.js';

const action = (id: number): ActionEntry => ({
  id,
  at: 1_000 + id,
  action: 'MemberTerminateAction',
  clusterId: 'php',
  memberId: `php-${id}`,
  reason: '<img src=x onerror=alert(1)>',
  epoch: 3,
  fault: { kind: 'timeout', lastStatAt: 900, declaredAt: 1_000 },
  replaces: null,
});

const chain: CausalChain = {
  memberId: 'php-1',
  clusterId: 'php',
  state: 'Terminated',
  createdAt: 1,
  steps: [],
  replacedBy: null,
  faulted: false,
};

/** A raw GET, so the Host header and the stream can be what the test says. */
function get(
  port: number,
  pathname: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string; response: http.IncomingMessage }> {
  return new Promise((resolve, reject) => {
    const request = http.get({ host: '127.0.0.1', port, path: pathname, headers }, (response) => {
      if (response.headers['content-type']?.startsWith('text/event-stream')) {
        resolve({ status: response.statusCode ?? 0, headers: response.headers, body: '', response });
        return;
      }
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        body += chunk;
      });
      response.on('end', () =>
        resolve({ status: response.statusCode ?? 0, headers: response.headers, body, response }),
      );
    });
    request.on('error', reject);
  });
}

/** Reads a stream until `done(text so far)` holds. */
function readUntil(response: http.IncomingMessage, done: (text: string) => boolean): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    response.setEncoding('utf8');
    response.on('data', (chunk: string) => {
      text += chunk;
      if (done(text)) resolve(text);
    });
  });
}

describe('the web console server', () => {
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    await Promise.all(closers.splice(0).map((close) => close()));
  });

  async function start(
    rows: ActionEntry[],
    bind = '127.0.0.1',
    explain?: (memberId: string) => Promise<CausalChain | undefined>,
  ) {
    const logger = createMemoryLogger();
    const feed = new ActionFeed({
      readAfter: async (afterId) => rows.filter((a) => a.id > afterId),
      readLatest: async (limit) => [...rows].reverse().slice(0, limit),
      clock: systemClock,
      logger,
      pollIntervalMs: 20,
    });
    const server: ConsoleServer = await startConsole({
      host: bind,
      port: 0,
      status: async () => ({ sp: [], degraded: [] }),
      explain: explain ?? (async (memberId) => (memberId === 'php-1' ? chain : undefined)),
      feed,
      clock: systemClock,
      logger,
    });
    closers.push(server.close);
    const port = Number(new URL(server.url).port);
    return { server, port, logger, host: `127.0.0.1:${port}` };
  }

  it('serves the page and its assets with a strict content security policy', async () => {
    const { port, host } = await start([]);
    const page = await get(port, '/', { host });
    expect(page.status).toBe(200);
    expect(page.body).toContain('<script type="module" src="/console.js">');
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    expect(page.headers['content-security-policy']).toContain("frame-ancestors 'none'");
    expect(page.headers['x-content-type-options']).toBe('nosniff');
    const script = await get(port, '/console.js', { host });
    expect(script.status).toBe(200);
    expect(script.headers['content-type']).toContain('javascript');
    // The page writes what it shows as text: no HTML is ever parsed from data.
    expect(script.body).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write/);
  });

  it('refuses a request naming another host (DNS rebinding), counted and logged', async () => {
    const { port, server, logger } = await start([]);
    const refused = await get(port, '/api/state', { host: `attacker.example:${port}` });
    expect(refused.status).toBe(421);
    expect(server.counts.hostsRefused).toBe(1);
    expect(logger.events()).toContain('console.host_refused');
    expect((await get(port, '/api/state', { host: `localhost:${port}` })).status).toBe(200);
  });

  it('checks the host also when bound to every address: its own names pass, another is refused', async () => {
    const { port, server } = await start([], '0.0.0.0');
    expect((await get(port, '/api/state', { host: `attacker.example:${port}` })).status).toBe(421);
    expect((await get(port, '/api/state', { host: `${os.hostname()}:${port}` })).status).toBe(200);
    expect((await get(port, '/api/state', { host: `127.0.0.1:${port}` })).status).toBe(200);
    expect(server.counts.hostsRefused).toBe(1);
  });

  it('reads at most a few causal chains at once; more are told to try again', async () => {
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let entered = 0;
    const { port, host, server } = await start([], '127.0.0.1', async () => {
      entered += 1;
      await held;
      return chain;
    });
    const slow = Array.from({ length: 4 }, () => get(port, '/api/members/php-1', { host }));
    // Until all four are being read: no fixed wait.
    while (entered < 4) await new Promise((resolve) => setImmediate(resolve));
    expect((await get(port, '/api/members/php-1', { host })).status).toBe(503);
    expect(server.counts.explainsRefused).toBe(1);
    release();
    expect((await Promise.all(slow)).map((r) => r.status)).toEqual([200, 200, 200, 200]);
  });

  it("answers the state and a member's chain; a bad id is a 400, an unknown one a 404", async () => {
    const { port, host } = await start([]);
    const state = await get(port, '/api/state', { host });
    expect(JSON.parse(state.body)).toMatchObject({ status: { sp: [], degraded: [] } });
    expect(state.headers['cache-control']).toBe('no-store');
    expect(JSON.parse((await get(port, '/api/members/php-1', { host })).body)).toEqual(chain);
    expect((await get(port, '/api/members/php-2', { host })).status).toBe(404);
    expect((await get(port, '/api/members/a%20b', { host })).status).toBe(400);
  });

  it('streams the actions as server-sent events, and a page that reconnects gets only what it missed', async () => {
    const rows = [action(1), action(2)];
    const { port, host } = await start(rows);
    const first = await get(port, '/api/events', { host });
    expect(first.status).toBe(200);
    rows.push(action(3));
    const text = await readUntil(first.response, (t) => t.includes('"id":3,'));
    expect(text).toContain('retry: 2000');
    const events = text.split('\n\n').filter((e) => e.includes('event: action'));
    expect(events.map((e) => JSON.parse(e.split('data: ')[1] ?? '').id)).toEqual([1, 2, 3]);
    first.response.destroy();
    // Event ids are the console's deliveries (`<life>.<n>`), not row ids.
    const secondId = /id: (\S+)\n/g.exec(events[1] ?? '')?.[1] as string;
    expect(secondId).toMatch(/^[0-9a-f]{8}\.2$/);

    const again = await get(port, '/api/events', { host, 'last-event-id': secondId });
    const resumed = await readUntil(again.response, (t) => t.includes('"id":3,'));
    expect(resumed).not.toContain('"id":1,');
    expect(resumed).not.toContain('"id":2,');
    again.response.destroy();
  });

  it(`refuses a live page over ${MAX_LIVE_PAGES} until one closes`, async () => {
    const { port, host, server } = await start([]);
    const pages = await Promise.all(Array.from({ length: MAX_LIVE_PAGES }, () => get(port, '/api/events', { host })));
    expect(pages.every((p) => p.status === 200)).toBe(true);
    expect((await get(port, '/api/events', { host })).status).toBe(503);
    expect(server.counts.pagesRefused).toBe(1);
    const closed = new Promise((resolve) => pages[0]?.response.once('close', resolve));
    pages[0]?.response.destroy();
    await closed;
    for (let i = 0; i < 50 && server.counts.livePages >= MAX_LIVE_PAGES; i += 1)
      await new Promise((r) => setTimeout(r, 10));
    expect((await get(port, '/api/events', { host })).status).toBe(200);
    for (const p of pages) p.response.destroy();
  });
});
