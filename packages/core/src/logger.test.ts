import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLogger, formatPretty } from './logger.js';
import { createMemoryLogger } from './testing/index.js';

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
});

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
