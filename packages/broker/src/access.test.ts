import { type Clock, systemClock } from '@faultline/core';
import { createMemoryLogger, type LogRecord } from '@faultline/core/testing';
import { issueMemberCredential, MAX_CREDENTIAL_LENGTH, MemberCredentialVerifier } from '@faultline/protocol';
import { TEST_MEMBER_KEY } from '@faultline/protocol/testing';
import type { Client, PublishPacket, Subscription } from 'aedes';
import { describe, expect, it } from 'vitest';
import { createAccessControl, emptyCounters } from './access.js';
import { UserTable } from './users.js';

// The hooks read `id` and the peer address from the client, and key accounts by its identity.
const fakeClient = (id: string, remoteAddress = '127.0.0.1') => ({ id, conn: { remoteAddress } }) as unknown as Client;
const member = { memberId: 'php-m-1', clusterId: 'php', networkPartitionId: 'np-1' };
const memberCredential = issueMemberCredential(TEST_MEMBER_KEY, member);
const publish = (topic: string) =>
  ({ cmd: 'publish', topic, payload: '', qos: 1, retain: false, dup: false }) as PublishPacket;
const subscription = (topic: string) => ({ topic, qos: 1 }) as Subscription;
/** A log record by what it means (level, event key, fields), not by its wording. */
const meaning = ({ level, event, fields: { event: _, ...fields } }: LogRecord) => ({ level, event, fields });

/** Monotonic time that moves only when a test says so (the refusal log's window). */
function manualClock(): Clock & { advance(ms: number): void } {
  let now = 0;
  return {
    ...systemClock,
    monotonicNow: () => now,
    advance: (ms) => {
      now += ms;
    },
  };
}

function setup() {
  const clock = manualClock();
  const log = createMemoryLogger();
  const counters = emptyCounters();
  const users = new UserTable([
    { username: 'sp', password: 'sp-secret', role: 'sp' },
    { username: 'agent', password: 'agent-secret', role: 'agent' },
    { username: 'watcher', password: 'watch', role: 'observer' },
  ]);
  const access = createAccessControl(users, log, counters, {
    clock,
    members: new MemberCredentialVerifier(TEST_MEMBER_KEY),
  });
  const login = (client: Client, username: string | undefined, password: string | undefined) => {
    let result: { error: (Error & { returnCode?: number }) | null; ok: boolean | null } | undefined;
    access.authenticate(client, username, password === undefined ? undefined : Buffer.from(password), (error, ok) => {
      result = { error, ok };
    });
    if (!result) throw new Error('authenticate did not call back synchronously');
    return result;
  };
  const mayPublish = (client: Client | null, topic: string) => {
    let outcome: Error | null | undefined;
    access.authorizePublish(client, publish(topic), (error) => {
      outcome = error ?? null;
    });
    return outcome === null;
  };
  const subscribe = (client: Client, filter: string) => {
    let granted: Subscription | null | undefined;
    access.authorizeSubscribe(client, subscription(filter), (error, sub) => {
      if (error) throw error;
      granted = sub;
    });
    return granted;
  };
  return { clock, log, counters, access, login, mayPublish, subscribe };
}

describe('authenticate', () => {
  it('accepts valid credentials and remembers the role on that client object only', () => {
    const { access, login, counters } = setup();
    const client = fakeClient('c1');
    expect(login(client, 'sp', 'sp-secret')).toEqual({ error: null, ok: true });
    expect(access.roleOf(client)).toBe('sp');
    expect(access.roleOf(fakeClient('c1'))).toBeUndefined();
    expect(counters.authFailures).toBe(0);
  });

  it('refuses anonymous with 5 and bad credentials with 4, one warn line and one count each', () => {
    const { login, log, counters, access } = setup();
    const anonymous = login(fakeClient('anon'), undefined, undefined);
    expect(anonymous.ok).toBe(false);
    expect(anonymous.error?.returnCode).toBe(5);
    expect(anonymous.error).toMatchObject({ code: 'FL_ERR_ACCESS_REFUSED' });
    expect(login(fakeClient('w', '127.0.0.2'), 'sp', 'nope').error?.returnCode).toBe(4);
    const unknown = fakeClient('u', '127.0.0.3');
    expect(login(unknown, 'ghost', 'sp-secret').error?.returnCode).toBe(4);
    expect(access.roleOf(unknown)).toBeUndefined();
    expect(counters.authFailures).toBe(3);
    expect(log.records.map(meaning)).toEqual([
      {
        level: 'warn',
        event: 'broker.connect_refused',
        fields: { clientId: 'anon', username: undefined, reason: 'anonymous', peer: '127.0.0.1', suppressed: 0 },
      },
      {
        level: 'warn',
        event: 'broker.connect_refused',
        fields: { clientId: 'w', username: 'sp', reason: 'wrong password', peer: '127.0.0.2', suppressed: 0 },
      },
      {
        level: 'warn',
        event: 'broker.connect_refused',
        fields: { clientId: 'u', username: 'ghost', reason: 'unknown user', peer: '127.0.0.3', suppressed: 0 },
      },
    ]);
  });

  it('logs refusals at most once per 10 s per peer and reason, counting every one', () => {
    const { clock, login, log, counters } = setup();
    for (let i = 0; i < 100; i++) login(fakeClient(`c${i}`), 'sp', 'guess');
    expect(counters.authFailures).toBe(100);
    expect(log.records).toHaveLength(1);
    clock.advance(10_000);
    login(fakeClient('again'), 'sp', 'guess');
    expect(log.records.map((record) => record.fields.suppressed)).toEqual([0, 99]);
  });

  it("lets a member's agent in as its own member: user name the member id, password its credential", () => {
    const { access, login, counters } = setup();
    const client = fakeClient('agent-m1');
    expect(login(client, 'php-m-1', memberCredential)).toEqual({ error: null, ok: true });
    expect(access.roleOf(client)).toBe('agent');
    expect(counters.memberConnections).toBe(1);
  });

  it("refuses a member credential under another member's name, a forged MAC, or no member key", () => {
    const { login, counters } = setup();
    // Issue 12: one shared `agent` account let any member speak for any other.
    expect(login(fakeClient('x1'), 'php-m-2', memberCredential).error?.returnCode).toBe(4);
    const forged = `${memberCredential.slice(0, -4)}AAAA`;
    expect(login(fakeClient('x2'), 'php-m-1', forged).error?.returnCode).toBe(4);
    const other = issueMemberCredential(Buffer.from('another-key-another-key-another-key'), member);
    expect(login(fakeClient('x3'), 'php-m-1', other).error?.returnCode).toBe(4);
    expect(counters.authFailures).toBe(3);
    expect(counters.memberConnections).toBe(0);

    const counters2 = emptyCounters();
    const without = createAccessControl(new UserTable([]), createMemoryLogger(), counters2, {
      clock: manualClock(),
    });
    let ok: boolean | null = null;
    without.authenticate(fakeClient('x4'), 'php-m-1', Buffer.from(memberCredential), (_error, result) => {
      ok = result;
    });
    expect(ok).toBe(false);
  });

  it('refuses a password longer than any credential before decoding or verifying it', () => {
    const counters = emptyCounters();
    const verified: unknown[] = [];
    const verifier = new MemberCredentialVerifier(TEST_MEMBER_KEY);
    const access = createAccessControl(new UserTable([]), createMemoryLogger(), counters, {
      clock: manualClock(),
      members: {
        verify: (token) => {
          verified.push(token);
          return verifier.verify(token);
        },
      },
    });
    const outcomes: (boolean | null)[] = [];
    const login = (password: Buffer) =>
      access.authenticate(fakeClient('big'), 'php-m-1', password, (_error, ok) => void outcomes.push(ok));
    // The longest password MQTT carries; then the real credential padded to one byte over the longest.
    login(Buffer.alloc(65_535, 'A'));
    login(Buffer.from(`${memberCredential}${' '.repeat(MAX_CREDENTIAL_LENGTH - memberCredential.length + 1)}`));
    expect(outcomes).toEqual([false, false]);
    expect(verified).toEqual([]);
    expect(counters).toMatchObject({ authFailures: 2, memberConnections: 0 });
    login(Buffer.from(memberCredential));
    expect(outcomes.at(-1)).toBe(true);
    expect(verified).toEqual([memberCredential]);
  });
});

describe('authorizePublish', () => {
  it('follows mayPublish for the role the client authenticated as', () => {
    const { login, mayPublish, counters, log } = setup();
    const sp = fakeClient('sp-1');
    const agent = fakeClient('agent-1');
    login(sp, 'sp', 'sp-secret');
    login(agent, 'php-m-1', memberCredential);
    expect(mayPublish(sp, 'summarized-health-stats/MemberFaultEvent')).toBe(true);
    expect(mayPublish(agent, 'instance/status/php-m-1/InstanceActivatedEvent')).toBe(true);
    expect(mayPublish(sp, 'ping/sp')).toBe(true);
    expect(counters.publishRefused).toBe(0);
    expect(mayPublish(agent, 'summarized-health-stats/MemberFaultEvent')).toBe(false);
    // A member speaks only for itself: not under another member's id, nor the old shared topic.
    expect(mayPublish(agent, 'instance/status/php-m-2/InstanceActivatedEvent')).toBe(false);
    expect(mayPublish(agent, 'instance/status/InstanceActivatedEvent')).toBe(false);
    // Presence is bound to the account: an agent cannot ping as the autoscaler, as another member, nor on the old shared topic.
    expect(mayPublish(agent, 'ping/autoscaler')).toBe(false);
    expect(mayPublish(agent, 'ping/agent')).toBe(false);
    expect(mayPublish(agent, 'ping')).toBe(false);
    expect(mayPublish(sp, 'topology/MemberTerminatedEvent')).toBe(false);
    expect(counters.publishRefused).toBe(7);
    expect(log.records.map(meaning).at(-1)).toEqual({
      level: 'warn',
      event: 'broker.publish_refused',
      fields: {
        clientId: 'sp-1',
        role: 'sp',
        username: 'sp',
        topic: 'topology/MemberTerminatedEvent',
        reason: 'publish sp topology',
        peer: '127.0.0.1',
        suppressed: 0,
      },
    });
  });

  it('lets an account ask a role it may ask for its presence, under its own name only', () => {
    const { login, mayPublish, counters, log } = setup();
    const sp = fakeClient('sp-1');
    const agent = fakeClient('agent-1');
    const watcher = fakeClient('watcher-1');
    login(sp, 'sp', 'sp-secret');
    login(agent, 'php-m-1', memberCredential);
    login(watcher, 'watcher', 'watch');
    expect(mayPublish(sp, 'presence/autoscaler/sp')).toBe(true);
    expect(mayPublish(agent, 'presence/autoscaler/php-m-1')).toBe(true);
    expect(counters.publishRefused).toBe(0);
    // Under another account's name (a member's id, the autoscaler's), by an observer, of a role it may not ask.
    expect(mayPublish(agent, 'presence/autoscaler/php-m-2')).toBe(false);
    expect(mayPublish(sp, 'presence/autoscaler/autoscaler')).toBe(false);
    expect(mayPublish(watcher, 'presence/autoscaler/watcher')).toBe(false);
    expect(mayPublish(agent, 'presence/sp/php-m-1')).toBe(false);
    expect(counters.publishRefused).toBe(4);
    // One line per peer and (role, topic root) at most every 10 s: the agent's second refusal is counted, not logged.
    expect(log.records.filter((r) => r.event === 'broker.publish_refused').map((r) => r.fields.topic)).toEqual([
      'presence/autoscaler/php-m-2',
      'presence/autoscaler/autoscaler',
      'presence/autoscaler/watcher',
    ]);
  });

  it('refuses a client that never authenticated', () => {
    const { mayPublish } = setup();
    expect(mayPublish(fakeClient('stranger'), 'ping/agent')).toBe(false);
  });

  it('lets only $SYS through when aedes publishes without a client (its will sweep)', () => {
    const { mayPublish, counters } = setup();
    expect(mayPublish(null, '$SYS/faultline-a/heartbeat')).toBe(true);
    expect(mayPublish(null, 'summarized-health-stats/MemberFaultEvent')).toBe(false);
    expect(counters.publishRefused).toBe(1);
  });
});

describe('authorizeSubscribe', () => {
  it('grants allowed filters unchanged and negates the others with null (SUBACK 0x80)', () => {
    const { login, subscribe, counters, log } = setup();
    const agent = fakeClient('agent-1');
    const watcher = fakeClient('watcher-1');
    login(agent, 'php-m-1', memberCredential);
    login(watcher, 'watcher', 'watch');
    expect(subscribe(watcher, 'summarized-health-stats/#')).toEqual(subscription('summarized-health-stats/#'));
    expect(subscribe(agent, 'topology/#')).toEqual(subscription('topology/#'));
    expect(subscribe(agent, 'ping/autoscaler')).toEqual(subscription('ping/autoscaler'));
    expect(counters.subscribeRefused).toBe(0);
    expect(subscribe(agent, 'summarized-health-stats/#')).toBeNull();
    expect(subscribe(agent, '#')).toBeNull();
    expect(subscribe(fakeClient('stranger'), 'ping/autoscaler')).toBeNull();
    expect(counters.subscribeRefused).toBe(3);
    // The asks for a role's presence are that role's to read: an observer reads its own, nobody another's.
    expect(subscribe(watcher, 'presence/observer/+')).toEqual(subscription('presence/observer/+'));
    expect(subscribe(watcher, 'presence/autoscaler/+')).toBeNull();
    expect(subscribe(agent, 'presence/autoscaler/+')).toBeNull();
    expect(subscribe(agent, 'presence/agent/+')).toBeNull();
    expect(counters.subscribeRefused).toBe(6);
    expect(log.records.map(meaning).at(-3)).toEqual({
      level: 'warn',
      event: 'broker.subscribe_refused',
      fields: {
        clientId: 'agent-1',
        role: 'agent',
        filter: 'summarized-health-stats/#',
        reason: 'subscribe agent',
        peer: '127.0.0.1',
        suppressed: 0,
      },
    });
  });
});
