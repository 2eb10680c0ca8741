import { type EventType, isEventType } from './events.js';

/** Topic roots of Stratos 4.1, plus the autoscaler's own decisions. */
export const TOPIC_ROOTS = {
  summarizedHealthStats: 'summarized-health-stats',
  instanceStatus: 'instance/status',
  topology: 'topology',
  autoscaler: 'autoscaler',
} as const;
export type TopicRoot = (typeof TOPIC_ROOTS)[keyof typeof TOPIC_ROOTS];

/** Every subscriber publishes its liveness ping here (the seed). */
export const PING_TOPIC = 'ping';

/** The service role allowed to publish under each root (the brokers' ACL). */
export type ServiceRole = 'sp' | 'agent' | 'autoscaler';
export const TOPIC_PUBLISHERS: Readonly<Record<TopicRoot, ServiceRole>> = {
  'summarized-health-stats': 'sp',
  'instance/status': 'agent',
  topology: 'autoscaler',
  autoscaler: 'autoscaler',
};

export function rootOf(type: EventType): TopicRoot {
  if (type.startsWith('Instance')) return TOPIC_ROOTS.instanceStatus;
  if (type === 'MemberCreatedEvent' || type === 'MemberTerminatedEvent') return TOPIC_ROOTS.topology;
  if (!type.endsWith('Event')) return TOPIC_ROOTS.autoscaler;
  return TOPIC_ROOTS.summarizedHealthStats;
}

/** `MemberFaultEvent` → `summarized-health-stats/MemberFaultEvent`. */
export function topicFor(type: EventType): string {
  return `${rootOf(type)}/${type}`;
}

/** The event type a topic carries, or undefined for a topic outside the scheme. */
export function eventTypeOfTopic(topic: string): EventType | undefined {
  const slash = topic.lastIndexOf('/');
  const type = topic.slice(slash + 1);
  if (!isEventType(type)) return undefined;
  return topicFor(type) === topic ? type : undefined;
}

/** The wildcard that subscribes to a whole root: `summarized-health-stats/#`. */
export function allOf(root: TopicRoot): string {
  return `${root}/#`;
}
