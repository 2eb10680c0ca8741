export { AccessRefusedError, type BrokerCounters } from './access.js';
export { type BrokerNode, createBrokerNode } from './broker-node.js';
export type { BrokerNodeOptions } from './broker-node-options.js';
export {
  MEMBER_ACCOUNTS_MARKER,
  MOSQUITTO_PBKDF2_ITERATIONS,
  MOSQUITTO_PID_FILE,
  type MosquittoConfigFiles,
  mosquittoDirOf,
  mosquittoPasswordHash,
  renderAcl,
  renderMosquittoConf,
  renderPasswordFile,
  writeMosquittoConfig,
} from './mosquitto-config.js';
export type { MosquittoConfigOptions, MosquittoTlsFiles } from './mosquitto-config-options.js';
export {
  type MemberAccountsCounters,
  MosquittoMemberAccounts,
  type MosquittoMemberAccountsOptions,
} from './mosquitto-member-accounts.js';
export {
  BROKER_NAME_ENV,
  type BrokerServiceConfig,
  brokerNameFrom,
  brokerServiceConfig,
  brokerUsers,
  startBrokerService,
  usersFromCredentials,
} from './service.js';
export { type BrokerUser, validateUsers } from './users.js';
