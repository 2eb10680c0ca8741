import { type Clock, DEFAULTS, type Logger, nullLogger, once, systemClock, withDefaults } from '@faultline/core';
import { decodeEnvelope, type Envelope } from '@faultline/protocol';
import { BrokerLink, type LinkState } from './broker-link.js';
import { type BrokerEndpoint, type Connector, type Credentials, mqttConnector } from './connection.js';
import { DedupeWindow } from './dedupe.js';
import type { MessagingStatus, StatusListener, SubscriberCounters } from './status.js';

export interface EnvelopeMeta {
  /** The broker it arrived through first. */
  broker: string;
  topic: string;
}

export interface SubscriberOptions {
  /** The broker pair (or one broker). A link is held to every one at once. */
  brokers: readonly BrokerEndpoint[];
  credentials: Credentials;
  /** Prefix of the MQTT client ids, e.g. `autoscaler`. */
  clientId: string;
  /** Topic filters, e.g. `summarized-health-stats/#`. */
  topics: readonly string[];
  /** Receives every valid envelope once, whichever broker brought it. */
  onEnvelope: (envelope: Envelope, meta: EnvelopeMeta) => void | Promise<void>;
  /** @default DEFAULTS.pingIntervalMs (1 000, the seed) */
  pingIntervalMs?: number;
  /** @default DEFAULTS.resubscribeIntervalMs (30 000, the seed) */
  resubscribeIntervalMs?: number;
  /** A connect + subscribe that takes longer counts as failed. @default 5_000 */
  connectTimeoutMs?: number;
  /** @default DEFAULTS.maxMessageBytes (64 KiB) */
  maxMessageBytes?: number;
  /** Envelope ids remembered for dedupe. @default 100_000 */
  dedupeCapacity?: number;
  /** @default systemClock */
  clock?: Clock;
  /** @default nullLogger */
  logger?: Logger;
  /** @default mqttConnector (MQTT.js) */
  connector?: Connector;
}

type ResolvedSubscriberOptions = Required<SubscriberOptions>;

function addDefaults(options: SubscriberOptions): ResolvedSubscriberOptions {
  return withDefaults(
    {
      pingIntervalMs: DEFAULTS.pingIntervalMs as number,
      resubscribeIntervalMs: DEFAULTS.resubscribeIntervalMs as number,
      connectTimeoutMs: 5_000,
      maxMessageBytes: DEFAULTS.maxMessageBytes as number,
      dedupeCapacity: 100_000,
      clock: systemClock,
      logger: nullLogger,
      connector: mqttConnector,
    },
    options,
  );
}

export interface Subscriber {
  start(): void;
  close(): Promise<void>;
  readonly counters: Readonly<SubscriberCounters>;
  /** State of the link to each broker, by name. */
  links(): Record<string, LinkState>;
  onStatus(listener: StatusListener): void;
}

/**
 * The resilient subscriber of DESIGN.md: holds every broker of the pair at
 * once, validates each payload, and delivers each envelope id once. Losing
 * one broker loses nothing, not even in the failover window, because the
 * other link was already subscribed when the publisher switched over.
 */
export function createSubscriber(input: SubscriberOptions): Subscriber {
  const options = addDefaults(input);
  const log = options.logger.child({ component: 'subscriber' });
  const dedupe = new DedupeWindow(options.dedupeCapacity);
  const listeners: StatusListener[] = [];
  const counters: SubscriberCounters = {
    received: 0,
    delivered: 0,
    duplicates: 0,
    droppedInvalid: 0,
    droppedOversized: 0,
    handlerErrors: 0,
    pingsSent: 0,
  };
  const emit = (status: MessagingStatus): void => {
    for (const listener of listeners) listener(status);
  };

  const onMessage = (topic: string, payload: Buffer, broker: string): void => {
    counters.received += 1;
    const decoded = decodeEnvelope(payload, { topic, maxBytes: options.maxMessageBytes });
    if (!decoded.ok) {
      if (decoded.error.code === 'FL_ERR_ENVELOPE_TOO_LARGE') counters.droppedOversized += 1;
      else counters.droppedInvalid += 1;
      log.warn('message dropped', { broker, topic, code: decoded.error.code, reason: decoded.error.message });
      return;
    }
    const envelope = decoded.value;
    if (dedupe.seen(envelope.id)) {
      counters.duplicates += 1;
      return;
    }
    counters.delivered += 1;
    try {
      const result = options.onEnvelope(envelope, { broker, topic });
      if (result instanceof Promise) {
        result.catch((error: unknown) => {
          counters.handlerErrors += 1;
          log.error('envelope handler failed', { id: envelope.id, type: envelope.type, error });
        });
      }
    } catch (error) {
      counters.handlerErrors += 1;
      log.error('envelope handler failed', { id: envelope.id, type: envelope.type, error });
    }
  };

  const links = options.brokers.map(
    (endpoint) =>
      new BrokerLink({
        endpoint,
        connector: options.connector,
        clientId: options.clientId,
        credentials: options.credentials,
        filters: options.topics,
        clock: options.clock,
        logger: log,
        pingIntervalMs: options.pingIntervalMs,
        resubscribeIntervalMs: options.resubscribeIntervalMs,
        connectTimeoutMs: options.connectTimeoutMs,
        onMessage,
        onStatus: emit,
        onPing: () => {
          counters.pingsSent += 1;
        },
      }),
  );

  return {
    start: () => {
      for (const link of links) link.start();
    },
    close: once(async () => {
      for (const link of links) link.close();
    }),
    counters,
    links: () => Object.fromEntries(links.map((link) => [link.broker, link.state])),
    onStatus: (listener) => {
      listeners.push(listener);
    },
  };
}
