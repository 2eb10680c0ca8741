/**
 * One broker node as a service:
 *   node packages/broker/dist/main.js --name a     (or FAULTLINE_BROKER_NAME=a)
 * The node's host and port come from `brokers.nodes`, its users from
 * `brokers.credentials` (each role's password or passwordFile; FAULTLINE_CONFIG,
 * else infra/config/faultline.yaml). A role without either exits 2 naming it.
 */
import { ConfigError, createLogger, loadConfig, runMain } from '@faultline/core';
import { type BrokerServiceConfig, brokerNameFrom, brokerServiceConfig, startBrokerService } from './service.js';

let serviceConfig: BrokerServiceConfig | undefined;

await runMain(
  // Config is read here, before the logger exists, because the logger's
  // service name, level and folder come from it; runMain turns a ConfigError
  // thrown here into exit 2 with the message on stderr.
  () => {
    const config = loadConfig();
    serviceConfig = brokerServiceConfig(config, brokerNameFrom(process.argv.slice(2), process.env));
    return createLogger({
      service: `broker-${serviceConfig.node.name}`,
      ...config.logging,
      console: 'pretty',
    });
  },
  async ({ logger }) => {
    // runMain builds the logger (and so loads the configuration) first; this is never reached.
    if (!serviceConfig) throw new ConfigError('FL_ERR_CONFIG_INVALID', 'broker configuration was not loaded');
    return startBrokerService(serviceConfig, logger);
  },
);
