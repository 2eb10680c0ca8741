import { ConfigError } from '@faultline/core';
import { describe, expect, it } from 'vitest';
import { DedupeWindow } from './envelope-dedupe.js';

describe('DedupeWindow', () => {
  it('reports repeats and forgets the oldest beyond its capacity', () => {
    const window = new DedupeWindow(3);
    expect(['a', 'b', 'a', 'c'].map((id) => window.seen(id))).toEqual([false, false, true, false]);
    expect(window.seen('d')).toBe(false);
    expect(window.size).toBe(3);
    expect(window.seen('a')).toBe(false); // evicted, so new again
    expect(window.seen('d')).toBe(true);
  });

  it('stays bounded under 200 000 ids', () => {
    const window = new DedupeWindow(1_000);
    for (let i = 0; i < 200_000; i++) window.seen(`id-${i}`);
    expect(window.size).toBe(1_000);
  });

  it('refuses a non-positive capacity', () => {
    expect(() => new DedupeWindow(0)).toThrow(ConfigError);
    expect(() => new DedupeWindow(1.5)).toThrow(expect.objectContaining({ code: 'FL_ERR_CONFIG_INVALID' }));
  });
});
