import { describe, expect, it } from 'vitest';
import { EVENT_TYPES } from './events.js';
import {
  allOf,
  decodePing,
  decodePresenceAsk,
  encodePing,
  encodePresenceAsk,
  eventTypeOfTopic,
  mayPublish,
  maySubscribe,
  memberOfTopic,
  PING_FILTER,
  PRESENCE_ASKERS,
  pingRoleOf,
  pingTopicOf,
  presenceAskFilterOf,
  presenceAskOf,
  presenceAskTopicOf,
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
    expect(topicFor('MemberReadyToShutdownEvent')).toBe('topology/MemberReadyToShutdownEvent');
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
    // Readiness (README "Probes"): its own member's only, like the rest of its status.
    expect(mayPublish('agent', 'instance/status/m-1/InstanceOutOfServiceEvent', 'm-1')).toBe(true);
    expect(mayPublish('agent', 'instance/status/m-1/InstanceInServiceEvent', 'm-1')).toBe(true);
    expect(mayPublish('agent', 'instance/status/m-2/InstanceOutOfServiceEvent', 'm-1')).toBe(false);
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

  it('lets ask a role for its presence only the roles whose messages it reads, each under its own name', () => {
    expect(PRESENCE_ASKERS).toEqual({
      sp: ['autoscaler'],
      agent: [],
      autoscaler: ['sp', 'agent', 'autoscaler'],
      observer: ['sp', 'agent', 'autoscaler'],
    });
    expect(presenceAskTopicOf('autoscaler', 'php-m-1')).toBe('presence/autoscaler/php-m-1');
    expect(presenceAskFilterOf('autoscaler')).toBe('presence/autoscaler/+');
    expect(mayPublish('sp', 'presence/autoscaler/sp', 'sp')).toBe(true);
    expect(mayPublish('agent', 'presence/autoscaler/m-1', 'm-1')).toBe(true);
    expect(mayPublish('autoscaler', 'presence/sp/autoscaler', 'autoscaler')).toBe(true);
    // Under another account's name, as an observer, or a role that may not ask that one: refused.
    expect(mayPublish('sp', 'presence/autoscaler/autoscaler', 'sp')).toBe(false);
    expect(mayPublish('agent', 'presence/autoscaler/m-2', 'm-1')).toBe(false);
    expect(mayPublish('observer', 'presence/autoscaler/observer', 'observer')).toBe(false);
    expect(mayPublish('sp', 'presence/sp/sp', 'sp')).toBe(false);
    expect(mayPublish('agent', 'presence/sp/m-1', 'm-1')).toBe(false);
    // Nobody asks an agent (it has no ping to answer with), nor on a malformed topic.
    for (const role of SERVICE_ROLES) {
      expect(mayPublish(role, `presence/agent/${role}`, role)).toBe(false);
      expect(mayPublish(role, `presence/autoscaler/${role}/x`, role)).toBe(false);
      expect(mayPublish(role, 'presence/autoscaler', role)).toBe(false);
      expect(mayPublish(role, `presence/autoscaler/+`, role)).toBe(false);
    }
  });

  it('lets only the asked role read its asks, all of them', () => {
    for (const role of SERVICE_ROLES) {
      for (const asked of SERVICE_ROLES) {
        expect(maySubscribe(role, `presence/${asked}/+`), `${role} reads ${asked}'s asks`).toBe(
          role === asked && role !== 'agent',
        );
      }
      expect(maySubscribe(role, 'presence/#')).toBe(false);
      expect(maySubscribe(role, 'presence/+/+')).toBe(false);
      expect(maySubscribe(role, `presence/${role}/#`)).toBe(false);
      expect(maySubscribe(role, `presence/${role}/sp`)).toBe(false);
    }
  });

  it('reads the asked role and the asker back from an ask topic, and nothing else', () => {
    expect(presenceAskOf('presence/autoscaler/php-m-1')).toEqual({ role: 'autoscaler', asker: 'php-m-1' });
    expect(presenceAskOf('presence/sp/ops.team_1')).toEqual({ role: 'sp', asker: 'ops.team_1' });
    for (const topic of [
      'presence/autoscaler',
      'presence/autoscaler/',
      'presence/autoscaler/a/b',
      'presence/agent/sp',
      'presence/root/sp',
      'presence/autoscaler/+',
      'presence/autoscaler/../x',
      'presence/autoscaler/-sp',
      'ping/autoscaler',
    ]) {
      expect(presenceAskOf(topic), topic).toBeUndefined();
    }
  });

  it('asks carry the asking client id; malformed ones do not decode', () => {
    expect(decodePresenceAsk(encodePresenceAsk({ clientId: 'sp-1' }))).toEqual({ clientId: 'sp-1' });
    expect(decodePresenceAsk(encodePresenceAsk({ clientId: 'x'.repeat(500) }))).toEqual({ clientId: 'x'.repeat(128) });
    for (const bad of [
      'garbage',
      '',
      'null',
      '7',
      '{}',
      '{"clientId":7}',
      JSON.stringify({ clientId: 'x'.repeat(129) }),
    ]) {
      expect(decodePresenceAsk(Buffer.from(bad)), bad).toBeUndefined();
    }
    expect(decodePresenceAsk(Buffer.alloc(4_096, 0x20))).toBeUndefined();
  });
});
