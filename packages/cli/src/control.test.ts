import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createMemoryLogger } from '@faultline/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { callControl, readControlFile, startControl } from './control.js';
import { ChaosTargetError } from './errors.js';

describe('the control endpoint', () => {
  const dirs: string[] = [];
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    await Promise.all(closers.splice(0).map((close) => close()));
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  const runDir = () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faultline-control-'));
    dirs.push(dir);
    return path.join(dir, 'run');
  };

  it('runs an action with its JSON body and returns the result', async () => {
    const dir = runDir();
    const logger = createMemoryLogger();
    const control = await startControl({ runDir: dir, handlers: { echo: async (args) => args }, logger });
    closers.push(control.close);
    expect(statSync(path.join(dir, 'control.json')).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(readControlFile(dir)).toMatchObject({ port: control.port, pid: process.pid });
    expect(await callControl(dir, 'echo', { a: 1 })).toEqual({ a: 1 });
  });

  it("hands a failed action's message and code back to the caller", async () => {
    const dir = runDir();
    const control = await startControl({
      runDir: dir,
      handlers: {
        coded: async () => {
          throw new ChaosTargetError('no running member m-1; running: none');
        },
        plain: async () => {
          throw new Error('something broke');
        },
      },
      logger: createMemoryLogger(),
    });
    closers.push(control.close);
    await expect(callControl(dir, 'coded')).rejects.toMatchObject({
      code: 'FL_ERR_CHAOS_NO_TARGET',
      message: 'no running member m-1; running: none',
    });
    await expect(callControl(dir, 'plain')).rejects.toMatchObject({
      code: 'FL_ERR_CONTROL_FAILED',
      message: 'something broke',
    });
    await expect(callControl(dir, 'nope')).rejects.toMatchObject({
      code: 'FL_ERR_CONTROL_FAILED',
      message: 'unknown action nope',
    });
  });

  it('runs only its own actions: a name of Object.prototype is a 404, counted, and the server still answers', async () => {
    const dir = runDir();
    const logger = createMemoryLogger();
    const control = await startControl({ runDir: dir, handlers: { echo: async (args) => args }, logger });
    closers.push(control.close);
    const { token } = readControlFile(dir) ?? { token: '' };
    const post = (action: string) =>
      fetch(`http://127.0.0.1:${control.port}/${action}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
        body: '{}',
      });
    const names = ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__'];
    for (const name of names) {
      const response = await post(name);
      expect(response.status).toBe(404);
      expect(await response.json()).toEqual({ error: `unknown action ${name}` });
    }
    expect(control.counters.unknownAction).toBe(names.length);
    expect(logger.events()).toContain('control.request_refused');
    expect(await callControl(dir, 'echo', { still: 'up' })).toEqual({ still: 'up' });
  });

  it('refuses a body that is not a JSON object, or too large, without running the action', async () => {
    const dir = runDir();
    let runs = 0;
    const control = await startControl({
      runDir: dir,
      handlers: {
        echo: async (args) => {
          runs += 1;
          return args;
        },
      },
      logger: createMemoryLogger(),
    });
    closers.push(control.close);
    const { token } = readControlFile(dir) ?? { token: '' };
    const post = (body: string) =>
      fetch(`http://127.0.0.1:${control.port}/echo`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
        body,
      });
    for (const body of ['[1]', 'null', '"x"', '42', '{']) expect((await post(body)).status).toBe(400);
    expect((await post(`{"x":"${'a'.repeat(1024 * 1024)}"}`)).status).toBe(413);
    expect(runs).toBe(0);
    expect(control.counters.badRequest).toBe(6);
    expect(await callControl(dir, 'echo', { a: 1 })).toEqual({ a: 1 });
  });

  it('refuses a request without the token, and logs it', async () => {
    const dir = runDir();
    const logger = createMemoryLogger();
    const control = await startControl({ runDir: dir, handlers: { echo: async (args) => args }, logger });
    closers.push(control.close);
    const response = await fetch(`http://127.0.0.1:${control.port}/echo`, { method: 'POST', body: '{}' });
    expect(response.status).toBe(401);
    expect(logger.events()).toEqual(['control.request_refused']);
    expect(control.counters.badToken).toBe(1);
  });

  it('says in one line that no stack is running, and removes its file on close', async () => {
    const dir = runDir();
    await expect(callControl(dir, 'status')).rejects.toMatchObject({
      code: 'FL_ERR_STACK_NOT_RUNNING',
      message: `no stack is running (no ${path.join(dir, 'control.json')}); start one with: npm run stack`,
    });
    const control = await startControl({ runDir: dir, handlers: {}, logger: createMemoryLogger() });
    await control.close();
    expect(readControlFile(dir)).toBeUndefined();
  });
});
