import { closeAll, once } from '@faultline/core';
import {
  type BrokerEndpoint,
  type Connector,
  type Credentials,
  createPublisher,
  createSubscriber,
  type LinkState,
} from '@faultline/messaging';
import { allOf, TOPIC_ROOTS } from '@faultline/protocol';
import { AutoscalerCore, type AutoscalerCoreOptions } from './core.js';
import { AUTOSCALER_CLIENT_ID } from './settings.js';
import type { AutoscalerCounters, AutoscalerStatus } from './status.js';

export interface AutoscalerOptions extends Omit<AutoscalerCoreOptions, 'publish'> {
  /** The broker pair: the subscriber holds both, the publisher fails over between them. */
  brokers: readonly BrokerEndpoint[];
  /** The broker account of role `autoscaler`. */
  credentials: Credentials;
  /** The durable outbox of the `topology/` and `autoscaler/` messages. */
  outboxFile: string;
  /**
   * The subscriber's client id. The SP's and the agents' publishers send only
   * while a subscriber of this id is present on a broker.
   * @default 'autoscaler'
   */
  clientId?: string;
  /** @default DEFAULTS.pingIntervalMs (1 000) */
  pingIntervalMs?: number;
  /** @default DEFAULTS.resubscribeIntervalMs (30 000) */
  resubscribeIntervalMs?: number;
  /** @default DEFAULTS.republishIntervalMs (60 000) */
  republishIntervalMs?: number;
  /** @default DEFAULTS.maxMessageBytes */
  maxMessageBytes?: number;
  /** @default MQTT.js; FakeBrokers' connector in unit tests */
  connector?: Connector;
}

export interface Autoscaler {
  /** Opens the outbox, adopts from the registry, applies the rules, then subscribes. */
  start(): Promise<void>;
  /** Stops subscribing and deciding; never terminates members (a restart adopts them). Idempotent. */
  close(): Promise<void>;
  status(): AutoscalerStatus & { brokers: Record<string, LinkState>; outboxPending: number };
  readonly counters: Readonly<AutoscalerCounters>;
}

/** The autoscaler listens to the SP's summaries and faults and to the agents' instance status. */
export const AUTOSCALER_TOPICS = [allOf(TOPIC_ROOTS.summarizedHealthStats), allOf(TOPIC_ROOTS.instanceStatus)];

/**
 * The autoscaler service (DESIGN.md "Autoscaler"): the resilient subscriber
 * on both brokers → the cluster monitors → the Iaas, the registry, and the
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
    maxMessageBytes,
    connector,
    ...coreOptions
  } = options;
  const logger = options.logger;
  const shared = {
    brokers,
    credentials,
    ...(options.clock ? { clock: options.clock } : {}),
    ...(logger ? { logger } : {}),
    ...(connector ? { connector } : {}),
  };
  const publisher = createPublisher({
    ...shared,
    clientId: `${clientId ?? AUTOSCALER_CLIENT_ID}-pub`,
    outboxFile,
    ...(republishIntervalMs === undefined ? {} : { republishIntervalMs }),
  });
  const core = new AutoscalerCore({ ...coreOptions, publish: (envelope) => publisher.publish(envelope) });
  const subscriber = createSubscriber({
    ...shared,
    clientId: clientId ?? AUTOSCALER_CLIENT_ID,
    topics: AUTOSCALER_TOPICS,
    onEnvelope: (envelope) => core.handle(envelope),
    ...(pingIntervalMs === undefined ? {} : { pingIntervalMs }),
    ...(resubscribeIntervalMs === undefined ? {} : { resubscribeIntervalMs }),
    ...(maxMessageBytes === undefined ? {} : { maxMessageBytes }),
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
    status: () => ({ ...core.status(), brokers: subscriber.links(), outboxPending: publisher.pending }),
    get counters() {
      return core.counters;
    },
  };
}
