/**
 * One node of the autoscaler pair as a service:
 *   node packages/autoscaler/dist/main.js --node autoscaler-a   (or FAULTLINE_AUTOSCALER_NODE)
 * without either, the first of `autoscaler.nodes`. The node contends for the
 * pair's lease (`autoscaler.groupId`) and acts only while it holds it
 * (README "The autoscaler pair"); the health routes and `/metrics` on `healthHost`:`healthPort`. Policies from `clusters`, timings from `autoscaler`, the registry in
 * `database.url` (or DATABASE_URL), members run by the local driver with
 * their own folders under `cloudController.local.membersDir`
 * (`.faultline/members`, relative to the working directory like every
 * `.faultline/` path), their scripts from `cloudController.local.runtimeDir`
 * (this checkout) and their logs in `logging.dir`; run as root, members run as
 * `cloudController.local.memberUser`. `faultline stack up` sets the first two
 * (FAULTLINE_CLOUD_CONTROLLER_LOCAL_MEMBERS_DIR, …_RUNTIME_DIR) when it has moved
 * them where the member user can reach them (README "What members can reach").
 * With `brokers.kind: mosquitto` it also keeps the members' broker accounts
 * in the password files of the stack's Mosquitto nodes (`.faultline/run/broker-<name>`).
 */
import path from 'node:path';
import { MosquittoMemberAccounts, mosquittoDirOf } from '@faultline/broker';
import { agentSettingsFrom, createLocalIaas, type Iaas, withMemberAccounts } from '@faultline/cloud-controller';
import { createLeasePool, PgLeaseStore } from '@faultline/coordination';
import {
  BROKER_CREDENTIAL_ROLES,
  brokerCredential,
  ConfigError,
  closeAll,
  createLogger,
  createPgPool,
  type FaultlineConfig,
  type Logger,
  loadConfig,
  migrate,
  readSecretFile,
  runMain,
  systemClock,
} from '@faultline/core';
import { createAutoscaler } from './autoscaler.js';
import { AutoscalerNode } from './autoscaler-node.js';
import { fencedIaas } from './fence.js';
import { autoscalerOptionsFrom } from './options.js';
import { PgRegistry } from './pg-registry.js';

const RUN_DIR = '.faultline/run';

/**
 * Mosquitto cannot check a member credential itself: the driver keeps each
 * node's password file equal to its members (aedes checks with the member key).
 */
function withBrokerAccounts(iaas: Iaas, config: FaultlineConfig, memberKey: Buffer, logger: Logger): Iaas {
  if (config.brokers.kind !== 'mosquitto') return iaas;
  const accounts = new MosquittoMemberAccounts({
    dirs: config.brokers.nodes.map((node) => path.resolve(mosquittoDirOf(RUN_DIR, node.name))),
    memberKey,
    reservedUsernames: BROKER_CREDENTIAL_ROLES.map((role) => config.brokers.credentials[role].username),
    logger,
  });
  return withMemberAccounts(iaas, accounts, { logger });
}

let resolved:
  | { config: FaultlineConfig; url: string; memberKey: Buffer; nodeId: string; healthPort: number; healthHost: string }
  | undefined;

await runMain(
  () => {
    const config = loadConfig();
    const argv = process.argv.slice(2);
    const at = argv.indexOf('--node');
    const asked = (at >= 0 ? argv[at + 1] : undefined) ?? process.env.FAULTLINE_AUTOSCALER_NODE;
    const { nodes } = config.autoscaler;
    const node = asked === undefined ? nodes[0] : nodes.find((n) => n.id === asked);
    if (!node) {
      throw ConfigError.forKey('autoscaler.nodes', `no node ${asked} (known: ${nodes.map((n) => n.id).join(', ')})`);
    }
    const url = config.database.url;
    if (!url) {
      throw ConfigError.forKey('database.url', 'the autoscaler keeps its member registry there (or set DATABASE_URL)');
    }
    // The members' credentials are issued under it; a missing or unsafe file exits 2 naming the key.
    const memberKey = readSecretFile(path.resolve(config.security.memberKeyFile), 'security.memberKeyFile');
    // Its own broker account (members log in as themselves): a missing password exits 2 naming the key.
    brokerCredential(config, 'autoscaler');
    resolved = { config, url, memberKey, nodeId: node.id, healthPort: node.healthPort, healthHost: node.healthHost };
    // Both nodes write one log, each record naming its node.
    return createLogger({ service: 'autoscaler', ...config.logging }).child({
      node: node.id,
    });
  },
  async ({ logger }) => {
    if (!resolved) throw new ConfigError('FL_ERR_CONFIG_INVALID', 'configuration was not loaded');
    const { config, url, memberKey, nodeId, healthPort, healthHost } = resolved;
    const pool = createPgPool({ connectionString: url, logger });
    const { local } = config.cloudController;
    const localIaas = createLocalIaas({
      // Outside RUN_DIR, which stays the platform's alone (0700): as root, members run as the member user,
      // who must pass through every folder above their own.
      runDir: path.resolve(local.membersDir),
      runtimeDir: local.runtimeDir === undefined ? undefined : path.resolve(local.runtimeDir),
      logsDir: path.resolve(config.logging.dir),
      memberLogLevel: config.logging.level,
      memberUser: local.memberUser,
      agent: agentSettingsFrom(config),
      memberKey,
      logger,
    });
    const iaas = withBrokerAccounts(localIaas, config, memberKey, logger);
    const { autoscaler: pair, streamProcessor } = config;
    const leaseMs = pair.heartbeatIntervalMs * pair.heartbeatMaxRetry;
    // The lease's own pool, as the SP node's (createLeasePool): its renewals never queue behind registry
    // queries or for a connection when statements are slow. Two more: the acquire and the node heartbeat.
    const leasePool = createLeasePool({ connectionString: url, ...pair, extra: 2, logger });
    const node = new AutoscalerNode({
      nodeId,
      groupId: pair.groupId,
      store: new PgLeaseStore(leasePool),
      clock: systemClock,
      heartbeatIntervalMs: pair.heartbeatIntervalMs,
      heartbeatMaxRetry: pair.heartbeatMaxRetry,
      fencingMarginMs: pair.fencingMarginMs,
      healthPort,
      healthHost,
      logger,
      // One autoscaler per lease term, fenced by it: every Iaas action and every registry write.
      createAutoscaler: (fence) =>
        createAutoscaler(
          autoscalerOptionsFrom(config, {
            nodeId,
            iaas: fencedIaas(iaas, fence, (what) =>
              logger.warn('Iaas action refused: this node does not hold the lease', {
                event: 'autoscaler.fenced',
                what,
              }),
            ),
            registry: new PgRegistry(pool, {
              spGroupId: streamProcessor.groupId,
              fence: { lease: fence, groupId: pair.groupId, nodeId, leaseMs },
            }),
            logger,
          }),
        ),
    });
    const service = {
      close: () => closeAll([{ close: () => pool.end() }, { close: () => leasePool.end() }, iaas, node], logger),
    };
    try {
      await migrate(pool, { logger });
      await leasePool.warm();
      await node.start();
    } catch (error) {
      await service.close();
      throw error;
    }
    return service;
  },
);
