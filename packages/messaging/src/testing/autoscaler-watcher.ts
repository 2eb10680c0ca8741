import { CLIENT_IDS, type Envelope } from '@faultline/protocol';
import type { BrokerEndpoint } from '../connection.js';
import { createSubscriber, type Subscriber } from '../subscriber.js';

export interface AutoscalerWatcherOptions {
  brokers: BrokerEndpoint[];
  /** The broker account of role `autoscaler`. */
  credentials: { username: string; password: string };
  topics: string[];
  onEnvelope: (envelope: Envelope) => void;
}

/**
 * A started subscriber that stands in for the autoscaler on a real broker
 * pair: role and client id `autoscaler` (so the SP's publisher sends to it),
 * pinging every 200 ms and resubscribing every 500 ms (test timings, passed,
 * not defaults).
 */
export function watchAsAutoscaler(options: AutoscalerWatcherOptions): Subscriber {
  const subscriber = createSubscriber({
    ...options,
    role: 'autoscaler',
    clientId: CLIENT_IDS.autoscaler,
    pingIntervalMs: 200,
    resubscribeIntervalMs: 500,
  });
  subscriber.start();
  return subscriber;
}
