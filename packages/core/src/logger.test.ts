import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Clock } from './clock.js';
import {
  colorsWanted,
  createLogger,
  escapeControlChars,
  formatPretty,
  MAX_LOGGED_FIELD_CHARS,
  RateLimitedLog,
} from './logger.js';
import { controlsIn, createMemoryLogger, withoutColors } from './testing/index.js';

describe('formatPretty', () => {
  it('prints time, service, level, message and fields', () => {
    const line = formatPretty(
      { level: 'info', message: 'became active', service: 'sp-1', timestamp: '2026-01-01T12:00:01.234Z', epoch: 3 },
      false,
    );
    expect(line).toBe('12:00:01.234 sp-1         info  became active epoch=3');
  });

  it('leaves the event key to the JSON file', () => {
    const line = formatPretty(
      { level: 'info', message: 'became active', service: 'sp-1', event: 'sp.became_active', epoch: 3 },
      false,
    );
    expect(line).not.toContain('sp.became_active');
    expect(line).toContain('became active epoch=3');
  });

  it('escapes every control character of the record, keeping only its own colors', () => {
    const osc = '\u001b]0;pwned\u0007';
    const clear = '\u001b[2J';
    const record = {
      level: 'warn',
      message: `refused ${clear}`,
      service: 'sp-1',
      timestamp: '2026-01-01T12:00:01.234Z',
      reason: osc,
      peer: `a${clear}b`,
      nested: { text: `\u009b31m\u007f${osc}` },
      [`k${clear}`]: 1,
    };
    const plain = formatPretty(record, false);
    expect(controlsIn(plain)).toEqual([]);
    expect(plain).toContain('\\u001b]0;pwned\\u0007');
    expect(plain).toContain('refused \\u001b[2J');
    expect(plain).toContain('\\u009b31m\\u007f');
    const colored = formatPretty(record, true);
    // What is left raw is only the colors formatPretty paints: ESC [ <n> m.
    expect(controlsIn(withoutColors(colored))).toEqual([]);
    expect(colored).toContain('\\u001b]0;pwned\\u0007');
  });

  it('escapes a hostile level and service instead of painting them', () => {
    const line = formatPretty({ level: 'constructor', message: 'm', service: 's\u001b[2Jx' }, true);
    expect(controlsIn(withoutColors(line))).toEqual([]);
    expect(line).not.toContain('function');
  });

  it('quotes strings with spaces and colors when asked', () => {
    const line = formatPretty({ level: 'warn', message: 'm', service: 's', reason: 'no stats' }, true);
    expect(line).toContain('"no stats"');
    expect(line).toContain('\u001b[');
  });
});

describe('createLogger', () => {
  it('writes JSON lines per service, honouring the level', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faultline-log-'));
    const log = createLogger({ service: 'autoscaler', level: 'info', dir, console: 'none' });
    log.child({ component: 'monitor' }).info('member terminated', {
      event: 'autoscaler.member_terminated',
      memberId: 'm-1',
      reason: 'fault',
    });
    log.debug('hidden', { event: 'test.hidden' });
    log.error('failed', { event: 'test.failed', error: new Error('boom') });
    await log.flush();
    const lines = readFileSync(path.join(dir, 'autoscaler.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({
      level: 'info',
      event: 'autoscaler.member_terminated',
      message: 'member terminated',
      service: 'autoscaler',
      component: 'monitor',
      memberId: 'm-1',
      reason: 'fault',
    });
    expect(typeof lines[0].timestamp).toBe('string');
    expect(lines[1].error).toMatchObject({ message: 'boom', name: 'Error' });
  });

  it('creates its file mode 0600 and a missing folder mode 0700, whatever the umask', async () => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'faultline-log-'));
    const dir = path.join(root, '.faultline', 'logs');
    const previous = process.umask(0o022);
    try {
      const log = createLogger({ service: 'sp-1', dir, console: 'none' });
      log.info('started', { event: 'test.started' });
      await log.flush();
    } finally {
      process.umask(previous);
    }
    expect(statSync(path.join(dir, 'sp-1.jsonl')).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    // A parent it creates keeps the usual mode: the embedded PostgreSQL's user must reach .faultline/pg.
    expect(statSync(path.join(root, '.faultline')).mode & 0o777).toBe(0o755);
  });

  it('rotates its file past maxFileBytes and keeps maxFiles of them, the newest records in <service>.jsonl', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faultline-log-'));
    const log = createLogger({ service: 'sp-1', dir, console: 'none', maxFileBytes: 64 * 1024, maxFiles: 3 });
    const padding = 'x'.repeat(1_000);
    // About 1.1 KB a record: 600 of them are some 10 files' worth.
    for (let i = 0; i < 600; i++) {
      log.info('record', { event: 'test.record', i, padding });
    }
    await log.flush();
    expect(readdirSync(dir).sort()).toEqual(['sp-1.1.jsonl', 'sp-1.2.jsonl', 'sp-1.jsonl']);
    // Oldest kept file first: every record from the first kept one to 599, in order, none missing.
    const kept = ['sp-1.2.jsonl', 'sp-1.1.jsonl', 'sp-1.jsonl'].flatMap((file) => numbersIn(dir, file));
    const first = kept[0] as number;
    expect(kept).toEqual(Array.from({ length: 600 - first }, (_, k) => first + k));
    for (const file of readdirSync(dir)) {
      expect(statSync(path.join(dir, file)).size).toBeLessThanOrEqual(64 * 1024);
      expect(statSync(path.join(dir, file)).mode & 0o777).toBe(0o600);
    }
  });

  it("two writers of one file (both autoscaler nodes) keep its newest records across each other's rotations", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faultline-log-'));
    const options = { service: 'autoscaler', dir, console: 'none' as const, maxFileBytes: 64 * 1024, maxFiles: 3 };
    const writers = [createLogger(options), createLogger(options)];
    const padding = 'x'.repeat(1_000);
    for (let i = 0; i < 400; i++) {
      (writers[i % 2] as (typeof writers)[number]).info('record', { event: 'test.record', i, padding });
    }
    await Promise.all(writers.map((w) => w.flush()));
    // Some 7 files' worth in 3: what is kept is the newest records of both writers, none missing among
    // them (a writer that went on in a file the other had rotated away lost its records with it).
    const kept = readdirSync(dir)
      .flatMap((file) => numbersIn(dir, file))
      .sort((a, b) => a - b);
    const first = kept[0] as number;
    expect(kept).toEqual(Array.from({ length: 400 - first }, (_, k) => first + k));
    expect(numbersIn(dir, 'autoscaler.jsonl').at(-1)).toBe(399);
  });

  it('drops a record it cannot write (its folder gone), throws nothing, and writes the next where the path leads again', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faultline-log-'));
    const log = createLogger({ service: 'sp-1', dir, console: 'none' });
    log.info('first', { event: 'test.record', i: 0 });
    // The folder gone: the record is dropped, nothing throws, and the next ones go to the folder made again.
    rmSync(dir, { recursive: true, force: true });
    log.info('lost', { event: 'test.record', i: 1 });
    mkdirSync(dir);
    log.info('after', { event: 'test.record', i: 2 });
    await log.flush();
    expect(numbersIn(dir, 'sp-1.jsonl')).toEqual([2]);
  });
});

function numbersIn(dir: string, file: string): number[] {
  return readFileSync(path.join(dir, file), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => (JSON.parse(line) as { i: number }).i);
}

describe('createMemoryLogger', () => {
  it('keeps records with child fields merged', () => {
    const log = createMemoryLogger();
    log.child({ a: 1 }).warn('x', { event: 'test.x', b: 2 });
    expect(log.records).toEqual([
      { level: 'warn', event: 'test.x', message: 'x', fields: { a: 1, event: 'test.x', b: 2 } },
    ]);
    expect(log.events()).toEqual(['test.x']);
  });

  it('refuses a malformed event key, so the test that logs it fails', () => {
    const log = createMemoryLogger();
    expect(() => log.info('x', { event: 'Member Fault' })).toThrow(/malformed log event key/);
    expect(() => log.info('x', { event: 'nodot' })).toThrow(/malformed log event key/);
  });
});

describe('escapeControlChars', () => {
  it('writes C0, DEL and C1 characters as \\u00XX and leaves the rest', () => {
    expect(escapeControlChars('a\u0000b\u001b[2J\u007f\u0085\u009féü→')).toBe(
      'a\\u0000b\\u001b[2J\\u007f\\u0085\\u009féü→',
    );
    expect(escapeControlChars('tab\there\nnext')).toBe('tab\\u0009here\\u000anext');
  });

  it('keeps SGR colors when asked, and nothing else', () => {
    const line = '\u001b[36msp-1\u001b[0m \u001b]0;pwned\u0007 \u001b[2J \u001b[1;31mx\u001b[0m';
    expect(escapeControlChars(line, { keepColors: true })).toBe(
      '\u001b[36msp-1\u001b[0m \\u001b]0;pwned\\u0007 \\u001b[2J \u001b[1;31mx\u001b[0m',
    );
  });
});

describe('RateLimitedLog', () => {
  const fakeClock = () => {
    let now = 0;
    const clock = { monotonicNow: () => now, now: () => now } as unknown as Clock;
    return { clock, advance: (ms: number) => (now += ms) };
  };

  it('writes one record per peer and reason per interval; the next one carries the count left out', () => {
    const logger = createMemoryLogger();
    const { clock, advance } = fakeClock();
    const log = new RateLimitedLog(logger, clock, { intervalMs: 10_000 });
    const refuse = (peer: string, reason: string) => log.warn(peer, reason, 'refused', { event: 'test.refused' });
    for (let i = 0; i < 5; i++) refuse('p1', 'bad_token');
    refuse('p1', 'unknown_action');
    refuse('p2', 'bad_token');
    expect(logger.records.map((r) => [r.fields.peer, r.fields.reason, r.fields.suppressed])).toEqual([
      ['p1', 'bad_token', 0],
      ['p1', 'unknown_action', 0],
      ['p2', 'bad_token', 0],
    ]);
    advance(9_999);
    refuse('p1', 'bad_token');
    expect(logger.records).toHaveLength(3);
    advance(1);
    refuse('p1', 'bad_token');
    expect(logger.records.at(-1)?.fields).toMatchObject({ peer: 'p1', reason: 'bad_token', suppressed: 5 });
    expect(logger.records.at(-1)?.level).toBe('warn');
  });

  it('cuts string fields to 1 KB and remembers a bounded number of peers', () => {
    const logger = createMemoryLogger();
    const { clock } = fakeClock();
    const log = new RateLimitedLog(logger, clock, { maxKeys: 2 });
    log.warn('p'.repeat(5_000), 'r', 'refused', { event: 'test.refused', detail: 'x'.repeat(5_000) });
    const fields = logger.records[0]?.fields ?? {};
    expect(String(fields.detail).length).toBe(MAX_LOGGED_FIELD_CHARS);
    expect(String(fields.peer).length).toBe(MAX_LOGGED_FIELD_CHARS);
    for (const peer of ['a', 'b', 'c']) log.warn(peer, 'r', 'refused', { event: 'test.refused' });
    // 'a' was forgotten (the oldest of three with room for two): it is logged again at once.
    log.warn('a', 'r', 'refused', { event: 'test.refused' });
    expect(logger.records).toHaveLength(5);
  });
});

describe('colorsWanted', () => {
  it('follows NO_COLOR, then FORCE_COLOR (0 and false are off), then whether the stream is a terminal', () => {
    const tty = { isTTY: true };
    const pipe = { isTTY: false };
    expect(colorsWanted(tty, {})).toBe(true);
    expect(colorsWanted(pipe, {})).toBe(false);
    expect(colorsWanted(tty, { NO_COLOR: '1' })).toBe(false);
    expect(colorsWanted(tty, { NO_COLOR: '1', FORCE_COLOR: '1' })).toBe(false);
    expect(colorsWanted(tty, { NO_COLOR: '' })).toBe(true);
    // FORCE_COLOR=0 turned colors on: any non-empty value was taken for yes.
    expect(colorsWanted(tty, { FORCE_COLOR: '0' })).toBe(false);
    expect(colorsWanted(tty, { FORCE_COLOR: 'false' })).toBe(false);
    expect(colorsWanted(pipe, { FORCE_COLOR: '1' })).toBe(true);
    expect(colorsWanted(pipe, { FORCE_COLOR: '' })).toBe(true);
  });
});
