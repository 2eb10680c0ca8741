import { createMemoryLogger } from '@faultline/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import type { SpNode, SpStatus } from './node.js';
import { MAX_WHOLE_ENGINE_MEMBERS, startStatusServer } from './status-server.js';

const TOKEN = 'a-status-token-of-at-least-32-characters';

/** A node whose engineState() counts its calls: the serialization /engine must not start before its checks. */
function fakeNode(members = 2) {
  const calls = { engineState: 0 };
  const node = {
    status: () => ({ role: 'ACTIVE', epoch: 3, counters: { batchesAccepted: 1 } }) as unknown as SpStatus,
    engineState: () => {
      calls.engineState += 1;
      return { total: 7 };
    },
    engineMemberState: (memberId: string) => ({ members: [{ memberId }] }),
    engineMembers: () => members,
  } as unknown as SpNode;
  return { node, calls };
}

describe('the status server', () => {
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    await Promise.all(closers.splice(0).map((close) => close()));
  });
  const start = async (members?: number) => {
    const { node, calls } = fakeNode(members);
    const logger = createMemoryLogger();
    const server = await startStatusServer(node, {
      host: '127.0.0.1',
      port: 0,
      engineToken: Buffer.from(TOKEN),
      logger,
    });
    closers.push(server.close);
    const url = `http://127.0.0.1:${server.port}`;
    return { server, calls, logger, url };
  };

  it('serves /engine only to GET with the token; reads the state only then', async () => {
    const { server, calls, logger, url } = await start();
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
      const response = await fetch(`${url}/engine`, { method, headers: { authorization: `Bearer ${TOKEN}` } });
      expect(response.status).toBe(405);
    }
    for (const authorization of [undefined, `Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(1)}`, TOKEN]) {
      const response = await fetch(`${url}/engine`, { headers: authorization ? { authorization } : {} });
      expect(response.status).toBe(401);
    }
    expect(calls.engineState).toBe(0);
    const ok = await fetch(`${url}/engine`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ total: 7 });
    expect(calls.engineState).toBe(1);
    expect(server.counters).toEqual({
      engineServed: 1,
      statusRefusedMethod: 4,
      statusRefusedToken: 4,
      statusRefusedRemote: 0,
    });
    // One record per reason within 10 s; the rest are counted in the next one.
    expect(logger.records.map((r) => [r.event, r.fields.reason])).toEqual([
      ['sp.status_request_refused', 'method_not_allowed'],
      ['sp.status_request_refused', 'bad_token'],
    ]);
  });

  it(`makes the whole state only up to ${MAX_WHOLE_ENGINE_MEMBERS} members; one member's part at any size`, async () => {
    const { calls, url } = await start(MAX_WHOLE_ENGINE_MEMBERS + 1);
    const headers = { authorization: `Bearer ${TOKEN}` };
    const whole = await fetch(`${url}/engine`, { headers });
    expect(whole.status).toBe(413);
    expect(((await whole.json()) as { error: string }).error).toContain('?member=');
    expect(calls.engineState).toBe(0);
    const one = await fetch(`${url}/engine?member=php-m-1`, { headers });
    expect(one.status).toBe(200);
    expect(await one.json()).toEqual({ members: [{ memberId: 'php-m-1' }] });
    expect((await fetch(`${url}/engine?member=${'x'.repeat(300)}`, { headers })).status).toBe(400);
    expect((await fetch(`${url}/engine?member=php-m-1`)).status).toBe(401);
  });

  it('serves /status to GET without a token, with its own counters merged in', async () => {
    const { url } = await start();
    const response = await fetch(`${url}/status`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      role: 'ACTIVE',
      epoch: 3,
      counters: {
        batchesAccepted: 1,
        engineServed: 0,
        statusRefusedMethod: 0,
        statusRefusedToken: 0,
        statusRefusedRemote: 0,
      },
    });
    expect((await fetch(`${url}/status`, { method: 'POST' })).status).toBe(405);
    for (const path of ['/constructor', '/__proto__', '/', '/engine/x']) {
      expect((await fetch(`${url}${path}`)).status).toBe(404);
    }
  });
});
