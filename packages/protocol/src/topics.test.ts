import { describe, expect, it } from 'vitest';
import { EVENT_TYPES } from './events.js';
import { allOf, eventTypeOfTopic, PING_TOPIC, TOPIC_PUBLISHERS, topicFor } from './topics.js';

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
    expect(PING_TOPIC).toBe('ping');
  });

  it('maps every topic back to its event type, and nothing else', () => {
    for (const type of EVENT_TYPES) expect(eventTypeOfTopic(topicFor(type))).toBe(type);
    expect(eventTypeOfTopic('topology/MemberFaultEvent')).toBeUndefined();
    expect(eventTypeOfTopic('ping')).toBeUndefined();
    expect(eventTypeOfTopic('summarized-health-stats/Nope')).toBeUndefined();
  });

  it('gives each root exactly one publishing role (the brokers ACL)', () => {
    expect(TOPIC_PUBLISHERS['summarized-health-stats']).toBe('sp');
    expect(TOPIC_PUBLISHERS['instance/status']).toBe('agent');
    expect(TOPIC_PUBLISHERS.topology).toBe('autoscaler');
    expect(TOPIC_PUBLISHERS.autoscaler).toBe('autoscaler');
  });
});
