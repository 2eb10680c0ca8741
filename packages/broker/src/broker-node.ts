import type { EventEmitter } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { once } from '@faultline/core';
import { MemberCredentialVerifier } from '@faultline/protocol';
import { Aedes } from 'aedes';
import { type BrokerCounters, createAccessControl, emptyCounters } from './access.js';
import { type BrokerNodeOptions, resolveBrokerNodeOptions } from './broker-node-options.js';
import { UserTable } from './users.js';

/** One running MQTT 3.1.1 broker node. */
export interface BrokerNode {
  readonly name: string;
  readonly host: string;
  /** The port actually listened on (the OS's choice when `port` was 0). */
  readonly port: number;
  /** Live counters; read them, do not write them. */
  readonly counters: Readonly<BrokerCounters>;
  /** Number of clients connected now. */
  connectedClients(): number;
  /** Stops listening, disconnects every client, clears aedes' timers. Idempotent. */
  close(): Promise<void>;
}

function listen(server: net.Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

/**
 * Starts one aedes broker node on TCP with Faultline's authentication and ACL
 * (README, "Message broker pair and resilient clients"). The pair is two
 * independent nodes: no bridging, clients hold a connection to each and
 * dedupe by topic root and envelope id.
 */
export async function createBrokerNode(input: BrokerNodeOptions = {}): Promise<BrokerNode> {
  const options = resolveBrokerNodeOptions(input);
  const log = options.logger.child({ broker: options.name });
  const users = new UserTable(options.users);
  const counters = emptyCounters();
  const access = createAccessControl(users, log, counters, {
    clock: options.clock,
    ...(options.memberKey ? { members: new MemberCredentialVerifier(options.memberKey) } : {}),
  });

  const aedes = await Aedes.createBroker({
    id: `faultline-${options.name}`,
    authenticate: access.authenticate,
    authorizePublish: access.authorizePublish,
    authorizeSubscribe: access.authorizeSubscribe,
  });
  // 'client' fires when aedes registers the session, before it writes CONNACK
  // 0, so the count is settled by the time the client sees its connection.
  aedes.on('client', (client) => {
    counters.connections += 1;
    log.info('client connected', {
      event: 'broker.client_connected',
      clientId: client.id,
      role: access.roleOf(client),
    });
  });
  aedes.on('clientDisconnect', (client) => {
    log.info('client disconnected', {
      event: 'broker.client_disconnected',
      clientId: client.id,
      role: access.roleOf(client),
    });
  });
  aedes.on('publish', (_packet, client) => {
    // Broker-internal $SYS heartbeats arrive here without a client.
    if (client) counters.published += 1;
  });
  // Refusals were already logged at warn by the access hooks; what reaches here
  // is their echo plus ordinary resets and keepalive timeouts.
  aedes.on('clientError', (client, error) => {
    log.debug('client error', { event: 'broker.client_error', clientId: client.id, error });
  });
  aedes.on('connectionError', (_client, error) => {
    log.debug('connection error', { event: 'broker.connection_error', error });
  });
  // An unhandled 'error' on an EventEmitter would crash the process; aedes
  // emits one when its persistence or will sweep fails. Its typings omit the
  // event, hence the plain EventEmitter view.
  const emitter: EventEmitter = aedes;
  emitter.on('error', (error: Error) => {
    log.error('broker error', { event: 'broker.error', error });
  });

  // Sockets are tracked so close() can end those that never sent CONNECT:
  // aedes only knows registered clients, and server.close() waits for all.
  const sockets = new Set<net.Socket>();
  const track = (socket: net.Socket): void => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  };
  const handle = (socket: net.Socket): void => {
    track(socket);
    aedes.handle(socket);
  };
  // Over TLS aedes reads the decrypted socket; the raw one is tracked too (a handshake never finished).
  // A refused handshake (a client that does not trust the certificate) only closes that socket.
  const server = options.tls
    ? tls.createServer({ cert: options.tls.cert, key: options.tls.key, minVersion: 'TLSv1.2' }, handle)
    : net.createServer(handle);
  if (options.tls) server.on('connection', track);

  let port: number;
  try {
    port = await listen(server, options.port, options.host);
  } catch (error) {
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    throw error;
  }
  server.on('error', (error) => {
    log.error('listener error', { event: 'broker.listener_error', error });
  });

  const close = once(async () => {
    const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    for (const socket of sockets) socket.destroy();
    await serverClosed;
    log.info('broker closed', { event: 'broker.closed', port });
  });

  return {
    name: options.name,
    host: options.host,
    port,
    counters,
    connectedClients: () => aedes.connectedClients,
    close,
  };
}
