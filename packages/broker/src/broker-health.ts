import { derivedCounter, derivedGauge, type Logger, serveHealth, serviceRegistry } from '@faultline/core';
import type { Registry } from 'prom-client';
import type { BrokerNode } from './broker-node.js';

/** A broker node's counters as Prometheus counters: `faultline_broker_<name>_total`. */
const COUNTERS = [
  ['connections', 'CONNECTs accepted.', 'connections'],
  ['member_connections', "CONNECTs of members' agents with their member credential.", 'memberConnections'],
  ['auth_failures', 'CONNECTs refused: anonymous, unknown user or wrong password.', 'authFailures'],
  ['publish_refused', 'PUBLISHes the ACL refused (each cost its client the connection).', 'publishRefused'],
  ['subscribe_refused', 'Topic filters the ACL refused.', 'subscribeRefused'],
  ['published', 'PUBLISHes routed (pings included).', 'published'],
] as const;

/** The broker node's metrics (README "Operations → Metrics"), read from the node when scraped. */
export function brokerMetrics(register: Registry, broker: BrokerNode): void {
  derivedGauge(register, 'faultline_broker_clients_connected', 'Clients connected now.', () =>
    broker.connectedClients(),
  );
  for (const [name, help, key] of COUNTERS)
    derivedCounter(register, `faultline_broker_${name}_total`, help, () => broker.counters[key]);
}

/**
 * The health routes and `/metrics` of a broker node on `host`:`port`
 * (`brokers.nodes[].healthPort`, aedes only): `/health` 200 while its event
 * loop turns, `/readiness` 200 while it listens. A broker node has no role.
 */
export async function startBrokerHealth(
  broker: BrokerNode,
  options: { host: string; port: number; logger: Logger },
): Promise<{ port: number; close(): Promise<void> }> {
  const metrics = serviceRegistry();
  brokerMetrics(metrics, broker);
  let closed = false;
  const served = await serveHealth({
    host: options.host,
    port: options.port,
    state: () => ({
      body: { node: `broker-${broker.name}`, port: broker.port, clients: broker.connectedClients() },
      ready: !closed,
      reason: closed ? 'closing' : 'listening',
    }),
    metrics,
    logger: options.logger,
    service: 'broker',
  });
  return {
    port: served.port,
    close: () => {
      closed = true;
      return served.close();
    },
  };
}
