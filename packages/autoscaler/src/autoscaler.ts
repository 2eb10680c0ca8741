import { closeAll, once } from '@faultline/core';
import { createPublisher, createSubscriber, type LinkState, type SubscriberCounters } from '@faultline/messaging';
import { allOf, TOPIC_ROOTS } from '@faultline/protocol';
import { AutoscalerCore } from './autoscaler-core.js';
import type { AutoscalerCounters, AutoscalerStatus } from './autoscaler-status.js';
import { type AutoscalerOptions, resolveAutoscalerOptions } from './options.js';

export interface Autoscaler {
  /** Opens the outbox, adopts from the registry, applies the rules, then subscribes. */
  start(): Promise<void>;
  /** Stops subscribing and deciding; never terminates members (a restart adopts them). Idempotent. */
  close(): Promise<void>;
  status(): AutoscalerStatus & {
    brokers: Record<string, LinkState>;
    outboxPending: number;
    /** What its subscriber counted: refused envelopes (`droppedInvalid`, …) never reach the core. */
    subscriber: Readonly<SubscriberCounters>;
  };
  readonly counters: Readonly<AutoscalerCounters>;
}

/** The autoscaler listens to the SP's summaries and faults and to the agents' instance status. */
export const AUTOSCALER_TOPICS = [allOf(TOPIC_ROOTS.summarizedHealthStats), allOf(TOPIC_ROOTS.instanceStatus)];

/**
 * The autoscaler service (README "Autoscaler"): the resilient subscriber on
 * both brokers → the cluster monitors → the Iaas, the registry, and the
 * durable publisher for `topology/` and `autoscaler/`.
 */
export function createAutoscaler(options: AutoscalerOptions): Autoscaler {
  const {
    brokers,
    credentials,
    outboxFile,
    clientId,
    pingIntervalMs,
    resubscribeIntervalMs,
    republishIntervalMs,
    outboxMaxBytes,
    maxMessageBytes,
    connector,
    ...coreOptions
  } = resolveAutoscalerOptions(options);
  const { clock, logger } = coreOptions;
  const publisher = createPublisher({
    brokers,
    credentials,
    clock,
    logger,
    connector,
    clientId: `${clientId}-pub`,
    outboxFile,
    republishIntervalMs,
    outboxMaxBytes,
  });
  const core = new AutoscalerCore({ ...coreOptions, publish: (envelope) => publisher.publish(envelope) });
  const subscriber = createSubscriber({
    brokers,
    credentials,
    clock,
    logger,
    connector,
    clientId,
    role: 'autoscaler',
    topics: AUTOSCALER_TOPICS,
    onEnvelope: (envelope) => core.handle(envelope),
    pingIntervalMs,
    resubscribeIntervalMs,
    maxMessageBytes,
    // The brokers keep its subscriptions, and queue what arrives, while it restarts or a link is down.
    persistentSession: true,
  });
  let started = false;

  return {
    start: async () => {
      started = true;
      await publisher.start();
      await core.start();
      // Subscribed last: every event finds its cluster's monitor with the adopted members in it.
      subscriber.start();
    },
    close: once(async () => {
      if (!started) return;
      // Subscriber first (no new events), then the core (what is under way finishes and is published), then the outbox.
      await closeAll([publisher, core, subscriber], logger);
    }),
    status: () => ({
      ...core.status(),
      brokers: subscriber.links(),
      outboxPending: publisher.pending,
      subscriber: { ...subscriber.counters },
    }),
    get counters() {
      return core.counters;
    },
  };
}
