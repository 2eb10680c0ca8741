import { describe, expect, it } from 'vitest';
import { EVENT_TYPES } from './events.js';
import {
  allOf,
  decodePing,
  encodePing,
  eventTypeOfTopic,
  mayPublish,
  maySubscribe,
  memberOfTopic,
  PING_FILTER,
  pingRoleOf,
  pingTopicOf,
  SERVICE_ROLES,
  TOPIC_PUBLISHERS,
  topicFor,
  topicOf,
} from './topics.js';

describe('topics', () => {
  it('follows Stratos 4.1 topic names', () => {
    expect(topicFor('MemberFaultEvent')).toBe('summarized-health-stats/MemberFaultEvent');
    expect(topicFor('SecondDerivativeOfLoadAverageEvent')).toBe(
      'summarized-health-stats/SecondDerivativeOfLoadAverageEvent',
    );
    expect(topicFor('InstanceActivatedEvent', 'php-1')).toBe('instance/status/php-1/InstanceActivatedEvent');
    expect(topicFor('MemberTerminatedEvent')).toBe('topology/MemberTerminatedEvent');
    expect(topicFor('FaultStormHeld')).toBe('autoscaler/FaultStormHeld');
    expect(allOf('summarized-health-stats')).toBe('summarized-health-stats/#');
    expect(pingTopicOf('autoscaler')).toBe('ping/autoscaler');
    expect(PING_FILTER).toBe('ping/+');
  });

  it('maps every topic back to its event type, and nothing else', () => {
    for (const type of EVENT_TYPES) {
      expect(eventTypeOfTopic(topicOf({ type, data: { memberId: 'php-1' } }))).toBe(type);
    }
    expect(eventTypeOfTopic('topology/MemberFaultEvent')).toBeUndefined();
    expect(eventTypeOfTopic('ping')).toBeUndefined();
    expect(eventTypeOfTopic('ping/autoscaler')).toBeUndefined();
    expect(eventTypeOfTopic('summarized-health-stats/Nope')).toBeUndefined();
  });

  it('gives each root exactly one publishing role (the brokers ACL)', () => {
    expect(TOPIC_PUBLISHERS['summarized-health-stats']).toBe('sp');
    expect(TOPIC_PUBLISHERS['instance/status']).toBe('agent');
    expect(TOPIC_PUBLISHERS.topology).toBe('autoscaler');
    expect(TOPIC_PUBLISHERS.autoscaler).toBe('autoscaler');
  });
});

describe('ACL', () => {
  it('lets each role publish only under its roots, and ping only under its own ping topic', () => {
    expect(mayPublish('sp', 'summarized-health-stats/MemberFaultEvent', 'sp')).toBe(true);
    expect(mayPublish('agent', 'summarized-health-stats/MemberFaultEvent', 'm-1')).toBe(false);
    expect(mayPublish('autoscaler', 'topology/MemberCreatedEvent', 'autoscaler')).toBe(true);
    expect(mayPublish('autoscaler', 'autoscaler/ScaleUpAction', 'autoscaler')).toBe(true);
    expect(mayPublish('sp', 'autoscaler/ScaleUpAction', 'sp')).toBe(false);
    expect(mayPublish('observer', 'topology/MemberCreatedEvent', 'observer')).toBe(false);
    for (const role of SERVICE_ROLES.filter((r) => r !== 'agent')) {
      expect(mayPublish(role, `ping/${role}`, role)).toBe(true);
      // Issue 12: any role could ping as `autoscaler` on the shared topic.
      expect(mayPublish(role, 'ping', role)).toBe(false);
      for (const other of SERVICE_ROLES)
        if (other !== role) expect(mayPublish(role, `ping/${other}`, role)).toBe(false);
    }
    expect(mayPublish('sp', 'ping/sp/x', 'sp')).toBe(false);
    expect(mayPublish('sp', 'ping/+', 'sp')).toBe(false);
    expect(mayPublish('sp', 'summarized-health-stats-x/y', 'sp')).toBe(false);
    expect(mayPublish('sp', 'summarized-health-stats/#', 'sp')).toBe(false);
  });

  it("binds a member's account (role agent) to its own member id", () => {
    // Issue 12: one shared `agent` account let any member send InstanceActivated for any other.
    expect(mayPublish('agent', 'instance/status/m-1/InstanceStartedEvent', 'm-1')).toBe(true);
    expect(mayPublish('agent', 'instance/status/m-1/InstanceActivatedEvent', 'm-1')).toBe(true);
    expect(mayPublish('agent', 'instance/status/m-2/InstanceStartedEvent', 'm-1')).toBe(false);
    expect(mayPublish('agent', 'instance/status/InstanceStartedEvent', 'm-1')).toBe(false);
    expect(mayPublish('agent', 'instance/status/m-1/MemberFaultEvent', 'm-1')).toBe(false);
    expect(mayPublish('agent', 'instance/status/m-1/x/InstanceStartedEvent', 'm-1')).toBe(false);
    expect(mayPublish('agent', 'instance/status/+/InstanceStartedEvent', 'm-1')).toBe(false);
    expect(mayPublish('agent', 'ping/agent', 'm-1')).toBe(false);
    expect(mayPublish('agent', 'ping/autoscaler', 'm-1')).toBe(false);
    // Platform accounts never publish a member's status.
    expect(mayPublish('sp', 'instance/status/sp/InstanceStartedEvent', 'sp')).toBe(false);
  });

  it('puts instance status under its member, and reads the member back', () => {
    expect(topicFor('InstanceStartedEvent', 'php-1')).toBe('instance/status/php-1/InstanceStartedEvent');
    expect(memberOfTopic('instance/status/php-1/InstanceStartedEvent')).toBe('php-1');
    expect(memberOfTopic('instance/status/InstanceStartedEvent')).toBeUndefined();
    expect(memberOfTopic('instance/status/a/b/InstanceStartedEvent')).toBeUndefined();
    expect(memberOfTopic('topology/MemberCreatedEvent')).toBeUndefined();
    expect(eventTypeOfTopic('instance/status/php-1/InstanceActivatedEvent')).toBe('InstanceActivatedEvent');
    expect(eventTypeOfTopic('instance/status/InstanceActivatedEvent')).toBeUndefined();
    expect(eventTypeOfTopic('instance/status/php-1/MemberFaultEvent')).toBeUndefined();
    expect(eventTypeOfTopic('instance/status/+/InstanceActivatedEvent')).toBeUndefined();
  });

  it('lets each role subscribe only within its filters', () => {
    expect(maySubscribe('autoscaler', 'summarized-health-stats/#')).toBe(true);
    expect(maySubscribe('autoscaler', 'summarized-health-stats/MemberFaultEvent')).toBe(true);
    expect(maySubscribe('autoscaler', 'summarized-health-stats')).toBe(true);
    expect(maySubscribe('sp', 'topology/+')).toBe(true);
    expect(maySubscribe('sp', 'summarized-health-stats/#')).toBe(false);
    expect(maySubscribe('agent', '#')).toBe(false);
    expect(maySubscribe('agent', '+/status/#')).toBe(false);
    expect(maySubscribe('observer', 'autoscaler/#')).toBe(true);
    for (const role of SERVICE_ROLES) {
      expect(maySubscribe(role, 'ping/autoscaler')).toBe(true);
      expect(maySubscribe(role, PING_FILTER)).toBe(true);
    }
    expect(maySubscribe('agent', 'ping/#')).toBe(false);
    expect(maySubscribe('agent', '+/autoscaler')).toBe(false);
  });

  it('reads the role back from a ping topic, and nothing else', () => {
    for (const role of SERVICE_ROLES) expect(pingRoleOf(pingTopicOf(role))).toBe(role);
    expect(pingRoleOf('ping/agent/m-1')).toBeUndefined();
    expect(pingRoleOf('ping')).toBeUndefined();
    expect(pingRoleOf('ping/root')).toBeUndefined();
    expect(pingRoleOf('ping/autoscaler/x')).toBeUndefined();
    expect(pingRoleOf('x/autoscaler')).toBeUndefined();
  });

  it('pings name their subscription, and a Last Will ends it; older pings still decode; malformed ones do not', () => {
    const ping = { clientId: 'autoscaler', seq: 3, sub: '0f3a9c1d2e4b5a60' };
    expect(decodePing(encodePing(ping))).toEqual(ping);
    expect(decodePing(encodePing({ ...ping, gone: true }))).toEqual({ ...ping, gone: true });
    expect(decodePing(encodePing({ clientId: 'old', seq: 1 }))).toEqual({ clientId: 'old', seq: 1 });
    const bad = [
      { clientId: 'a', seq: 1, sub: '' },
      { clientId: 'a', seq: 1, sub: 'x'.repeat(65) },
      { clientId: 'a', seq: 1, sub: 'a/b' },
      { clientId: 'a', seq: 1, sub: 7 },
      { clientId: 'a', seq: 1, gone: true },
      { clientId: 'a', seq: 1, sub: 's', gone: 'yes' },
      { clientId: 'a', seq: 1, sub: 's', gone: false },
    ];
    for (const payload of bad) expect(decodePing(Buffer.from(JSON.stringify(payload)))).toBeUndefined();
  });
});
