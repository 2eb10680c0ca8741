import { type Clock, type Logger, nullLogger, systemClock, withDefaults } from '@faultline/core';
import type { BrokerUser } from './users.js';

/** The defaults a broker node and the Mosquitto configuration writer share. */
export const BROKER_NODE_DEFAULTS: { readonly name: string; readonly host: string } = {
  name: 'broker',
  host: '127.0.0.1',
};

export interface BrokerNodeOptions {
  /** The node's name in the pair (`a`, `b`): log field and aedes broker id. @default BROKER_NODE_DEFAULTS.name ('broker') */
  name?: string;
  /** Interface to listen on. @default BROKER_NODE_DEFAULTS.host ('127.0.0.1') */
  host?: string;
  /** TCP port; 0 lets the OS choose (read the result from `BrokerNode.port`). @default 0 */
  port?: number;
  /** Accounts the node accepts; anyone else is refused. @default [] (nobody) */
  users?: readonly BrokerUser[];
  /**
   * The platform's member key (`security.memberKeyFile`): members' agents then
   * log in as their own member, user name the member id and password the
   * member credential, and may publish only under that id.
   * @default undefined (no member logs in)
   */
  memberKey?: Buffer;
  /** @default nullLogger */
  logger?: Logger;
  /** Paces the refusal log lines. @default systemClock */
  clock?: Clock;
  /** The node's certificate and key (PEM): it then speaks MQTT over TLS only (mqtts). @default undefined (plain TCP) */
  tls?: { cert: Buffer | string; key: Buffer | string };
}

export type ResolvedBrokerNodeOptions = Required<Omit<BrokerNodeOptions, 'tls' | 'memberKey'>> &
  Pick<BrokerNodeOptions, 'tls' | 'memberKey'>;

export function resolveBrokerNodeOptions(input: BrokerNodeOptions): ResolvedBrokerNodeOptions {
  return withDefaults(
    { ...BROKER_NODE_DEFAULTS, port: 0, users: [] as readonly BrokerUser[], logger: nullLogger, clock: systemClock },
    input,
  ) as ResolvedBrokerNodeOptions;
}
