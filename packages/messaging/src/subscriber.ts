import { once, RateLimitedLog } from '@faultline/core';
import { decodeEnvelope, type Envelope, rootOf, TOPIC_ROOTS } from '@faultline/protocol';
import { type AskEvent, BrokerLink, type LinkState } from './broker-link.js';
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
  // Bad input is logged at most once per 10 s per broker, root and error code.
  const dropLog = new RateLimitedLog(log, options.clock);
  const listeners: StatusListener[] = [];
  const counters: SubscriberCounters = {
    received: 0,
    delivered: 0,
    duplicates: 0,
    droppedInvalid: 0,
    droppedOversized: 0,
    handlerErrors: 0,
    pingsSent: 0,
    announcements: 0,
    asks: 0,
    asksThrottled: 0,
    asksInvalid: 0,
  };
  const emit = (status: MessagingStatus): void => {
    for (const listener of listeners) listener(status);
  };

  const onMessage = (topic: string, payload: Buffer, broker: string): void => {
    counters.received += 1;
    const decoded = decodeEnvelope(payload, { topic, maxBytes: options.maxMessageBytes });
    if (!decoded.ok) {
      const { code, message } = decoded.error;
      if (code === 'FL_ERR_ENVELOPE_TOO_LARGE') counters.droppedOversized += 1;
      else counters.droppedInvalid += 1;
      // Who published is not known to a subscriber; the root is (the ACL gives each root one role).
      const root = knownRootOf(topic);
      dropLog.warn(`${broker} ${root}`, code, 'message dropped', {
        event: 'subscriber.message_dropped',
        broker,
        root,
        topic: topic.slice(0, MAX_LOGGED_TOPIC),
        code,
        detail: message,
      });
      return;
    }
    const envelope = decoded.value;
    if (dedupe.seen(rootOf(envelope.type), envelope.id)) {
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

  /** Presence asks: counted; a malformed one, and the rate limit at work, logged at most once per 10 s per broker. */
  const onAsk = (ask: AskEvent): void => {
    const { broker, asker, topic, bytes, minGapMs } = ask;
    if (ask.outcome === 'invalid') {
      counters.asksInvalid += 1;
      dropLog.warn(`${broker} ask`, 'ask invalid', 'presence ask dropped', {
        event: 'subscriber.ask_invalid',
        broker,
        topic,
        bytes,
        asksInvalid: counters.asksInvalid,
      });
      return;
    }
    counters.asks += 1;
    if (ask.outcome !== 'coalesced') return;
    counters.asksThrottled += 1;
    dropLog.warn(`${broker} ask`, 'asks throttled', 'presence asks throttled: the answer already due covers them', {
      event: 'subscriber.asks_throttled',
      broker,
      asker,
      minGapMs,
      asks: counters.asks,
      asksThrottled: counters.asksThrottled,
    });
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
        role: options.role,
        credentials: options.credentials,
        filters: options.topics,
        clock: options.clock,
        logger: log,
        pingIntervalMs: options.pingIntervalMs,
        resubscribeIntervalMs: options.resubscribeIntervalMs,
        connectTimeoutMs: options.connectTimeoutMs,
        persistentSession: options.persistentSession,
        onMessage,
        onStatus: emit,
        onPing: () => {
          counters.pingsSent += 1;
        },
        onAnnounce: () => {
          counters.pingsSent += 1;
          counters.announcements += 1;
        },
        onAsk,
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

/** A topic in a log field: a peer chose it. */
const MAX_LOGGED_TOPIC = 256;

const ROOTS: readonly string[] = Object.values(TOPIC_ROOTS);

/** The topic's root when it is one of ours, else `other`: a bounded set, fit for a log-limit key. */
function knownRootOf(topic: string): string {
  return ROOTS.find((root) => topic.startsWith(`${root}/`)) ?? 'other';
}
