import { chmodSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ensureSecretFile, readSecretFile } from './secrets.js';

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'faultline-secrets-'));

describe('secret files', () => {
  it('creates a random secret of mode 0600 in a folder of mode 0700, and keeps an existing one', () => {
    const file = path.join(tmp(), 'secrets', 'member.key');
    ensureSecretFile(file);
    const first = readFileSync(file, 'utf8');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
    expect(first.trim()).toMatch(/^[A-Za-z0-9_-]{43}$/);
    ensureSecretFile(file);
    expect(readFileSync(file, 'utf8')).toBe(first);
    expect(readSecretFile(file, 'security.memberKeyFile').toString()).toBe(first.trim());
    const other = path.join(tmp(), 'member.key');
    ensureSecretFile(other);
    expect(readFileSync(other, 'utf8')).not.toBe(first);
  });

  it.each([
    ['missing', (_file: string) => {}, /cannot read/],
    ['readable by others', (file: string) => chmodSync(file, 0o644), /readable by others/],
    ['too short', (file: string) => writeFileSync(file, 'short\n', { mode: 0o600 }), /fewer than 32/],
  ])('refuses a secret file that is %s, naming the config key', (label, prepare, reason) => {
    const file = path.join(tmp(), 'sync.key');
    if (label !== 'missing') ensureSecretFile(file);
    prepare(file);
    expect(() => readSecretFile(file, 'security.syncKeyFile')).toThrow(
      expect.objectContaining({
        code: 'FL_ERR_CONFIG_INVALID',
        issues: [expect.objectContaining({ key: 'security.syncKeyFile', reason: expect.stringMatching(reason) })],
      }),
    );
  });
});
