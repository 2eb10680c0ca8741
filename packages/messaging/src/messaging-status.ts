/**
 * What the resilient clients report, as one tagged union (nats.js' status
 * events are the model). Every event is also one log line.
 */
export type MessagingStatus =
  /** First connection to a broker (subscriber: with its subscriptions). */
  | { type: 'connected'; broker: string }
  /** A broker stopped answering (failed or late ping, closed connection, no PUBACK). */
  | { type: 'broker-down'; broker: string; reason: string }
  /** A reconnect attempt failed; the next one is in `retryInMs`. */
  | { type: 'reconnect-failed'; broker: string; reason: string; retryInMs: number }
  /** Subscriber: connected again with every subscription restored. */
  | { type: 'resubscribed'; broker: string }
  /** Publisher: resent `count` outbox messages after a (re)connection. */
  | { type: 'republished'; broker: string; count: number }
  /** Publisher: found `count` unsent messages in its outbox at start (a restart after a crash). */
  | { type: 'outbox-recovered'; count: number };

export type StatusListener = (status: MessagingStatus) => void;

/** Subscriber counters. */
export interface SubscriberCounters {
  /** Messages received from any broker (before validation and dedupe). */
  received: number;
  /** Envelopes handed to the application, each (topic root, id) once. */
  delivered: number;
  /** Envelopes already delivered (second broker, republish). */
  duplicates: number;
  /** Payloads that were not valid envelopes for their topic. */
  droppedInvalid: number;
  /** Payloads larger than maxMessageBytes. */
  droppedOversized: number;
  /** The application's handler threw or rejected. */
  handlerErrors: number;
  /** Pings sent, the announcements included. */
  pingsSent: number;
  /** Pings sent at once besides the regular ones: on each (re)subscription, and answering presence asks. */
  announcements: number;
  /** Presence asks received (`presence/<role>/+`): publishers that (re)connected and want a ping now. */
  asks: number;
  /** Of those, asks that got no answer of their own: an answer already due covers them (the rate limit). */
  asksThrottled: number;
  /** Presence asks dropped as malformed (topic or payload). */
  asksInvalid: number;
}

/** Publisher counters. */
export interface PublisherCounters {
  /** Envelopes accepted into the outbox. */
  published: number;
  /** publish() of a fact (a MemberFault, an action) whose id already waits in the outbox: nothing written again. */
  repeatsWaiting: number;
  /** PUBLISH packets written (first sends and resends). */
  sent: number;
  /** Messages acknowledged by a broker and removed from the outbox. */
  acked: number;
  /** Resends after a failover, a reconnect or a restart. */
  retried: number;
  /** Already acknowledged, resent after their broker was lost (it may not have delivered them). */
  replayed: number;
  /** Envelopes refused before entering the outbox (invalid). */
  droppedInvalid: number;
  /** Envelopes refused before entering the outbox: encoded, larger than maxMessageBytes. */
  droppedOversized: number;
  /** Payloads on an awaited role's ping topic that were no ping (malformed, or a `gone` without its subscription). */
  pingsInvalid: number;
  /** Presence asks sent: one per awaited role on each (re)connection, so its subscribers there ping at once. */
  asksSent: number;
  /** Summaries superseded in the outbox by a newer one of their stream before they were sent (OutboxCounters). */
  coalesced: number;
  /** Summaries dropped, oldest first, to keep the outbox within `outboxMaxBytes`. */
  droppedOverflow: number;
  /** publish() refused with FL_ERR_OUTBOX_FULL: a summary with only precious records left, anything past twice the bound (held, or waiting for the disk). */
  refusedOverflow: number;
  /** Outbox writes that failed or were short (publish() rejected with FL_ERR_OUTBOX_WRITE_FAILED). */
  writeFailed: number;
  /** Outbox compactions that failed (retried later; the outbox keeps working). */
  compactionsFailed: number;
  /** Outbox records skipped at start-up (unreadable, malformed, oversized) and torn last records. */
  corruptRecords: number;
}
