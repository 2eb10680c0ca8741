import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chaosHandler, readControlFile, type Supervisor, startControl } from '@faultline/cli';
import { REPO_ROOT, systemClock } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import {
  type SpStatusJson,
  startPostgres,
  startSpPair,
  type TestPostgres,
  type TestSpNode,
  testSecret,
  waitFor,
} from '@faultline/test-support';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/*
 * Issue 12, item 8 ("Smaller:"): the supervisor's control endpoint and the SP
 * nodes' status servers, attacked by a local process as a hostile peer would:
 * each attack is refused with a status code, counted, logged at most once per
 * 10 s per reason, and the server keeps answering (the SP node stays ACTIVE).
 */

/** The control characters (C0, DEL, C1) left in `text`. */
const controlsIn = (text: string): string[] =>
  [...text].filter((ch) => {
    const code = ch.charCodeAt(0);
    return code < 0x20 || (code >= 0x7f && code <= 0x9f);
  });

const CLI_MAIN = path.join(REPO_ROOT, 'packages/cli/dist/main.js');

describe('the SP status server, attacked', () => {
  let db: TestPostgres;
  let pair: [TestSpNode, TestSpNode];
  let active: TestSpNode;
  let epoch: number;

  beforeAll(async () => {
    db = await startPostgres();
    pair = await startSpPair({ databaseUrl: db.connectionString });
    const found = await waitFor(async () => {
      for (const node of pair) {
        const status = await node.status();
        if (status?.role === 'ACTIVE') return { node, epoch: status.epoch as number };
      }
      return undefined;
    }, 'an active node');
    active = found.node;
    epoch = found.epoch;
  });
  afterAll(async () => {
    await Promise.all((pair ?? []).map((node) => node.stop()));
    await db?.stop();
  });

  const url = () => `http://127.0.0.1:${active.statusPort}`;
  const token = () => testSecret(active.security.statusTokenFile).toString('utf8');
  const status = async (): Promise<SpStatusJson> => {
    const body = await active.status();
    if (!body) throw new Error('the status call did not answer');
    return body;
  };
  const refusals = (reason: string) =>
    active.logs().filter((r) => r.event === 'sp.status_request_refused' && r.reason === reason);

  it('answers /engine to any method but GET with 405, without serializing the state', async () => {
    const before = (await status()).counters;
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
      for (const authorization of [undefined, `Bearer ${token()}`]) {
        const response = await fetch(`${url()}/engine`, {
          method,
          headers: authorization ? { authorization } : {},
          body: method === 'DELETE' ? undefined : '{}',
        });
        expect(response.status).toBe(405);
        expect(response.headers.get('allow')).toBe('GET');
        expect(await response.json()).toEqual({ error: 'method not allowed' });
      }
    }
    const after = await status();
    expect(after.counters.statusRefusedMethod).toBe((before.statusRefusedMethod ?? 0) + 8);
    // Nothing was serialized: the only place that reads the engine's state counts it first.
    expect(after.counters.engineServed).toBe(before.engineServed);
    expect(after).toMatchObject({ role: 'ACTIVE', epoch });
    // Eight refusals in a few ms: one record, the others suppressed (the next record carries their count).
    await waitFor(() => refusals('method_not_allowed').length > 0, 'the refusal record');
    expect(refusals('method_not_allowed')).toHaveLength(1);
  });

  it('answers GET /engine without the status token, or with a wrong one, with 401', async () => {
    const before = (await status()).counters;
    const wrong = [undefined, 'Bearer', `Bearer ${'x'.repeat(token().length)}`, token(), `Basic ${token()}`];
    for (const authorization of wrong) {
      const response = await fetch(`${url()}/engine`, { headers: authorization ? { authorization } : {} });
      expect(response.status).toBe(401);
      expect(await response.json()).toEqual({ error: 'unauthorized' });
    }
    const after = await status();
    expect(after.counters.statusRefusedToken).toBe((before.statusRefusedToken ?? 0) + wrong.length);
    expect(after.counters.engineServed).toBe(before.engineServed);
    expect(after).toMatchObject({ role: 'ACTIVE', epoch });
    await waitFor(() => refusals('bad_token').length > 0, 'the refusal record');
    expect(refusals('bad_token')).toHaveLength(1);
  });

  it('serves /engine to GET with the status token (as test-support does), and /status to anyone on loopback', async () => {
    const before = (await status()).counters;
    expect(await active.engine()).toMatchObject({ total: expect.any(Number) });
    const open = await fetch(`${url()}/status`);
    expect(open.status).toBe(200);
    expect((await status()).counters.engineServed).toBe((before.engineServed ?? 0) + 1);
    expect((await fetch(`${url()}/constructor`)).status).toBe(404);
    expect((await fetch(`${url()}/status`, { method: 'POST', body: '{}' })).status).toBe(405);
    expect(await status()).toMatchObject({ role: 'ACTIVE', epoch });
  });
});

describe("the supervisor's control endpoint, attacked", () => {
  let root: string;
  let runDir: string;
  let control: Awaited<ReturnType<typeof startControl>>;
  const logger = createMemoryLogger();
  const signals: [string, string][] = [];

  beforeAll(async () => {
    root = mkdtempSync(path.join(os.tmpdir(), 'faultline-control-attack-'));
    // Where the CLI looks for it, run from `root`.
    runDir = path.join(root, '.faultline', 'run');
    const supervisor = {
      signal: (name: string, signal: string) => {
        signals.push([name, signal]);
        return true;
      },
    } as unknown as Supervisor;
    const pool = { query: async () => ({ rows: [] }) } as unknown as pg.Pool;
    control = await startControl({
      runDir,
      handlers: {
        status: async () => ({ ok: true }),
        chaos: chaosHandler({ pool, supervisor, spNodes: [], clock: systemClock }, logger),
      },
      logger,
    });
  });
  afterAll(async () => {
    await control?.close();
    rmSync(root, { recursive: true, force: true });
  });

  const post = (action: string, body: unknown = {}) =>
    fetch(`http://127.0.0.1:${control.port}/${action}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${readControlFile(runDir)?.token}` },
      body: JSON.stringify(body),
    });
  const stillAnswers = async () => {
    const response = await post('status');
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ result: { ok: true } });
  };

  it.each(['constructor', '__proto__', 'toString', 'hasOwnProperty', '__lookupGetter__'])(
    'POST /%s with the token: 404, counted, logged, the supervisor still answers',
    async (action) => {
      const before = control.counters.unknownAction;
      const response = await post(action);
      expect(response.status).toBe(404);
      expect(control.counters.unknownAction).toBe(before + 1);
      expect(logger.records.filter((r) => r.event === 'control.request_refused').length).toBeGreaterThan(0);
      await stillAnswers();
    },
  );

  it('refuses pause-sp with --seconds outside 1–60 (the endpoint does not trust the CLI), signalling nothing', async () => {
    const before = control.counters.badRequest;
    for (const seconds of ['1e9', '0', '61', '-5', 'Infinity', '2.5', 'x']) {
      const response = await post('chaos', { action: 'pause-sp', target: 'active', seconds });
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ code: 'FL_ERR_USAGE' });
    }
    expect(control.counters.badRequest).toBe(before + 7);
    expect(signals).toEqual([]);
    await stillAnswers();
  });

  it('refuses a chaos target that is not an id, signalling nothing', async () => {
    for (const target of ['\u001b]0;pwned\u0007', 'x\u001b[2J', '../../etc']) {
      const response = await post('chaos', { action: 'kill-member', target });
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ code: 'FL_ERR_USAGE' });
    }
    expect(signals).toEqual([]);
    await stillAnswers();
  });

  const cli = (args: string[]) =>
    new Promise<{ code: number | null; stderr: string }>((resolve) => {
      execFile(process.execPath, [CLI_MAIN, ...args], { cwd: root }, (error, _stdout, stderr) =>
        resolve({ code: error ? (error.code as number | null) : 0, stderr }),
      );
    });

  it('the chaos CLI refuses a non-id target and unbounded --seconds with exit 2, before contacting the supervisor', async () => {
    const before = control.counters.requests;
    for (const args of [
      ['chaos', 'kill-member', '\u001b]0;pwned\u0007'],
      ['chaos', 'kill-agent', 'php-1\u001b[2J'],
      ['chaos', 'pause-sp', 'active', '--seconds', '1000000'],
      ['chaos', 'pause-sp', 'active', '--seconds', '0'],
      ['chaos', 'pause-sp', 'active', '--seconds'],
    ]) {
      const { code, stderr } = await cli(args);
      expect(code, args.join(' ')).toBe(2);
      expect(stderr).toMatch(/^faultline: /);
      expect(controlsIn(stderr.trimEnd())).toEqual([]);
    }
    expect(control.counters.requests).toBe(before);
    // The same CLI, with good arguments, does reach it.
    const { code } = await cli(['chaos', 'kill-member', 'php-1']);
    expect(code).toBe(1); // no such running member: the supervisor's answer
    expect(control.counters.requests).toBe(before + 1);
  });
});
