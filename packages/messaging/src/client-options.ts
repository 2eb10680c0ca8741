import { type Clock, type Logger, nullLogger, systemClock } from '@faultline/core';
import { type BrokerEndpoint, type Connector, type Credentials, mqttConnector } from './connection.js';

/** What the publisher and the subscriber both take: the brokers, who connects, and the injected clock, logger and connector. */
export interface ClientOptions {
  brokers: readonly BrokerEndpoint[];
  credentials: Credentials;
  /** Prefix of the MQTT client ids; a random suffix makes each connection's id unique. */
  clientId: string;
  /** A broker that has not connected (a subscriber: and subscribed) by then counts as failed. @default 5_000 */
  connectTimeoutMs?: number;
  /** @default systemClock */
  clock?: Clock;
  /** @default nullLogger */
  logger?: Logger;
  /** @default mqttConnector (MQTT.js) */
  connector?: Connector;
}

/** The defaults of the optional ClientOptions, for the publisher's and the subscriber's `withDefaults`. */
export const CLIENT_DEFAULTS: Required<Pick<ClientOptions, 'connectTimeoutMs' | 'clock' | 'logger' | 'connector'>> = {
  connectTimeoutMs: 5_000,
  clock: systemClock,
  logger: nullLogger,
  connector: mqttConnector,
};
