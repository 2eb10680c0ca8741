import { createHmac, randomBytes } from 'node:crypto';
import { FaultlineError } from '@faultline/core';
import mqtt from 'mqtt';

/** One broker of the pair. */
export interface BrokerEndpoint {
  /** `a`, `b`: the name in logs and status. */
  name: string;
  host: string;
  port: number;
}

export interface Credentials {
  username: string;
  password: string;
}

/**
 * The narrow surface the resilient clients need from one MQTT connection
 * (nats.js' heartbeat depends on a three-method interface the same way), so
 * their timer logic is unit-tested against a fake and the real MQTT.js client
 * stays behind `mqttConnector`.
 */
export interface MqttConnection {
  readonly endpoint: BrokerEndpoint;
  /** QoS 1 resolves on PUBACK; rejects when the connection ends first. */
  publish(topic: string, payload: Buffer, qos: 0 | 1): Promise<void>;
  /** Subscribes at QoS 1; rejects when the broker refuses any filter (SUBACK 0x80). */
  subscribe(filters: readonly string[]): Promise<void>;
  onMessage(listener: (topic: string, payload: Buffer) => void): void;
  /** Called once when the connection ends, for whatever reason. */
  onClose(listener: (error?: Error) => void): void;
  /** Ends the connection at once; idempotent. */
  close(): void;
}

export interface ConnectOptions {
  /**
   * Unique per process and purpose; a random suffix is added so a restarted
   * process never kicks its old self. With `persistentSession` it is used as
   * is (see persistentClientId).
   */
  clientId: string;
  credentials: Credentials;
  /**
   * Connect with `clean: false` and the client id exactly as given, so the
   * broker keeps the session (its subscriptions, and the QoS 1 messages that
   * arrive while the client is away) and hands it back at the next connect.
   * @default false (clean session, random suffix)
   */
  persistentSession?: boolean;
  /** The MQTT Last Will: the broker publishes it (QoS 1, not retained) when the connection ends without DISCONNECT. */
  will?: { topic: string; payload: Buffer };
}

/** Longest client id every broker of ours takes (aedes' maxClientsIdLength, MQTT 3.1.1's minimum guarantee). */
export const MAX_CLIENT_ID_LENGTH = 23;
/** The readable prefix of a persistent client id; the rest is derived from the account's secret. */
const PERSISTENT_PREFIX_LENGTH = 10;

/**
 * The stable client id of a persistent session: the same on every connect of
 * the same account and `clientId` (so a restarted process resumes its
 * session), and unguessable without the account's password. A stable id that
 * anyone could guess would let any account (a member's agent) connect under it
 * and take the session over [MQTT-3.1.4-2]: kick the autoscaler off, and on
 * aedes, which restores a resumed session's subscriptions without asking the
 * ACL again, read what was queued for it. `<clientId, 10 chars>-<HMAC hex>`,
 * 23 characters at most.
 */
export function persistentClientId(clientId: string, credentials: Credentials): string {
  const prefix = clientId.slice(0, PERSISTENT_PREFIX_LENGTH);
  const mac = createHmac('sha256', credentials.password)
    .update(`faultline-session\u0000${credentials.username}\u0000${clientId}`)
    .digest('hex');
  return `${prefix}-${mac.slice(0, MAX_CLIENT_ID_LENGTH - prefix.length - 1)}`;
}

export type Connector = (endpoint: BrokerEndpoint, options: ConnectOptions) => Promise<MqttConnection>;

export class SubscribeRefusedError extends FaultlineError {
  constructor(broker: string, filters: readonly string[]) {
    super('FL_ERR_SUBSCRIBE_REFUSED', `broker ${broker} refused the subscription to ${filters.join(', ')}`, {
      context: { broker, filters },
    });
  }
}

export class ConnectionLostError extends FaultlineError {
  constructor(broker: string, cause?: unknown) {
    super('FL_ERR_CONNECTION_LOST', `connection to broker ${broker} ended`, { context: { broker }, cause });
  }
}

/** A ping was due while the link held no connection (it is closing or reconnecting). */
export class NotConnectedError extends FaultlineError {
  constructor(broker: string) {
    super('FL_ERR_CONNECTION_LOST', 'not connected', { context: { broker } });
  }
}

/** A broker did not complete a connect (and, for a subscriber, its subscribe) within the deadline. */
export class ConnectTimeoutError extends FaultlineError {
  constructor(broker: string, timeoutMs: number) {
    super('FL_ERR_CALL_TIMEOUT', `no answer within ${timeoutMs} ms`, { context: { broker, timeoutMs } });
  }
}

/**
 * MQTT.js' own CONNACK deadline. It never decides anything: the resilient
 * clients give up after their `connectTimeoutMs` first and close the attempt.
 */
const MQTT_CONNECT_TIMEOUT_MS = 30_000;

/** TLS of the MQTT clients (README "TLS"): the CA (PEM) every broker's certificate must chain to. */
export interface MqttClientTls {
  ca: Buffer | string;
}

/**
 * The real connector: MQTT.js 5 speaking MQTT 3.1.1 (aedes does not speak 5),
 * clean sessions unless `persistentSession`, and none of MQTT.js' own recovery: no automatic reconnect,
 * no keepalive timer, no offline queue. Liveness (ping), reconnect and resend
 * are the resilient clients' job, on the injected Clock, because MQTT.js'
 * offline queue dies with the process and its reconnect runs on global timers.
 */
export const mqttConnector: Connector = (endpoint, options) => connectMqtt(endpoint, options, undefined);

/**
 * The real connector over TLS (`mqtts`): each broker's certificate must chain
 * to `tls.ca` and name the host dialled, or the connection is refused.
 */
export function mqttTlsConnector(tls: MqttClientTls): Connector {
  return (endpoint, options) => connectMqtt(endpoint, options, tls);
}

/** `mqttTlsConnector` when the CA is given, else `mqttConnector` (plain TCP, the default). */
export function mqttConnectorFor(tls: MqttClientTls | undefined): Connector {
  return tls ? mqttTlsConnector(tls) : mqttConnector;
}

function connectMqtt(endpoint: BrokerEndpoint, options: ConnectOptions, tls: MqttClientTls | undefined) {
  return new Promise<MqttConnection>((resolve, reject) => {
    const client = mqtt.connect({
      host: endpoint.host,
      port: endpoint.port,
      ...(tls ? { protocol: 'mqtts' as const, ca: tls.ca, rejectUnauthorized: true } : { protocol: 'mqtt' as const }),
      protocolVersion: 4,
      clientId: options.persistentSession ? options.clientId : `${options.clientId}-${randomBytes(3).toString('hex')}`,
      username: options.credentials.username,
      password: options.credentials.password,
      clean: options.persistentSession !== true,
      ...(options.will
        ? { will: { topic: options.will.topic, payload: options.will.payload, qos: 1, retain: false } }
        : {}),
      reconnectPeriod: 0,
      keepalive: 0,
      resubscribe: false,
      queueQoSZero: false,
      connectTimeout: MQTT_CONNECT_TIMEOUT_MS,
    });
    let opened = false;
    let closed = false;
    const closeListeners: ((error?: Error) => void)[] = [];
    const messageListeners: ((topic: string, payload: Buffer) => void)[] = [];
    // A resumed session's queued messages can arrive with the CONNACK, before
    // anyone listens; MQTT.js acknowledges them regardless, so they are held
    // here until the first listener (set right after connect) takes them.
    let early: [string, Buffer][] | undefined = [];
    const pending = new Set<(error: Error) => void>();
    let lastError: Error | undefined;

    const finish = (): void => {
      if (closed) return;
      closed = true;
      const error = new ConnectionLostError(endpoint.name, lastError);
      for (const fail of pending) fail(error);
      pending.clear();
      if (!opened) reject(lastError ?? error);
      else for (const listener of closeListeners) listener(lastError);
    };
    // Always listen for 'error': MQTT.js emits it for refused CONNACKs and socket errors.
    client.on('error', (error) => {
      lastError = error;
      if (!opened) client.end(true);
    });
    client.on('close', finish);
    client.on('message', (topic, payload) => {
      if (early) early.push([topic, payload]);
      else for (const listener of messageListeners) listener(topic, payload);
    });
    client.once('connect', () => {
      opened = true;
      resolve(connection);
    });

    const connection: MqttConnection = {
      endpoint,
      publish: (topic, payload, qos) =>
        new Promise<void>((done, fail) => {
          if (closed) {
            fail(new ConnectionLostError(endpoint.name));
            return;
          }
          pending.add(fail);
          client.publish(topic, payload, { qos }, (error) => {
            pending.delete(fail);
            if (error) fail(error);
            else done();
          });
        }),
      subscribe: (filters) =>
        new Promise<void>((done, fail) => {
          if (closed) {
            fail(new ConnectionLostError(endpoint.name));
            return;
          }
          pending.add(fail);
          client.subscribe([...filters], { qos: 1 }, (error, granted) => {
            pending.delete(fail);
            if (error) fail(error);
            // [MQTT-3.9.3-2] return code 0x80 marks a refused filter.
            else if (granted?.some((g) => g.qos === 128)) fail(new SubscribeRefusedError(endpoint.name, filters));
            else done();
          });
        }),
      onMessage: (listener) => {
        messageListeners.push(listener);
        const held = early;
        early = undefined;
        for (const [topic, payload] of held ?? []) listener(topic, payload);
      },
      onClose: (listener) => {
        closeListeners.push(listener);
      },
      close: () => {
        client.end(true);
        finish();
      },
    };
  });
}
