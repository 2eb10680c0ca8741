import { DEFAULTS, withDefaults } from '@faultline/core';
import type { Envelope } from '@faultline/protocol';
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
  /** Prefix of the MQTT client ids, e.g. `autoscaler` (what a publisher's `awaitSubscribers` names). */
  clientId: string;
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
}

export type ResolvedSubscriberOptions = Required<SubscriberOptions>;

export function resolveSubscriberOptions(input: SubscriberOptions): ResolvedSubscriberOptions {
  return withDefaults(
    {
      ...CLIENT_DEFAULTS,
      pingIntervalMs: DEFAULTS.pingIntervalMs as number,
      resubscribeIntervalMs: DEFAULTS.resubscribeIntervalMs as number,
      maxMessageBytes: DEFAULTS.maxMessageBytes as number,
      dedupeCapacity: 100_000,
    },
    input,
  );
}
