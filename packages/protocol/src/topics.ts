import { type EventType, isEventType } from './events.js';
import { isId } from './identity.js';

/** Topic roots of Stratos 4.1, plus the autoscaler's own decisions. */
export const TOPIC_ROOTS = {
  summarizedHealthStats: 'summarized-health-stats',
  instanceStatus: 'instance/status',
  topology: 'topology',
  autoscaler: 'autoscaler',
} as const;
export type TopicRoot = (typeof TOPIC_ROOTS)[keyof typeof TOPIC_ROOTS];

/**
 * Liveness pings (the seed: every subscriber pings each second). Each role
 * pings under its own topic, `ping/<role>`, and the brokers let a client
 * publish only the ping topic of the role it authenticated as: a ping on
 * `ping/autoscaler` was sent by an `autoscaler` account, whatever its payload
 * says. A member's account (role `agent`) publishes no ping: an agent has no
 * subscriber, only a publisher that watches the autoscaler's pings.
 */
export const PING_ROOT = 'ping';

/** The filter that reads every role's pings. */
export const PING_FILTER = `${PING_ROOT}/+`;

/** `autoscaler` → `ping/autoscaler`: the only ping topic the brokers let that role publish. */
export function pingTopicOf(role: ServiceRole): string {
  return `${PING_ROOT}/${role}`;
}

/** The role whose ping topic `topic` is, or undefined for any other topic. */
export function pingRoleOf(topic: string): ServiceRole | undefined {
  if (!topic.startsWith(`${PING_ROOT}/`)) return undefined;
  const rest = topic.slice(PING_ROOT.length + 1);
  return (SERVICE_ROLES as readonly string[]).includes(rest) ? (rest as ServiceRole) : undefined;
}

/**
 * A subscriber's liveness ping: who pings (informational: presence is read from
 * the topic, which the broker binds to the account), and a counter that makes each one distinct.
 *
 * `sub` names the subscription the ping belongs to: a link draws a new one
 * each time it (re)subscribes, and sets an MQTT Last Will on its ping topic
 * that carries the same `sub` with `gone: true`. So the broker itself tells
 * publishers when that subscription's link died, and a publisher counts the
 * subscriber present again only once a ping of another subscription arrives.
 * Both are optional: a ping without them (an older client) still decodes.
 */
export interface Ping {
  clientId: string;
  seq: number;
  /** The subscription this ping belongs to (PING_SUB_PATTERN). */
  sub?: string;
  /** Subscription `sub` has ended: its link is gone (the Last Will), its pings prove nothing any more. */
  gone?: true;
}

/** Largest ping payload read; a real one is a few dozen bytes. */
const MAX_PING_BYTES = 1_024;

/** A subscription id: 1 to 64 characters of [A-Za-z0-9_-]. */
export const PING_SUB_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export function encodePing(ping: Ping): Buffer {
  return Buffer.from(
    JSON.stringify({
      clientId: ping.clientId,
      seq: ping.seq,
      ...(ping.sub === undefined ? {} : { sub: ping.sub }),
      ...(ping.gone ? { gone: true } : {}),
    }),
  );
}

/** The JSON object in `payload` if it is one of at most `maxBytes`; undefined for anything else. Never throws. */
function smallJsonObject(payload: Buffer, maxBytes: number): object | undefined {
  if (payload.length > maxBytes) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload.toString('utf8'));
  } catch {
    return undefined;
  }
  return typeof parsed === 'object' && parsed !== null ? parsed : undefined;
}

/**
 * The ping in `payload`, or undefined for anything else (another client's
 * format, garbage, a malformed `sub`, a `gone` without a `sub`). Never throws.
 */
export function decodePing(payload: Buffer): Ping | undefined {
  const parsed = smallJsonObject(payload, MAX_PING_BYTES);
  if (parsed === undefined) return undefined;
  const { clientId, seq, sub, gone } = parsed as { clientId?: unknown; seq?: unknown; sub?: unknown; gone?: unknown };
  if (typeof clientId !== 'string' || typeof seq !== 'number' || !Number.isSafeInteger(seq)) return undefined;
  if (sub !== undefined && (typeof sub !== 'string' || !PING_SUB_PATTERN.test(sub))) return undefined;
  if (gone !== undefined && (gone !== true || sub === undefined)) return undefined;
  return { clientId, seq, ...(sub === undefined ? {} : { sub }), ...(gone === true ? { gone: true as const } : {}) };
}

/**
 * Presence asks. A publisher that awaits a role (re)connecting to a broker
 * asks that role's subscribers there to announce themselves, rather than wait
 * up to a ping interval for their next ping: it publishes (QoS 0) on
 * `presence/<role>/<its user name>`, and each subscription of the role
 * answers with a ping on `ping/<role>` at once (rate-limited by the
 * subscriber: one ping answers every ask that came meanwhile). An ask proves
 * nothing and carries nothing but who asks; presence is still only a ping on
 * the role's own topic.
 *
 * The brokers bind the last level to the account (a member asks only under its
 * member id), let ask a role only the roles whose messages it reads
 * (PRESENCE_ASKERS), and let read `presence/<role>/+` only that role.
 */
export const PRESENCE_ROOT = 'presence';

/** The roles that ping, so can be awaited and asked: every one but `agent` (a member publishes no ping). */
export function pings(role: ServiceRole): boolean {
  return role !== 'agent';
}

/** `autoscaler`, `php-m-1` → `presence/autoscaler/php-m-1`: the topic account `username` asks `role`'s presence on. */
export function presenceAskTopicOf(role: ServiceRole, username: string): string {
  return `${PRESENCE_ROOT}/${role}/${username}`;
}

/** `autoscaler` → `presence/autoscaler/+`: what the role's subscribers read, every asker's asks. */
export function presenceAskFilterOf(role: ServiceRole): string {
  return `${PRESENCE_ROOT}/${role}/+`;
}

/** A user name as an ask topic's last level: a platform user name or a member id (both of these characters). */
const ASKER_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** The role asked and the account asking, read from `presence/<role>/<username>`; undefined for any other topic. */
export function presenceAskOf(topic: string): { role: ServiceRole; asker: string } | undefined {
  if (!topic.startsWith(`${PRESENCE_ROOT}/`)) return undefined;
  const parts = topic.slice(PRESENCE_ROOT.length + 1).split('/');
  if (parts.length !== 2) return undefined;
  const [role, asker] = parts as [string, string];
  if (!(SERVICE_ROLES as readonly string[]).includes(role) || !pings(role as ServiceRole)) return undefined;
  return ASKER_PATTERN.test(asker) ? { role: role as ServiceRole, asker } : undefined;
}

/** What an ask says: the asking client's id prefix (informational, for logs: the topic names the account). */
export interface PresenceAsk {
  clientId: string;
}

/** Largest ask payload read; a real one is a few dozen bytes. */
const MAX_ASK_BYTES = 512;
const MAX_ASK_CLIENT_ID = 128;

export function encodePresenceAsk(ask: PresenceAsk): Buffer {
  return Buffer.from(JSON.stringify({ clientId: ask.clientId.slice(0, MAX_ASK_CLIENT_ID) }));
}

/** The ask in `payload`, or undefined for anything else (garbage, oversized, no `clientId`). Never throws. */
export function decodePresenceAsk(payload: Buffer): PresenceAsk | undefined {
  const parsed = smallJsonObject(payload, MAX_ASK_BYTES);
  if (parsed === undefined) return undefined;
  const { clientId } = parsed as { clientId?: unknown };
  if (typeof clientId !== 'string' || clientId.length > MAX_ASK_CLIENT_ID) return undefined;
  return { clientId };
}

/**
 * Who a broker client is. `observer` is read-only (status views, operators'
 * tools such as mosquitto_sub); the three services publish under their roots.
 */
export const SERVICE_ROLES = ['sp', 'agent', 'autoscaler', 'observer'] as const;
export type ServiceRole = (typeof SERVICE_ROLES)[number];

/**
 * The service role allowed to publish under each root (the brokers' ACL).
 * `instance/status` is further bound to the account: each member's agent has
 * its own account, named by its member id, and may publish only
 * `instance/status/<its member id>/<type>`.
 */
export const TOPIC_PUBLISHERS: Readonly<Record<TopicRoot, ServiceRole>> = {
  'summarized-health-stats': 'sp',
  'instance/status': 'agent',
  topology: 'autoscaler',
  autoscaler: 'autoscaler',
};

export function rootOf(type: EventType): TopicRoot {
  if (type.startsWith('Instance')) return TOPIC_ROOTS.instanceStatus;
  if (type === 'MemberCreatedEvent' || type === 'MemberTerminatedEvent' || type === 'MemberReadyToShutdownEvent')
    return TOPIC_ROOTS.topology;
  if (!type.endsWith('Event')) return TOPIC_ROOTS.autoscaler;
  return TOPIC_ROOTS.summarizedHealthStats;
}

/** The event types of `instance/status`: each is published under the member it is about. */
export type InstanceStatusType = Extract<EventType, `Instance${string}`>;
type RootTopicType = Exclude<EventType, InstanceStatusType>;

function isInstanceStatusType(type: EventType): type is InstanceStatusType {
  return rootOf(type) === TOPIC_ROOTS.instanceStatus;
}

/**
 * `MemberFaultEvent` → `summarized-health-stats/MemberFaultEvent`;
 * `InstanceStartedEvent` of `php-1` → `instance/status/php-1/InstanceStartedEvent`.
 */
export function topicFor(type: InstanceStatusType, memberId: string): string;
export function topicFor(type: RootTopicType): string;
export function topicFor(type: EventType, memberId?: string): string {
  return isInstanceStatusType(type) ? `${TOPIC_ROOTS.instanceStatus}/${memberId}/${type}` : `${rootOf(type)}/${type}`;
}

/** The topic an envelope goes to: its type's, under its member for instance status events. */
export function topicOf(envelope: { type: EventType; data: unknown }): string {
  const { type } = envelope;
  if (!isInstanceStatusType(type)) return topicFor(type);
  return topicFor(type, (envelope.data as { memberId: string }).memberId);
}

/** The member an `instance/status/<memberId>/<type>` topic names, or undefined for any other topic. */
export function memberOfTopic(topic: string): string | undefined {
  const prefix = `${TOPIC_ROOTS.instanceStatus}/`;
  if (!topic.startsWith(prefix)) return undefined;
  const parts = topic.slice(prefix.length).split('/');
  return parts.length === 2 && isId(parts[0]) ? parts[0] : undefined;
}

/** The event type a topic carries, or undefined for a topic outside the scheme. */
export function eventTypeOfTopic(topic: string): EventType | undefined {
  const slash = topic.lastIndexOf('/');
  const type = topic.slice(slash + 1);
  if (!isEventType(type)) return undefined;
  if (isInstanceStatusType(type)) {
    const memberId = memberOfTopic(topic);
    return memberId !== undefined && topicFor(type, memberId) === topic ? type : undefined;
  }
  return topicFor(type) === topic ? type : undefined;
}

/** The wildcard that subscribes to a whole root: `summarized-health-stats/#`. */
export function allOf(root: TopicRoot): string {
  return `${root}/#`;
}

/**
 * The brokers' ACL, one table for aedes and for the generated Mosquitto
 * acl_file. Publishing is allowed only under the roots a role owns
 * (TOPIC_PUBLISHERS), on the role's own ping topic (`ping/<role>`) and, for
 * the roles in PRESENCE_ASKERS, on `presence/<asked role>/<own user name>`;
 * subscribing only to filters within these, to anyone's pings (`ping/+` or
 * one `ping/<role>`: how a publisher sees who is present), and to the asks
 * for its own presence (`presence/<role>/+`).
 */
export const SUBSCRIBE_ACL: Readonly<Record<ServiceRole, readonly string[]>> = {
  // The SP forgets members the topology removed.
  sp: ['topology/#'],
  // Agents follow the topology (Stratos agents do, for their own member).
  agent: ['topology/#'],
  autoscaler: ['summarized-health-stats/#', 'instance/status/#', 'topology/#', 'autoscaler/#'],
  observer: ['summarized-health-stats/#', 'instance/status/#', 'topology/#', 'autoscaler/#'],
};

export function publishRootsOf(role: ServiceRole): TopicRoot[] {
  return (Object.keys(TOPIC_PUBLISHERS) as TopicRoot[]).filter((root) => TOPIC_PUBLISHERS[root] === role);
}

/**
 * The roles that may ask each role's presence: those that publish under a
 * root it reads (SUBSCRIBE_ACL), the only ones with a reason to await it. So
 * the SP and members' agents ask the autoscaler, the autoscaler asks the SP;
 * an observer publishes under no root and asks nobody, and nobody asks an
 * agent (it pings not, so cannot answer).
 */
export const PRESENCE_ASKERS: Readonly<Record<ServiceRole, readonly ServiceRole[]>> = {
  sp: askersOf('sp'),
  agent: askersOf('agent'),
  autoscaler: askersOf('autoscaler'),
  observer: askersOf('observer'),
};

function askersOf(asked: ServiceRole): ServiceRole[] {
  if (!pings(asked)) return [];
  const reads = (root: TopicRoot) => SUBSCRIBE_ACL[asked].some((filter) => within(allOf(root), filter));
  return SERVICE_ROLES.filter((asker) => publishRootsOf(asker).some(reads));
}

/**
 * Whether the account `username` of role `role` may publish on `topic` (a
 * concrete topic: wildcards are refused). An `agent` account publishes only
 * under its own name: `instance/status/<username>/<type>` and its presence
 * asks (the Mosquitto acl_file's `pattern` lines with `%u`). Any account asks
 * only under its own name, `presence/<role>/<username>`, and only a role it
 * may ask (PRESENCE_ASKERS).
 */
export function mayPublish(role: ServiceRole, topic: string, username: string): boolean {
  if (topic.includes('+') || topic.includes('#')) return false;
  const ask = presenceAskOf(topic);
  if (ask !== undefined) return ask.asker === username && PRESENCE_ASKERS[ask.role].includes(role);
  if (role === 'agent') {
    return memberOfTopic(topic) === username && eventTypeOfTopic(topic) !== undefined;
  }
  if (topic === pingTopicOf(role)) return true;
  return publishRootsOf(role).some((root) => topic.startsWith(`${root}/`));
}

/** Whether `filter` selects only topics within the allowed filter `allowed` (`root/#`). */
function within(filter: string, allowed: string): boolean {
  if (filter === allowed) return true;
  if (!allowed.endsWith('/#')) return false;
  const prefix = allowed.slice(0, -2);
  // [MQTT-4.7.1-2] `root/#` also matches `root` itself.
  return filter === prefix || filter.startsWith(`${prefix}/`);
}

/** Whether `role` may subscribe with `filter`. */
export function maySubscribe(role: ServiceRole, filter: string): boolean {
  if (filter === PING_FILTER || pingRoleOf(filter) !== undefined) return true;
  // Its own asks only, and all of them: nobody else learns who asked whom.
  if (filter.startsWith(`${PRESENCE_ROOT}/`)) return pings(role) && filter === presenceAskFilterOf(role);
  return SUBSCRIBE_ACL[role].some((allowed) => within(filter, allowed));
}
