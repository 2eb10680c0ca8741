export type { LinkState } from './broker-link.js';
export type { ClientOptions } from './client-options.js';
export {
  type BrokerEndpoint,
  ConnectionLostError,
  type ConnectOptions,
  type Connector,
  ConnectTimeoutError,
  type Credentials,
  type MqttClientTls,
  type MqttConnection,
  mqttConnector,
  mqttConnectorFor,
  mqttTlsConnector,
  persistentClientId,
  SubscribeRefusedError,
} from './connection.js';
export { DedupeWindow } from './envelope-dedupe.js';
export type { MessagingStatus, PublisherCounters, StatusListener, SubscriberCounters } from './messaging-status.js';
export { linkSeries, messagingMetrics } from './metrics.js';
export { type AppendOptions, Outbox, type OutboxCounters, type OutboxEntry } from './outbox.js';
export {
  type OutboxFileHandle,
  type OutboxFileSystem,
  OutboxFullError,
  OutboxWriteError,
} from './outbox-file.js';
export type { OutboxOptions, StreamOf } from './outbox-options.js';
export { type Pinger, PingMonitor, type PingMonitorOptions } from './ping-monitor.js';
export {
  createPublisher,
  NotStartedError,
  type Publisher,
  type PublisherState,
  type PublishOptions,
} from './publisher.js';
export type { PublisherOptions } from './publisher-options.js';
export { supersededStream } from './publisher-streams.js';
export { createSubscriber, type Subscriber } from './subscriber.js';
export type { EnvelopeMeta, SubscriberOptions } from './subscriber-options.js';
