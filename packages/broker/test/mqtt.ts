// MQTT.js helpers for the broker integration tests: MQTT 3.1.1, no automatic
// reconnect (a refused or dropped connection must stay visible to the test),
// and an 'error' listener on every client, as MQTT.js requires.
import { randomUUID } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import { vi } from 'vitest';

export interface Credentials {
  username: string;
  password: string;
}

export interface TestClient {
  readonly mqtt: MqttClient;
  /** Messages received so far, payloads as strings. */
  readonly received: { topic: string; payload: string }[];
  /** Errors the client emitted after connecting. */
  readonly errors: Error[];
  /** Resolves when the connection closes. */
  readonly closed: Promise<void>;
  /** Waits until a message with this payload arrived. */
  waitFor(payload: string, timeoutMs?: number): Promise<void>;
  /** SUBSCRIBE at QoS 1; resolves with the SUBACK return codes, failures (0x80) included. */
  subscribe(...filters: string[]): Promise<number[]>;
  end(): Promise<void>;
}

function options(credentials: Credentials | undefined): mqtt.IClientOptions {
  return {
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 5_000,
    clean: true,
    clientId: `test-${randomUUID().slice(0, 8)}`,
    ...(credentials ?? {}),
  };
}

/** Connects, or rejects with MQTT.js's error whose `code` is the CONNACK return code. */
export function connect(url: string, credentials?: Credentials): Promise<TestClient> {
  const client = mqtt.connect(url, options(credentials));
  const received: { topic: string; payload: string }[] = [];
  const errors: Error[] = [];
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
  client.on('message', (topic, payload) => received.push({ topic, payload: payload.toString('utf8') }));
  return new Promise((resolve, reject) => {
    client.once('connect', () => {
      client.on('error', (error) => errors.push(error));
      resolve({
        mqtt: client,
        received,
        errors,
        closed,
        waitFor: (payload, timeoutMs = 5_000) =>
          vi.waitFor(
            () => {
              if (!received.some((message) => message.payload === payload)) throw new Error(`no ${payload} yet`);
            },
            { timeout: timeoutMs, interval: 10 },
          ),
        subscribe: (...filters) =>
          new Promise((done, fail) => {
            client.subscribe(filters, { qos: 1 }, (error, granted) => {
              const suback = (error as (Error & { packet?: { granted?: number[] } }) | null)?.packet?.granted;
              if (suback) return done(suback);
              if (error) return fail(error);
              done((granted ?? []).map((grant) => grant.qos));
            });
          }),
        end: async () => {
          await client.endAsync(true);
        },
      });
    });
    client.once('error', (error) => {
      client.end(true);
      reject(error);
    });
  });
}

/** Connects expecting a refusal; resolves with the CONNACK return code. */
export async function connackRefusal(url: string, credentials?: Credentials): Promise<number> {
  try {
    const client = await connect(url, credentials);
    await client.end();
  } catch (error) {
    return (error as { code?: number }).code ?? -1;
  }
  throw new Error('the connection was accepted');
}

/** A payload no other test sends. */
export function unique(label: string): string {
  return `${label}-${randomUUID()}`;
}
