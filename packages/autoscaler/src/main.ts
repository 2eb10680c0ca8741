/**
 * The autoscaler as a service:
 *   node packages/autoscaler/dist/main.js
 * Policies from `clusters`, timings from `autoscaler`, the registry in
 * `database.url` (or DATABASE_URL), members run by the local driver with
 * their ready files under `.faultline/run/members` (relative to the working
 * directory, like every `.faultline/` path) and their logs in `logging.dir`.
 */
import path from 'node:path';
import { agentSettingsFrom, createLocalIaas } from '@faultline/cloud-controller';
import {
  brokerCredential,
  ConfigError,
  closeAll,
  createLogger,
  createPgPool,
  type FaultlineConfig,
  loadConfig,
  migrate,
  readSecretFile,
  runMain,
} from '@faultline/core';
import { createAutoscaler } from './autoscaler.js';
import { autoscalerOptionsFrom } from './options.js';
import { PgRegistry } from './pg-registry.js';

const MEMBERS_RUN_DIR = '.faultline/run/members';

let resolved: { config: FaultlineConfig; url: string; memberKey: Buffer } | undefined;

await runMain(
  () => {
    const config = loadConfig();
    const url = config.database.url;
    if (!url) {
      throw ConfigError.forKey('database.url', 'the autoscaler keeps its member registry there (or set DATABASE_URL)');
    }
    // The members' credentials are issued under it; a missing or unsafe file exits 2 naming the key.
    const memberKey = readSecretFile(path.resolve(config.security.memberKeyFile), 'security.memberKeyFile');
    // Its own broker account and the members' (`agent`): a role without a password exits 2 naming the key.
    for (const role of ['autoscaler', 'agent'] as const) brokerCredential(config, role);
    resolved = { config, url, memberKey };
    return createLogger({ service: 'autoscaler', level: config.logging.level, dir: config.logging.dir });
  },
  async ({ logger }) => {
    if (!resolved) throw new ConfigError('FL_ERR_CONFIG_INVALID', 'configuration was not loaded');
    const { config, url, memberKey } = resolved;
    const pool = createPgPool({ connectionString: url, logger });
    const iaas = createLocalIaas({
      runDir: path.resolve(MEMBERS_RUN_DIR),
      logsDir: path.resolve(config.logging.dir),
      memberLogLevel: config.logging.level,
      agent: agentSettingsFrom(config),
      memberKey,
      logger,
    });
    const autoscaler = createAutoscaler(
      autoscalerOptionsFrom(config, { iaas, registry: new PgRegistry(pool), logger }),
    );
    const service = { close: () => closeAll([{ close: () => pool.end() }, iaas, autoscaler], logger) };
    try {
      await migrate(pool, { logger });
      await autoscaler.start();
    } catch (error) {
      await service.close();
      throw error;
    }
    return service;
  },
);
