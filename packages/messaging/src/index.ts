export type { LinkState } from './broker-link.js';
export {
  type BrokerEndpoint,
  ConnectionLostError,
  type ConnectOptions,
  type Connector,
  type Credentials,
  type MqttConnection,
  mqttConnector,
  SubscribeRefusedError,
} from './connection.js';
export { DedupeWindow } from './dedupe.js';
export { type FakeBrokerMode, FakeBrokers } from './fake-broker.js';
export { Outbox, type OutboxEntry, type OutboxOptions } from './outbox.js';
export { type Pinger, PingMonitor, type PingMonitorOptions } from './ping-monitor.js';
export { createPublisher, type Publisher, type PublisherOptions, type PublisherState } from './publisher.js';
export type { MessagingStatus, PublisherCounters, StatusListener, SubscriberCounters } from './status.js';
export { createSubscriber, type EnvelopeMeta, type Subscriber, type SubscriberOptions } from './subscriber.js';
export { numberedFault } from './test-envelopes.js';
