import { ConfigError } from '@faultline/core';
import { describe, expect, it } from 'vitest';
import { DedupeWindow } from './envelope-dedupe.js';

const SP = 'summarized-health-stats';

describe('DedupeWindow', () => {
  it('reports repeats and forgets the oldest beyond its capacity', () => {
    const window = new DedupeWindow(3);
    expect(['a', 'b', 'a', 'c'].map((id) => window.seen(SP, id))).toEqual([false, false, true, false]);
    expect(window.seen(SP, 'd')).toBe(false);
    expect(window.size).toBe(3);
    expect(window.seen(SP, 'a')).toBe(false); // evicted, so new again
    expect(window.seen(SP, 'd')).toBe(true);
  });

  it('keys by topic root and id: the same id under another root is another envelope', () => {
    // Issue 12: an agent that published first under the SP's predictable id
    // (`AverageLoadAverageEvent:php:np-1:<windowTo>`) made the SP's own summary a "duplicate".
    const window = new DedupeWindow(10);
    const id = 'AverageLoadAverageEvent:php:np-1:60000';
    expect(window.seen('instance/status', id)).toBe(false);
    expect(window.seen(SP, id)).toBe(false);
    expect(window.seen(SP, id)).toBe(true);
    expect(window.seen(SP, 'AverageLoadAverageEvent:php:np-1:120000')).toBe(false);
    expect(window.seen('instance/status', id)).toBe(true);
    // No id can make one root's key look like another's.
    expect(window.seen('instance', `status\n${id}`)).toBe(false);
  });

  it('stays bounded under 200 000 ids', () => {
    const window = new DedupeWindow(1_000);
    for (let i = 0; i < 200_000; i++) window.seen(SP, `id-${i}`);
    expect(window.size).toBe(1_000);
  });

  it('refuses a non-positive capacity', () => {
    expect(() => new DedupeWindow(0)).toThrow(ConfigError);
    expect(() => new DedupeWindow(1.5)).toThrow(expect.objectContaining({ code: 'FL_ERR_CONFIG_INVALID' }));
  });
});
