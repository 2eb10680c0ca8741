export { AccessRefusedError, type BrokerCounters } from './access.js';
export { type BrokerNode, createBrokerNode } from './broker-node.js';
export type { BrokerNodeOptions } from './broker-node-options.js';
export {
  type MosquittoConfigFiles,
  MosquittoPasswdError,
  renderAcl,
  renderMosquittoConf,
  writeMosquittoConfig,
} from './mosquitto-config.js';
export type { MosquittoConfigOptions } from './mosquitto-config-options.js';
export {
  BROKER_NAME_ENV,
  type BrokerServiceConfig,
  brokerNameFrom,
  brokerServiceConfig,
  startBrokerService,
  usersFromCredentials,
} from './service.js';
export { type BrokerUser, validateUsers } from './users.js';
