import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  BROKER_CREDENTIAL_ROLES,
  type BrokerNodeConfig,
  brokerCredential,
  ConfigError,
  type FaultlineConfig,
  type Logger,
  once,
  readSecretFile,
  readTlsFiles,
} from '@faultline/core';
import { startBrokerHealth } from './broker-health.js';
import { type BrokerNode, createBrokerNode } from './broker-node.js';
import type { BrokerUser } from './users.js';

/** The environment variable naming the node when `--name` is not given. */
export const BROKER_NAME_ENV = 'FAULTLINE_BROKER_NAME';

/** `--name a`, `--name=a`, else FAULTLINE_BROKER_NAME; undefined when neither is set. */
export function brokerNameFrom(argv: readonly string[], env: NodeJS.ProcessEnv): string | undefined {
  const { values } = parseArgs({
    args: [...argv],
    options: { name: { type: 'string' } },
    strict: false,
    allowPositionals: true,
  });
  const name = typeof values.name === 'string' ? values.name : env[BROKER_NAME_ENV];
  return name === undefined || name === '' ? undefined : name;
}

type Credentials = Partial<Record<(typeof BROKER_CREDENTIAL_ROLES)[number], { username: string; password: string }>>;

/**
 * `brokers.credentials` is keyed by platform role; every present role becomes
 * one broker user. There is no shared `agent` account: members log in as themselves.
 */
export function usersFromCredentials(credentials: Credentials): BrokerUser[] {
  return BROKER_CREDENTIAL_ROLES.flatMap((role) => {
    const credential = credentials[role];
    return credential ? [{ username: credential.username, password: credential.password, role }] : [];
  });
}

/**
 * Every platform role's account from `brokers.credentials` (members log in as
 * themselves, see BrokerNodeOptions.memberKey), each password read by
 * core's brokerCredential (the value, else its `passwordFile`): what aedes
 * and the Mosquitto writer both take. A role with neither is a ConfigError
 * naming its key.
 */
export function brokerUsers(config: FaultlineConfig): BrokerUser[] {
  return usersFromCredentials(
    Object.fromEntries(BROKER_CREDENTIAL_ROLES.map((role) => [role, brokerCredential(config, role)])) as Credentials,
  );
}

export interface BrokerServiceConfig {
  node: BrokerNodeConfig;
  users: BrokerUser[];
  /** `security.memberKeyFile`: members' agents log in as their own member. */
  memberKey: Buffer;
  /** From `tls.mqtt` (README "TLS"): the node speaks mqtts only. @default undefined (plain TCP) */
  tls?: { cert: Buffer; key: Buffer };
}

/**
 * Picks this node out of `brokers.nodes`. A missing or unknown name is a
 * configuration error (exit 2 from runMain) that names the key to fix.
 */
export function brokerServiceConfig(config: FaultlineConfig, name: string | undefined): BrokerServiceConfig {
  const known = config.brokers.nodes.map((node) => node.name);
  if (name === undefined) {
    throw ConfigError.forKey(
      '--name',
      `no broker name: pass --name or set ${BROKER_NAME_ENV} to one of ${known.join(', ')}`,
    );
  }
  const node = config.brokers.nodes.find((candidate) => candidate.name === name);
  if (!node) {
    throw ConfigError.forKey('brokers.nodes', `no node named "${name}" (configured: ${known.join(', ')})`, { name });
  }
  const tls = readTlsFiles(config.tls.mqtt, 'tls.mqtt');
  const users = brokerUsers(config);
  const memberKey = readSecretFile(path.resolve(config.security.memberKeyFile), 'security.memberKeyFile');
  return { node, users, memberKey, ...(tls ? { tls: { cert: tls.cert, key: tls.key } } : {}) };
}

/**
 * Starts the configured node and logs `broker listening` once it accepts
 * connections; with `healthPort`, its health routes and metrics too.
 */
export async function startBrokerService(serviceConfig: BrokerServiceConfig, logger: Logger): Promise<BrokerNode> {
  const { node, users, memberKey, tls } = serviceConfig;
  const broker = await createBrokerNode({
    name: node.name,
    host: node.host,
    port: node.port,
    users,
    memberKey,
    logger,
    tls,
  });
  const health =
    node.healthPort === undefined
      ? undefined
      : await startBrokerHealth(broker, { host: node.healthHost, port: node.healthPort, logger }).catch(
          async (error: unknown) => {
            await broker.close();
            throw error;
          },
        );
  logger.info('broker listening', {
    event: 'broker.listening',
    name: broker.name,
    host: broker.host,
    port: broker.port,
    ...(health ? { healthPort: health.port } : {}),
    ...(tls ? { tls: true } : {}),
    roles: users.map((user) => user.role),
  });
  if (!health) return broker;
  return {
    ...broker,
    close: once(async () => {
      await health.close();
      await broker.close();
    }),
  };
}
