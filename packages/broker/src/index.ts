export type { BrokerCounters } from './access.js';
export { type BrokerNode, type BrokerNodeOptions, createBrokerNode } from './broker.js';
export {
  type MosquittoConfigFiles,
  type MosquittoConfigOptions,
  renderAcl,
  renderMosquittoConf,
  writeMosquittoConfig,
} from './mosquitto.js';
export {
  BROKER_NAME_ENV,
  type BrokerServiceConfig,
  brokerNameFrom,
  brokerServiceConfig,
  startBrokerService,
  usersFromCredentials,
} from './service.js';
export { type BrokerUser, validateUsers } from './users.js';
