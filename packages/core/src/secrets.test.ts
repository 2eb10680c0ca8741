import { chmodSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveConfig } from './config.js';
import { ConfigError } from './errors.js';
import { brokerCredential, brokerPassword, ensureSecretFile, readSecretFile } from './secrets.js';

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
    // Only the secrets folder is private; a parent it creates keeps the usual mode.
    const nested = path.join(tmp(), '.faultline', 'secrets', 'sync.key');
    const previous = process.umask(0o022);
    try {
      ensureSecretFile(nested);
    } finally {
      process.umask(previous);
    }
    expect(statSync(path.dirname(nested)).mode & 0o777).toBe(0o700);
    expect(statSync(path.dirname(path.dirname(nested))).mode & 0o777).toBe(0o755);
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

describe('brokerPassword', () => {
  const base = resolveConfig({}, { env: {} });
  const withCredential = (role: 'sp' | 'observer', credential: Record<string, string>) =>
    resolveConfig({ brokers: { credentials: { [role]: credential } } }, { env: {} });

  it('returns the configured password, or reads the password file', () => {
    expect(brokerPassword(withCredential('sp', { password: 'sp-pw' }), 'sp')).toBe('sp-pw');
    const file = path.join(tmp(), 'secrets', 'observer.password');
    ensureSecretFile(file);
    expect(brokerPassword(withCredential('observer', { passwordFile: file }), 'observer')).toBe(
      readFileSync(file, 'utf8').trim(),
    );
    expect(brokerCredential(withCredential('sp', { password: 'sp-pw' }), 'sp')).toEqual({
      username: 'sp',
      password: 'sp-pw',
    });
  });

  it('refuses, naming the key, a role with neither, and an unsafe file', () => {
    expect(() => brokerPassword(base, 'sp')).toThrow(ConfigError);
    expect(() => brokerPassword(base, 'observer')).toThrow(/brokers\.credentials\.observer/);
    const file = path.join(tmp(), 'observer.password');
    writeFileSync(file, 'x'.repeat(40), { mode: 0o644 });
    chmodSync(file, 0o644);
    expect(() => brokerPassword(withCredential('observer', { passwordFile: file }), 'observer')).toThrow(
      /brokers\.credentials\.observer\.passwordFile.*readable by others/,
    );
  });
});
