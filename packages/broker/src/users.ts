import { createHash, timingSafeEqual } from 'node:crypto';
import { ConfigError, type ConfigIssue } from '@faultline/core';
import { SERVICE_ROLES, type ServiceRole } from '@faultline/protocol';
import { z } from 'zod';

/** One account a broker accepts: a service's credentials and the role its ACL follows. */
export interface BrokerUser {
  readonly username: string;
  readonly password: string;
  readonly role: ServiceRole;
}

// Both brokers read the same users: aedes from memory, Mosquitto from a
// generated `user:password` file and an ACL of `user <name>` lines, where a
// space, a colon or a line break in a name would split or forge an entry.
const USERNAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

const brokerUserSchema = z.object({
  username: z.string().regex(USERNAME, { error: 'letters, digits, ".", "_" and "-" only' }),
  password: z.string().refine((password) => password.length > 0 && !/[\r\n]/.test(password), {
    error: 'must be non-empty and on one line',
  }),
  role: z.enum(SERVICE_ROLES, { error: `must be one of ${SERVICE_ROLES.join(', ')}` }),
});

const brokerUsersSchema = z.array(brokerUserSchema).superRefine(
  (users, ctx) => {
    const seen = new Set<string>();
    users.forEach((user: { username?: unknown } | null, index) => {
      const username = user?.username;
      if (typeof username !== 'string') return;
      if (seen.has(username)) {
        ctx.addIssue({ code: 'custom', path: [index, 'username'], message: `duplicate username ${username}` });
      }
      seen.add(username);
    });
  },
  // Also when a user already failed a check above: every issue is reported at once.
  { when: (payload) => Array.isArray(payload.value) },
);

/** Issues are listed by user, then by field in this order; a duplicate username comes after that name's own issue. */
const FIELD_ORDER: readonly PropertyKey[] = ['username', 'password', 'role'];

function issueOrder(a: readonly PropertyKey[], b: readonly PropertyKey[]): number {
  return Number(a[0] ?? -1) - Number(b[0] ?? -1) || FIELD_ORDER.indexOf(a[1] ?? '') - FIELD_ORDER.indexOf(b[1] ?? '');
}

/** `users`, [2, 'role'] → `users[2].role`. */
function keyAt(key: string, path: readonly PropertyKey[]): string {
  return path.reduce<string>(
    (at, part) => (typeof part === 'number' ? `${at}[${part}]` : `${at}.${String(part)}`),
    key,
  );
}

/**
 * Validates a user table up front (fail fast with a typed error that names
 * the key). Throws ConfigError `FL_ERR_CONFIG_INVALID` listing every issue.
 */
export function validateUsers(users: readonly BrokerUser[], key = 'users'): void {
  const result = brokerUsersSchema.safeParse(users);
  if (result.success) return;
  const issues: ConfigIssue[] = [...result.error.issues]
    .sort((a, b) => issueOrder(a.path, b.path))
    .map((issue) => ({ key: keyAt(key, issue.path), reason: issue.message }));
  const lines = issues.map((issue) => `  - ${issue.key}: ${issue.reason}`);
  throw new ConfigError('FL_ERR_CONFIG_INVALID', ['invalid broker users:', ...lines].join('\n'), { issues });
}

/** Why a CONNECT was refused; the value of the `reason` log field. */
export type RefusalReason = 'anonymous' | 'unknown user' | 'wrong password';

export type CheckResult = { ok: true; role: ServiceRole } | { ok: false; reason: RefusalReason };

function digest(secret: Buffer | string): Buffer {
  return createHash('sha256').update(secret).digest();
}

/**
 * Checks credentials in time that does not depend on how much of a password
 * matched: both sides are hashed to 32 bytes first, because timingSafeEqual
 * needs equal lengths and comparing lengths first would leak the length. An
 * unknown user costs the same as a wrong password, so probing names by timing
 * learns nothing either.
 */
export class UserTable {
  private readonly byName = new Map<string, { role: ServiceRole; digest: Buffer }>();
  private readonly decoy = digest('faultline-decoy');

  constructor(users: readonly BrokerUser[]) {
    validateUsers(users);
    for (const user of users) this.byName.set(user.username, { role: user.role, digest: digest(user.password) });
  }

  get size(): number {
    return this.byName.size;
  }

  check(username: string | undefined, password: Buffer | undefined): CheckResult {
    // [MQTT-3.1.2-19] a CONNECT without the user name flag carries no identity.
    if (username === undefined || username === '') return { ok: false, reason: 'anonymous' };
    const entry = this.byName.get(username);
    const given = digest(password ?? Buffer.alloc(0));
    const matches = timingSafeEqual(given, entry?.digest ?? this.decoy);
    if (!entry) return { ok: false, reason: 'unknown user' };
    // An absent password hashes like '', which validateUsers never lets a user have.
    if (!matches) return { ok: false, reason: 'wrong password' };
    return { ok: true, role: entry.role };
  }
}
