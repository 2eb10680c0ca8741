import { ConfigError } from '@faultline/core';
import { describe, expect, it } from 'vitest';
import { type BrokerUser, UserTable, validateUsers } from './users.js';

const users: BrokerUser[] = [
  { username: 'sp', password: 'sp-secret', role: 'sp' },
  { username: 'agent', password: 'agent-secret', role: 'agent' },
];

describe('UserTable.check', () => {
  const table = new UserTable(users);

  it('accepts a known user with the right password and returns its role', () => {
    expect(table.check('sp', Buffer.from('sp-secret'))).toEqual({ ok: true, role: 'sp' });
    expect(table.check('agent', Buffer.from('agent-secret'))).toEqual({ ok: true, role: 'agent' });
  });

  it('refuses anonymous clients, unknown users and wrong passwords, each with its reason', () => {
    expect(table.check(undefined, undefined)).toEqual({ ok: false, reason: 'anonymous' });
    expect(table.check('', Buffer.from('sp-secret'))).toEqual({ ok: false, reason: 'anonymous' });
    expect(table.check('nobody', Buffer.from('sp-secret'))).toEqual({ ok: false, reason: 'unknown user' });
    expect(table.check('sp', Buffer.from('agent-secret'))).toEqual({ ok: false, reason: 'wrong password' });
    expect(table.check('sp', undefined)).toEqual({ ok: false, reason: 'wrong password' });
    expect(table.check('sp', Buffer.alloc(0))).toEqual({ ok: false, reason: 'wrong password' });
  });

  it('compares passwords of any length without throwing (prefix, longer, multibyte)', () => {
    expect(table.check('sp', Buffer.from('sp-secre'))).toMatchObject({ ok: false });
    expect(table.check('sp', Buffer.from('sp-secret-and-more'))).toMatchObject({ ok: false });
    expect(table.check('sp', Buffer.from('sp-sécret'))).toMatchObject({ ok: false });
    expect(table.check('sp', Buffer.alloc(100_000, 1))).toMatchObject({ ok: false });
  });

  it('is empty by default: nobody gets in', () => {
    const empty = new UserTable([]);
    expect(empty.size).toBe(0);
    expect(empty.check('sp', Buffer.from('sp-secret'))).toEqual({ ok: false, reason: 'unknown user' });
  });
});

describe('validateUsers', () => {
  it('accepts the users of the default configuration', () => {
    expect(() => validateUsers(users)).not.toThrow();
  });

  it('names every bad key in one ConfigError', () => {
    const bad = [
      { username: 'sp', password: 'x', role: 'sp' },
      { username: 'sp', password: 'y', role: 'agent' },
      { username: 'has space', password: 'z', role: 'agent' },
      { username: 'evil:name', password: 'two\nlines', role: 'root' },
    ] as unknown as BrokerUser[];
    let caught: unknown;
    try {
      validateUsers(bad, 'brokers.credentials');
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const error = caught as ConfigError;
    expect(error.code).toBe('FL_ERR_CONFIG_INVALID');
    expect(error.issues.map((issue) => issue.key)).toEqual([
      'brokers.credentials[1].username',
      'brokers.credentials[2].username',
      'brokers.credentials[3].username',
      'brokers.credentials[3].password',
      'brokers.credentials[3].role',
    ]);
    expect(error.message).toContain('duplicate username sp');
  });

  it('refuses an empty password', () => {
    expect(() => validateUsers([{ username: 'sp', password: '', role: 'sp' }])).toThrow(ConfigError);
  });
});
