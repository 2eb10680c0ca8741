import http from 'node:http';
import { type Clock, systemClock, type TimerHandle } from '@faultline/core';
import { afterEach, describe, expect, it } from 'vitest';
import { createWorkload, type Workload } from './workload.js';

/** A clock whose timeouts fire only when the test says: requests stay in flight as long as needed. */
function heldClock() {
  const held = new Map<TimerHandle, () => void>();
  const clock: Clock = {
    ...systemClock,
    setTimeout: (fn) => {
      const handle = globalThis.setTimeout(() => {}, 0);
      held.set(handle, fn);
      return handle;
    },
    clearTimeout: (handle) => {
      if (handle !== undefined) held.delete(handle);
    },
  };
  const release = () => {
    const fns = [...held.values()];
    held.clear();
    for (const fn of fns) fn();
  };
  return { clock, release, held };
}

function request(port: number, path: string, method = 'GET') {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, agent: false }, (res) => {
      let body = '';
      res.on('data', (chunk) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function until(predicate: () => boolean) {
  for (let i = 0; i < 200 && !predicate(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
  expect(predicate()).toBe(true);
}

describe('workload', () => {
  const open: Workload[] = [];
  afterEach(async () => {
    for (const workload of open.splice(0)) await workload.close();
  });

  it('counts the requests it is serving and answers each after its latency', async () => {
    const { clock, release, held } = heldClock();
    const workload = createWorkload({ latencyMs: 250, clock });
    open.push(workload);
    const port = await workload.listen(0, '127.0.0.1');
    const pending = [request(port, '/'), request(port, '/'), request(port, '/')];
    await until(() => held.size === 3);
    expect(JSON.parse((await request(port, '/stats')).body)).toEqual({ requestsInFlight: 3, served: 0 });
    expect(JSON.parse((await request(port, '/healthz')).body)).toMatchObject({ status: 'ok', requestsInFlight: 3 });
    release();
    expect((await Promise.all(pending)).map((r) => r.status)).toEqual([200, 200, 200]);
    expect(JSON.parse((await request(port, '/stats')).body)).toEqual({ requestsInFlight: 0, served: 3 });
  });

  it('no longer counts a request whose client went away', async () => {
    const { clock, held } = heldClock();
    const workload = createWorkload({ latencyMs: 250, clock });
    open.push(workload);
    const port = await workload.listen(0, '127.0.0.1');
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent: false });
    req.on('error', () => {});
    await until(() => workload.requestsInFlight === 1);
    req.destroy();
    await until(() => workload.requestsInFlight === 0);
    expect(workload.counters).toMatchObject({ aborted: 1, served: 0 });
    expect(held.size).toBe(0);
  });

  it('refuses other paths and methods, and counts them', async () => {
    const workload = createWorkload({ latencyMs: 0 });
    open.push(workload);
    const port = await workload.listen(0, '127.0.0.1');
    expect((await request(port, '/nope')).status).toBe(404);
    expect((await request(port, '/', 'POST')).status).toBe(405);
    expect((await request(port, '/')).status).toBe(200);
    expect(workload.counters).toEqual({ served: 1, aborted: 0, rejected: 2, refusedDraining: 0 });
  });

  it('drains: refuses new requests (503, Connection: close), finishes those in flight, then says idle on /drain', async () => {
    const { clock, release, held } = heldClock();
    const workload = createWorkload({ latencyMs: 1_000, clock });
    open.push(workload);
    const port = await workload.listen(0, '127.0.0.1');
    expect((await request(port, '/drain')).status).toBe(503); // not draining: not "drained"
    // Two requests in flight, and an idle keep-alive connection a client holds open.
    const pending = [request(port, '/'), request(port, '/')];
    const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const idle = await new Promise<http.IncomingMessage>((resolve) =>
      http.get({ host: '127.0.0.1', port, path: '/stats', agent: keepAlive }, (res) => {
        res.resume();
        res.on('end', () => resolve(res));
      }),
    );
    expect(idle.headers.connection).toBe('keep-alive');
    const idleSocketClosed = new Promise<void>((resolve) => {
      const sockets = Object.values(keepAlive.freeSockets).flat();
      sockets[0]?.once('close', () => resolve());
    });
    await until(() => held.size === 2);

    workload.drain();
    workload.drain(); // idempotent
    expect(workload.draining).toBe(true);
    await idleSocketClosed;
    const refused = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res));
      });
      req.on('error', reject);
    });
    expect(refused.statusCode).toBe(503);
    expect(refused.headers.connection).toBe('close');
    expect(held.size).toBe(2); // no new work started for it
    const busy = await request(port, '/drain');
    expect(busy.status).toBe(503);
    expect(JSON.parse(busy.body)).toEqual({ draining: true, requestsInFlight: 2 });
    // Liveness is not readiness: the instance still answers its health check.
    expect((await request(port, '/healthz')).status).toBe(200);

    release();
    expect((await Promise.all(pending)).map((r) => r.status)).toEqual([200, 200]);
    expect((await request(port, '/drain')).status).toBe(200);
    expect(workload.counters).toMatchObject({ served: 2, aborted: 0, refusedDraining: 1 });
    keepAlive.destroy();
  });

  it('closes idempotently, dropping requests in flight', async () => {
    const { clock } = heldClock();
    const workload = createWorkload({ latencyMs: 1_000, clock });
    const port = await workload.listen(0, '127.0.0.1');
    const pending = request(port, '/').catch((error: Error) => error);
    await until(() => workload.requestsInFlight === 1);
    await Promise.all([workload.close(), workload.close()]);
    expect(await pending).toBeInstanceOf(Error);
    await expect(request(port, '/stats')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});
