import { readFileSync } from 'node:fs';
import { envNameFor, resolveConfig } from '@faultline/core';
import { describe, expect, it } from 'vitest';

/*
 * SpNodeInternals.unsafeSkipAdmission turns off every per-batch trust check;
 * only the ingest benchmark's baseline may ask for it, in code. A deployed SP
 * is built by main.ts from the configuration file and the environment, so
 * neither may be able to reach it.
 */
describe('SpNodeInternals: code only, never configuration', () => {
  /** Every key path of the resolved configuration: the FAULTLINE_* variables exist only for these. */
  const keyPaths = (node: unknown, at: string[] = []): string[][] =>
    node !== null && typeof node === 'object' && !Array.isArray(node)
      ? Object.entries(node).flatMap(([key, value]) => [[...at, key], ...keyPaths(value, [...at, key])])
      : [];

  it('the configuration has no key that skips admission, so no variable of the environment either', () => {
    for (const key of ['unsafeSkipAdmission', 'skipAdmission', 'admission'])
      expect(() => resolveConfig({ streamProcessor: { [key]: true } }, { env: {} })).toThrow(/Unrecognized key/);
    const paths = keyPaths(resolveConfig({}, { env: {} }));
    expect(paths.length).toBeGreaterThan(20);
    expect(paths.filter((p) => /admission|unchecked|skip|insecure|unsafe/i.test(p.join('.')))).toEqual([]);
    // A variable for a key the schema does not have is not read at all.
    const env = { [envNameFor(['streamProcessor', 'unsafeSkipAdmission'])]: 'true' };
    expect(JSON.stringify(resolveConfig({}, { env }))).not.toMatch(/unsafeSkipAdmission/);
  });

  it("the service's main passes createSpNode its options and nothing else", () => {
    const main = readFileSync(new URL('./main.ts', import.meta.url), 'utf8');
    expect(main).not.toMatch(/unsafeSkipAdmission|SpNodeInternals/);
    // The call's arguments at its top level: one object literal (no second argument).
    const start = main.indexOf('createSpNode(');
    expect(start).toBeGreaterThan(0);
    let depth = 0;
    let topLevelCommas = 0;
    let end = start + 'createSpNode'.length;
    for (; end < main.length; end++) {
      const c = main[end];
      if (c === '(' || c === '{' || c === '[') depth += 1;
      else if (c === ')' || c === '}' || c === ']') depth -= 1;
      else if (c === ',' && depth === 1) topLevelCommas += 1;
      if (depth === 0) break;
    }
    expect(
      main
        .slice(start + 'createSpNode('.length)
        .trimStart()
        .startsWith('{'),
    ).toBe(true);
    expect(topLevelCommas).toBe(0);
    expect(main.indexOf('createSpNode(', end)).toBe(-1);
  });
});
