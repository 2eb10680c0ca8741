import { type Logger, nullLogger, withDefaults } from '@faultline/core';
import {
  connectHealthStat,
  type Endpoint,
  fromAckWire,
  type HealthStatConnection,
  thriftGenerated,
  toBatchWire,
} from '@faultline/protocol';
import type { BatchTransport } from './batch-sender.js';

export interface ThriftTransportOptions {
  /** @default protocol's connectHealthStat default (2 000) */
  connectTimeoutMs?: number;
  /** @default nullLogger */
  logger?: Logger;
  /** The CA (PEM) the SP's certificate must chain to: connections are TLS (`tls.thrift`). @default undefined (plain TCP) */
  ca?: Buffer | string;
}

const keyOf = (endpoint: Endpoint) => `${endpoint.host}:${endpoint.port}`;

/**
 * The batch sender's wire: one framed/binary Thrift connection per SP
 * endpoint (protocol's `connectHealthStat`), opened on first use and dropped
 * on any error so the next publish reconnects. The runtime keeps a call
 * pending forever when its connection dies; the sender's call timeout is what
 * ends it, and `reset()` then drops the connection.
 */
export function thriftTransport(input: ThriftTransportOptions = {}): BatchTransport {
  const { connectTimeoutMs, logger, ca } = withDefaults({ logger: nullLogger }, input);
  const log = logger.child({ component: 'thrift-transport' });
  const connections = new Map<string, HealthStatConnection>();
  /** Keys of the connections that are up (the others are still connecting). */
  const open = new Set<string>();

  const drop = (key: string, connection?: HealthStatConnection): void => {
    const current = connections.get(key);
    if (!current || (connection && current !== connection)) return;
    connections.delete(key);
    open.delete(key);
    current.close();
  };

  const connectionFor = (endpoint: Endpoint): HealthStatConnection => {
    const key = keyOf(endpoint);
    let connection = connections.get(key);
    if (!connection) {
      const opened = connectHealthStat(endpoint.host, endpoint.port, {
        connectTimeoutMs,
        ...(ca === undefined ? {} : { tls: { ca } }),
      });
      opened.onError((error) => {
        log.debug('SP connection failed', { event: 'thrift_transport.connection_failed', endpoint: key, error });
        drop(key, opened);
      });
      // Closed between calls (the SP's idle timeout): the next publish reconnects instead of failing over.
      opened.onClose(() => drop(key, opened));
      connections.set(key, opened);
      // A failed connect is publish()'s to handle; here only whether it came up.
      opened.ready.then(
        () => {
          if (connections.get(key) === opened) open.add(key);
        },
        () => {},
      );
      connection = opened;
    }
    return connection;
  };

  return {
    publish: async (endpoint, batch) => {
      const key = keyOf(endpoint);
      const connection = connectionFor(endpoint);
      try {
        await connection.ready;
        const ack = await connection.client.publish(toBatchWire(batch));
        return { type: 'ack', ack: fromAckWire(ack) };
      } catch (error) {
        // Declared exceptions arrive as instances of the generated classes; the connection stays good.
        if (error instanceof thriftGenerated.NotActive) {
          return { type: 'not-active', reason: `${error.message}${error.nodeId ? ` (${error.nodeId})` : ''}` };
        }
        if (error instanceof thriftGenerated.InvalidBatch) return { type: 'invalid', reason: error.message };
        drop(key, connection);
        throw error;
      }
    },
    reset: (endpoint) => drop(keyOf(endpoint)),
    connections: () =>
      Object.fromEntries([...connections.keys()].map((key) => [key, open.has(key) ? 'open' : 'connecting'] as const)),
    close: () => {
      for (const key of [...connections.keys()]) drop(key);
    },
  };
}
