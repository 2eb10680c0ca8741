import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './config.js';
import { ClosedError, ConfigError, ERROR_CODES, FaultlineError, isFaultlineError } from './errors.js';

/** Rows of the README table between the "Error codes" heading and the next heading. */
function documentedCodes(): Map<string, string> {
  const readme = readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
  const section = readme.split(/^## Error codes$/m)[1]?.split(/^## /m)[0] ?? '';
  const rows = new Map<string, string>();
  for (const match of section.matchAll(/^\|\s*`(FL_ERR_[A-Z_]+)`\s*\|\s*(.+?)\s*\|$/gm)) {
    rows.set(match[1] as string, match[2] as string);
  }
  return rows;
}

describe('error codes', () => {
  const documented = documentedCodes();

  it.each(Object.keys(ERROR_CODES))('%s is documented in the README', (code) => {
    expect(documented.has(code)).toBe(true);
  });

  it('the README documents no code that does not exist', () => {
    expect([...documented.keys()].sort()).toEqual(Object.keys(ERROR_CODES).sort());
  });

  it('every code follows the FL_ERR_ naming and has a description', () => {
    for (const [code, text] of Object.entries(ERROR_CODES)) {
      expect(code).toMatch(/^FL_ERR_[A-Z][A-Z_]*$/);
      expect(text.length).toBeGreaterThan(10);
    }
  });
});

describe('FaultlineError', () => {
  it('ConfigError.forKey names the one bad key in the message and the issues', () => {
    const error = ConfigError.forKey('database.url', 'missing (or set DATABASE_URL)', { node: 'sp-1' });
    expect(error.message).toBe('database.url: missing (or set DATABASE_URL)');
    expect(error.code).toBe('FL_ERR_CONFIG_INVALID');
    expect(error.issues).toEqual([{ key: 'database.url', reason: 'missing (or set DATABASE_URL)' }]);
    expect(error.context).toEqual({ node: 'sp-1' });
  });

  it('carries code, context, cause and the subclass name', () => {
    const cause = new Error('disk full');
    const error = new ConfigError('FL_ERR_CONFIG_INVALID', 'bad', {
      cause,
      context: { file: 'x.yaml' },
      issues: [{ key: 'cep.faultTimeoutMs', reason: 'too small' }],
    });
    expect(error).toBeInstanceOf(FaultlineError);
    expect(error.name).toBe('ConfigError');
    expect(error.code).toBe('FL_ERR_CONFIG_INVALID');
    expect(error.context).toEqual({ file: 'x.yaml' });
    expect(error.cause).toBe(cause);
    expect(error.issues[0]?.key).toBe('cep.faultTimeoutMs');
    expect(isFaultlineError(error)).toBe(true);
    expect(isFaultlineError(cause)).toBe(false);
  });

  it('ClosedError names the component', () => {
    const error = new ClosedError('publisher');
    expect(error.code).toBe('FL_ERR_CLOSED');
    expect(error.context.component).toBe('publisher');
  });
});
