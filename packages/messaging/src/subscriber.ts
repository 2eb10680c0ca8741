import { once } from '@faultline/core';
import { decodeEnvelope, type Envelope } from '@faultline/protocol';
import { BrokerLink, type LinkState } from './broker-link.js';
import { DedupeWindow } from './envelope-dedupe.js';
import type { MessagingStatus, StatusListener, SubscriberCounters } from './messaging-status.js';
import { resolveSubscriberOptions, type SubscriberOptions } from './subscriber-options.js';

export interface Subscriber {
  start(): void;
  close(): Promise<void>;
  readonly counters: Readonly<SubscriberCounters>;
  /** State of the link to each broker, by name. */
  links(): Record<string, LinkState>;
  onStatus(listener: StatusListener): void;
}

/**
 * The resilient subscriber (README, "Message broker pair and resilient
 * clients"): holds every broker of the pair at once, validates each payload,
 * and delivers each envelope id once. Losing one broker loses nothing, not
 * even in the failover window, because the other link was already subscribed
 * when the publisher switched over.
 */
export function createSubscriber(input: SubscriberOptions): Subscriber {
  const options = resolveSubscriberOptions(input);
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
      log.warn('message dropped', {
        event: 'subscriber.message_dropped',
        broker,
        topic,
        code: decoded.error.code,
        reason: decoded.error.message,
      });
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
      if (result instanceof Promise) result.catch((error: unknown) => handlerFailed(envelope, error));
    } catch (error) {
      handlerFailed(envelope, error);
    }
  };

  const handlerFailed = (envelope: Envelope, error: unknown): void => {
    counters.handlerErrors += 1;
    log.error('envelope handler failed', {
      event: 'subscriber.handler_failed',
      id: envelope.id,
      type: envelope.type,
      error,
    });
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
