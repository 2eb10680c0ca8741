import { describe, expect, it } from 'vitest';
import { EVENT_TYPES } from './events.js';
import {
  allOf,
  eventTypeOfTopic,
  mayPublish,
  maySubscribe,
  PING_FILTER,
  pingRoleOf,
  pingTopicOf,
  SERVICE_ROLES,
  TOPIC_PUBLISHERS,
  topicFor,
} from './topics.js';

describe('topics', () => {
  it('follows Stratos 4.1 topic names', () => {
    expect(topicFor('MemberFaultEvent')).toBe('summarized-health-stats/MemberFaultEvent');
    expect(topicFor('SecondDerivativeOfLoadAverageEvent')).toBe(
      'summarized-health-stats/SecondDerivativeOfLoadAverageEvent',
    );
    expect(topicFor('InstanceActivatedEvent')).toBe('instance/status/InstanceActivatedEvent');
    expect(topicFor('MemberTerminatedEvent')).toBe('topology/MemberTerminatedEvent');
    expect(topicFor('FaultStormHeld')).toBe('autoscaler/FaultStormHeld');
    expect(allOf('summarized-health-stats')).toBe('summarized-health-stats/#');
    expect(pingTopicOf('autoscaler')).toBe('ping/autoscaler');
    expect(PING_FILTER).toBe('ping/+');
  });

  it('maps every topic back to its event type, and nothing else', () => {
    for (const type of EVENT_TYPES) expect(eventTypeOfTopic(topicFor(type))).toBe(type);
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
    expect(mayPublish('sp', 'summarized-health-stats/MemberFaultEvent')).toBe(true);
    expect(mayPublish('agent', 'summarized-health-stats/MemberFaultEvent')).toBe(false);
    expect(mayPublish('agent', 'instance/status/InstanceStartedEvent')).toBe(true);
    expect(mayPublish('autoscaler', 'topology/MemberCreatedEvent')).toBe(true);
    expect(mayPublish('autoscaler', 'autoscaler/ScaleUpAction')).toBe(true);
    expect(mayPublish('sp', 'autoscaler/ScaleUpAction')).toBe(false);
    expect(mayPublish('observer', 'topology/MemberCreatedEvent')).toBe(false);
    for (const role of SERVICE_ROLES) {
      expect(mayPublish(role, `ping/${role}`)).toBe(true);
      // Issue 12: any role could ping as `autoscaler` on the shared topic.
      expect(mayPublish(role, 'ping')).toBe(false);
      for (const other of SERVICE_ROLES) if (other !== role) expect(mayPublish(role, `ping/${other}`)).toBe(false);
    }
    expect(mayPublish('sp', 'ping/sp/x')).toBe(false);
    expect(mayPublish('sp', 'ping/+')).toBe(false);
    expect(mayPublish('sp', 'summarized-health-stats-x/y')).toBe(false);
    expect(mayPublish('sp', 'summarized-health-stats/#')).toBe(false);
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
    expect(pingRoleOf('ping')).toBeUndefined();
    expect(pingRoleOf('ping/root')).toBeUndefined();
    expect(pingRoleOf('ping/autoscaler/x')).toBeUndefined();
    expect(pingRoleOf('x/autoscaler')).toBeUndefined();
  });
});
