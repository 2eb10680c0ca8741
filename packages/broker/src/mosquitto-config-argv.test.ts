import { pbkdf2Sync } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';

// Every process the writer could start, with the arguments it passes: what `ps` would show.
const started = vi.hoisted(() => [] as { fn: string; args: unknown[] }[]);
vi.mock('node:child_process', async (importOriginal) => {
  const original = await importOriginal<Record<string, unknown>>();
  const recorded: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(original)) {
    recorded[name] =
      typeof value === 'function' && /^(exec|spawn|fork)/.test(name)
        ? (...args: unknown[]) => {
            started.push({ fn: name, args });
            return (value as (...a: unknown[]) => unknown)(...args);
          }
        : value;
  }
  return { ...recorded, default: recorded };
});

const { MEMBER_ACCOUNTS_MARKER, writeMosquittoConfig } = await import('./mosquitto-config.js');

describe('writeMosquittoConfig keeps passwords off the command line', () => {
  afterEach(() => {
    started.length = 0;
  });

  it('starts no process that carries a password, writes $7$ hashes, and every file is 0600 whatever the umask', async () => {
    const dir = path.join(mkdtempSync(path.join(os.tmpdir(), 'faultline-mosq-argv-')), 'broker-a');
    const users = [
      { username: 'sp', password: 'sp:pass word-1', role: 'sp' as const },
      { username: 'agent', password: 'agent-password-2', role: 'agent' as const },
    ];
    const previous = process.umask(0o022);
    let files: Awaited<ReturnType<typeof writeMosquittoConfig>>;
    try {
      files = await writeMosquittoConfig({ dir, port: 18_831, users });
    } finally {
      process.umask(previous);
    }
    for (const call of started) {
      const argv = JSON.stringify(call.args);
      for (const user of users) expect(argv, `${call.fn} argv`).not.toContain(user.password);
    }
    for (const file of Object.values(files)) expect(statSync(file).mode & 0o777, file).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);

    const lines = readFileSync(files.passwordFile, 'utf8').trim().split('\n');
    // The platform's accounts, then the marker after which the members' accounts go.
    expect(lines).toHaveLength(3);
    expect(lines[2]).toBe(MEMBER_ACCOUNTS_MARKER);
    for (const [index, user] of users.entries()) {
      const [username, hash] = [
        lines[index]?.slice(0, user.username.length),
        lines[index]?.slice(user.username.length + 1),
      ];
      expect(username).toBe(user.username);
      const [, type, iterations, salt, digest] = (hash ?? '').split('$');
      expect(type).toBe('7');
      expect(Number(iterations)).toBeGreaterThanOrEqual(101);
      expect(Buffer.from(salt ?? '', 'base64')).toHaveLength(12);
      expect(digest).toBe(
        pbkdf2Sync(user.password, Buffer.from(salt ?? '', 'base64'), Number(iterations), 64, 'sha512').toString(
          'base64',
        ),
      );
    }
  });
});
