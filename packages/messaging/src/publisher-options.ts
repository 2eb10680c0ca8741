import { ConfigError, DEFAULTS, withDefaults } from '@faultline/core';
import { SERVICE_ROLES } from '@faultline/protocol';
import { CLIENT_DEFAULTS, type ClientOptions } from './client-options.js';
import type { BrokerEndpoint } from './connection.js';

export interface PublisherOptions extends ClientOptions {
  /** The broker pair, in order of preference; the publisher fails over between them. */
  brokers: readonly BrokerEndpoint[];
  /** Prefix of the MQTT client id, e.g. `sp-1`. */
  clientId: string;
  /** Durable outbox log, e.g. `.faultline/run/sp-1.outbox`. */
  outboxFile: string;
  /** @default DEFAULTS.republishIntervalMs (60 000, the seed) */
  republishIntervalMs?: number;
  /** Messages awaiting PUBACK at once. @default 1_000 */
  maxInflight?: number;
  /**
   * Service roles (e.g. `autoscaler`) whose subscriber must be present on a
   * broker before messages are sent through it. A broker restarted without
   * persistence keeps no subscriptions, and it drops what arrives before its
   * subscribers are back; every subscriber pings `ping/<its role>` each
   * second once subscribed, and the brokers let only that role's accounts
   * publish there, so a recent ping on this connection proves it is there.
   * On each (re)connection the publisher asks them to ping at once
   * (`presence/<role>/<credentials.username>`), so it need not wait for the
   * next ping. A broker where one stays absent for a whole republish interval
   * is failed over. @default [] (send at once)
   */
  awaitSubscribers?: readonly string[];
  /** A subscriber counts as present this long after its last ping. @default 3 × DEFAULTS.pingIntervalMs */
  presenceWindowMs?: number;
  /**
   * A PUBACK means the broker has the message, not that it delivered it: a
   * broker killed -9 right after acknowledging loses what it had not yet
   * written to its subscribers. So on failover the publisher also resends
   * what the lost broker acknowledged within this window (subscribers drop
   * the copies by id). @default 10_000
   */
  replayWindowMs?: number;
  /**
   * The subscribers' limit (`messaging.maxMessageBytes`): a larger envelope is
   * refused by publish() (FL_ERR_ENVELOPE_TOO_LARGE, counter
   * `droppedOversized`), since every subscriber would drop it unread.
   * @default DEFAULTS.maxMessageBytes (64 KiB)
   */
  maxMessageBytes?: number;
  /**
   * The outbox's bound (`messaging.outboxMaxBytes`): summaries are held up to
   * it (the oldest dropped past it), MemberFaults and actions up to twice it;
   * past that, publish() fails with FL_ERR_OUTBOX_FULL.
   * @default DEFAULTS.outboxMaxBytes (64 MiB)
   */
  outboxMaxBytes?: number;
}

export type ResolvedPublisherOptions = Required<PublisherOptions>;

/** The publisher's options with every default filled in; a ConfigError when there is no broker. */
export function resolvePublisherOptions(input: PublisherOptions): ResolvedPublisherOptions {
  // withDefaults, not a spread: an explicit `undefined` (an unset config key
  // passed through) must not replace a default — it once made the 60 s
  // republish a 1 ms loop.
  const options = withDefaults(
    {
      ...CLIENT_DEFAULTS,
      republishIntervalMs: DEFAULTS.republishIntervalMs as number,
      maxInflight: 1_000,
      awaitSubscribers: [] as readonly string[],
      presenceWindowMs: 3 * DEFAULTS.pingIntervalMs,
      replayWindowMs: 10_000,
      maxMessageBytes: DEFAULTS.maxMessageBytes as number,
      outboxMaxBytes: DEFAULTS.outboxMaxBytes as number,
    },
    input,
  );
  if (options.brokers.length === 0) throw ConfigError.forKey('brokers', 'a publisher needs at least one broker');
  const strangers = options.awaitSubscribers.filter((role) => !(SERVICE_ROLES as readonly string[]).includes(role));
  if (strangers.length > 0) {
    throw ConfigError.forKey('awaitSubscribers', `must name service roles (${SERVICE_ROLES.join(', ')})`, {
      awaitSubscribers: strangers,
    });
  }
  return options;
}
