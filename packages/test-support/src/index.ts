export {
  type BrokerKind,
  brokerEndpoints,
  mosquittoAvailable,
  type StartBrokerOptions,
  startBroker,
  startBrokerPair,
  TEST_AGENT_MEMBER,
  TEST_CONFIG_CREDENTIALS,
  TEST_CREDENTIALS,
  type TestBroker,
  testMemberAccount,
} from './brokers.js';
export { freePort } from './ports.js';
export { type StartPostgresOptions, startPostgres, type TestPostgres } from './postgres.js';
export { postmasterOf, processIds, readAs, userIds } from './processes.js';
export { testRuntimeDir } from './runtime.js';
export { testSecret, testSecrets, writeTestMemberKey } from './secrets.js';
export { type SpPairOptions, type SpStatusJson, startSpPair, type TestSecurity, type TestSpNode } from './sp.js';
export { makeTestCertificates, type TestCertificates } from './tls.js';
export { waitFor } from './wait.js';
