import { ConfigError, DEFAULTS, withDefaults } from '@faultline/core';
import { type Envelope, SERVICE_ROLES, type ServiceRole } from '@faultline/protocol';
import { CLIENT_DEFAULTS, type ClientOptions } from './client-options.js';
import type { BrokerEndpoint } from './connection.js';

export interface EnvelopeMeta {
  /** The broker it arrived through first. */
  broker: string;
  topic: string;
}

export interface SubscriberOptions extends ClientOptions {
  /** The broker pair (or one broker). A link is held to every one at once. */
  brokers: readonly BrokerEndpoint[];
  /** Prefix of the MQTT client ids, e.g. `autoscaler`. */
  clientId: string;
  /**
   * The service role its credentials authenticate as. Its pings go to
   * `ping/<role>`, the only ping topic the brokers let that role publish, and
   * that is what a publisher's `awaitSubscribers` (role names) waits for.
   */
  role: ServiceRole;
  /** Topic filters, e.g. `summarized-health-stats/#`. */
  topics: readonly string[];
  /** Receives every valid envelope once, whichever broker brought it. */
  onEnvelope: (envelope: Envelope, meta: EnvelopeMeta) => void | Promise<void>;
  /** @default DEFAULTS.pingIntervalMs (1 000, the seed) */
  pingIntervalMs?: number;
  /** @default DEFAULTS.resubscribeIntervalMs (30 000, the seed) */
  resubscribeIntervalMs?: number;
  /** @default DEFAULTS.maxMessageBytes (64 KiB) */
  maxMessageBytes?: number;
  /** Envelope ids remembered for dedupe. @default 100_000 */
  dedupeCapacity?: number;
  /**
   * Keep the subscription on each broker while the client is away (a
   * restart, a dropped link): every link connects with `clean: false` under
   * one stable client id per account and `clientId` (persistentClientId), so
   * the broker queues the QoS 1 messages that arrive meanwhile and delivers
   * them at the next connect. For one process per `clientId` only: a second
   * one with the same id takes the session over, and the two kick each other
   * off. @default false (clean sessions, a random client-id suffix)
   */
  persistentSession?: boolean;
}

export type ResolvedSubscriberOptions = Required<SubscriberOptions>;

export function resolveSubscriberOptions(input: SubscriberOptions): ResolvedSubscriberOptions {
  if (!SERVICE_ROLES.includes(input.role)) {
    throw ConfigError.forKey('role', `must be one of ${SERVICE_ROLES.join(', ')}`, { role: input.role });
  }
  return withDefaults(
    {
      ...CLIENT_DEFAULTS,
      pingIntervalMs: DEFAULTS.pingIntervalMs as number,
      resubscribeIntervalMs: DEFAULTS.resubscribeIntervalMs as number,
      maxMessageBytes: DEFAULTS.maxMessageBytes as number,
      dedupeCapacity: 100_000,
      persistentSession: false,
    },
    input,
  );
}
