import { describe, expect, it } from 'vitest';
import { EVENT_TYPES, parseStatEventType, type StatEventName, statEventType } from './events.js';
import { agentIdSchema, idSchema, isAgentId, isId, MEMBER_IDENTITY_KEYS, memberIdentityOf } from './identity.js';
import { testMember } from './testing/index.js';
import { decodePing, encodePing } from './topics.js';

describe('the id pattern', () => {
  it.each(['php', 'php-k3x9q2', 'np.1', 'a_b', 'A', 'x'.repeat(128)])('accepts %s', (id) => {
    expect(isId(id)).toBe(true);
    expect(idSchema.safeParse(id).success).toBe(true);
  });

  it.each([
    ['empty', ''],
    ['too long', 'x'.repeat(129)],
    ['a leading dash', '-php'],
    ['a slash (topic separator)', 'php/1'],
    ['a colon (stream separator)', 'php:1'],
    ['an MQTT wildcard', 'php+'],
    ['an escape sequence', 'php\u001b[31m'],
    ['a space', 'php 1'],
    ['a newline', 'php\n'],
  ])('refuses %s', (_label, id) => {
    expect(isId(id)).toBe(false);
    expect(idSchema.safeParse(id).success).toBe(false);
  });

  it('refuses what is not a string', () => {
    for (const value of [undefined, null, 42, {}, ['php']]) expect(isId(value)).toBe(false);
  });
});

describe('the agent id pattern', () => {
  it('accepts an id, or an id with the agent start time', () => {
    for (const id of ['python-agent', 'web-yj4j09:1796056885526', `${'x'.repeat(128)}:1796056885526`])
      expect([isAgentId(id), agentIdSchema.safeParse(id).success]).toEqual([true, true]);
  });

  it('refuses anything else', () => {
    for (const id of ['', 'a:', ':1', 'a:1:2', 'a:x', 'a\u001b:1', `a:${'1'.repeat(17)}`])
      expect([isAgentId(id), agentIdSchema.safeParse(id).success]).toEqual([false, false]);
  });
});

describe('member identity', () => {
  it('copies exactly the five ids out of a larger record', () => {
    const stat = { ...testMember(), value: 3, cartridgeType: 'php' };
    const identity = memberIdentityOf(stat);
    expect(Object.keys(identity)).toEqual([...MEMBER_IDENTITY_KEYS]);
    expect(identity).toEqual(testMember());
  });
});

describe('stat event type names', () => {
  it('builds the Stratos names', () => {
    expect(statEventType({ scope: 'cluster', kind: 'Average', metric: 'RequestsInFlight' })).toBe(
      'AverageRequestsInFlightEvent',
    );
    expect(statEventType({ scope: 'member', kind: 'GradientOf', metric: 'LoadAverage' })).toBe(
      'MemberGradientOfLoadAverageEvent',
    );
  });

  it('parses every stat event type back to its name, and nothing else', () => {
    const parsed = EVENT_TYPES.map((type) => [type, parseStatEventType(type)] as const).filter(([, name]) => name);
    // 3 kinds × 3 cluster metrics + 3 kinds × 2 member metrics.
    expect(parsed).toHaveLength(15);
    for (const [type, name] of parsed) expect(statEventType(name as StatEventName)).toBe(type);
    for (const other of ['MemberFaultEvent', 'InstanceStartedEvent', 'MemberAverageRequestsInFlightEvent', 'Average'])
      expect(parseStatEventType(other)).toBeUndefined();
  });
});

describe('ping codec', () => {
  it('round-trips a ping', () => {
    expect(decodePing(encodePing({ clientId: 'autoscaler', seq: 7 }))).toEqual({ clientId: 'autoscaler', seq: 7 });
  });

  it.each([
    ['not JSON', Buffer.from('ping')],
    ['JSON null', Buffer.from('null')],
    ['no client id', Buffer.from('{"seq":1}')],
    ['a client id that is not a string', Buffer.from('{"clientId":1,"seq":1}')],
    ['a fractional seq', Buffer.from('{"clientId":"a","seq":1.5}')],
    ['an oversized payload', Buffer.from(JSON.stringify({ clientId: 'a'.repeat(2_000), seq: 1 }))],
  ])('reads %s as no ping, without throwing', (_label, payload) => {
    expect(decodePing(payload)).toBeUndefined();
  });
});
