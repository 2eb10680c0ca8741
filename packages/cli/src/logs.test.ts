import { appendFileSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { systemClock } from '@faultline/core';
import { controlsIn, withoutColors } from '@faultline/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { showLogs } from './logs.js';
import type { LogsOptions } from './logs-options.js';

describe('faultline logs', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  const logDir = () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faultline-logs-'));
    dirs.push(dir);
    return dir;
  };
  const record = (service: string, timestamp: string, message: string) =>
    JSON.stringify({ level: 'info', message, service, event: 'test.line', timestamp });
  const show = async (options: Partial<LogsOptions> & { dir: string }) => {
    const lines: string[] = [];
    await showLogs({
      follow: false,
      json: true,
      colors: false,
      clock: systemClock,
      write: (line) => lines.push(line),
      ...options,
    });
    return lines;
  };

  it('merges the services by timestamp; --service picks one', async () => {
    const dir = logDir();
    const a1 = record('sp-1', '2026-01-01T00:00:01.000Z', 'one');
    const a3 = record('sp-1', '2026-01-01T00:00:03.000Z', 'three');
    const b2 = record('autoscaler', '2026-01-01T00:00:02.000Z', 'two');
    writeFileSync(path.join(dir, 'sp-1.jsonl'), `${a1}\n${a3}\n`);
    writeFileSync(path.join(dir, 'autoscaler.jsonl'), `${b2}\n`);
    expect(await show({ dir })).toEqual([a1, b2, a3]);
    expect(await show({ dir, service: 'autoscaler' })).toEqual([b2]);
  });

  it('follows a log across its rotation: each line once, in order; rotated files are no services of their own', async () => {
    const dir = logDir();
    const file = path.join(dir, 'sp-1.jsonl');
    const line = (n: number) => record('sp-1', `2026-01-01T00:00:${String(n).padStart(2, '0')}.000Z`, `line ${n}`);
    writeFileSync(file, `${line(1)}\n${line(2)}\n`);
    writeFileSync(path.join(dir, 'sp-1.2.jsonl'), `${line(0)}\n`); // an older rotation: not a service "sp-1.2"
    const lines: string[] = [];
    const controller = new AbortController();
    const following = showLogs({
      dir,
      follow: true,
      json: true,
      colors: false,
      clock: systemClock,
      pollIntervalMs: 20,
      signal: controller.signal,
      write: (text) => lines.push(text),
    });
    const until = async (count: number) => {
      while (lines.length < count) await new Promise((resolve) => setTimeout(resolve, 10));
    };
    await until(2);
    appendFileSync(file, `${line(3)}\n`);
    // Rotated as core's RotatingFile does: renamed to sp-1.1.jsonl, a new file started.
    renameSync(file, path.join(dir, 'sp-1.1.jsonl'));
    writeFileSync(file, `${line(4)}\n`);
    await until(4);
    appendFileSync(file, `${line(5)}\n`);
    await until(5);
    controller.abort();
    await following;
    expect(lines).toEqual([1, 2, 3, 4, 5].map(line));
  });

  it('prints the readable form, and a line that is not a record as it is', async () => {
    const dir = logDir();
    writeFileSync(path.join(dir, 'sp-1.jsonl'), `${record('sp-1', '2026-01-01T00:00:01.000Z', 'became active')}\n42\n`);
    // No timestamp sorts first.
    const [raw, pretty] = await show({ dir, json: false });
    expect(pretty).toMatch(/^00:00:01\.000 sp-1\s+info\s+became active$/);
    expect(raw).toBe('42');
  });

  it('escapes the control characters a record or a raw line carries, in every form', async () => {
    const dir = logDir();
    const osc = '\u001b]0;pwned\u0007';
    const clear = '\u001b[2J';
    const hostile = JSON.stringify({
      level: 'warn',
      message: `refused ${clear}`,
      service: 'sp-1',
      event: 'test.line',
      timestamp: '2026-01-01T00:00:01.000Z',
      reason: osc,
      // JSON.stringify leaves DEL and C1 characters raw in the file.
      peer: '\u009b2J\u007f',
    });
    writeFileSync(path.join(dir, 'sp-1.jsonl'), `${hostile}\nraw ${osc}${clear}\u009b\n`);
    for (const json of [false, true]) {
      const lines = await show({ dir, json });
      expect(lines).toHaveLength(2);
      for (const line of lines) expect(controlsIn(line)).toEqual([]);
      expect(lines.join('\n')).toContain('\\u001b]0;pwned\\u0007');
    }
    const [raw, pretty] = await show({ dir, json: false });
    expect(raw).toBe('raw \\u001b]0;pwned\\u0007\\u001b[2J\\u009b');
    expect(pretty).toContain('refused \\u001b[2J');
    const colored = await show({ dir, json: false, colors: true });
    for (const line of colored) expect(controlsIn(withoutColors(line))).toEqual([]);
  });

  it('fails with a code when there are no logs, or none for the service', async () => {
    const dir = logDir();
    const missing = path.join(dir, 'nothing');
    await expect(show({ dir: missing })).rejects.toMatchObject({
      code: 'FL_ERR_LOGS_NOT_FOUND',
      message: `no logs yet: ${missing} does not exist (start the stack first)`,
    });
    writeFileSync(path.join(dir, 'sp-1.jsonl'), '');
    await expect(show({ dir, service: 'sp-9' })).rejects.toMatchObject({
      code: 'FL_ERR_LOGS_NOT_FOUND',
      message: 'no logs for service sp-9; known: sp-1',
    });
  });
});
