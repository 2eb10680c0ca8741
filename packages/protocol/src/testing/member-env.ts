import { issueMemberCredential } from '../member-credential.js';
import type { AgentSettings, MemberEnvInput } from '../member-env.js';
import { testMember } from './identity.js';

/** A member key for tests that never meet a real SP (one that does reads its pair's key file). */
export const TEST_MEMBER_KEY = Buffer.from('faultline-test-member-key-0123456789abcdef', 'utf8');

/** The credential of `testMember()` under TEST_MEMBER_KEY. */
export const TEST_CREDENTIAL = issueMemberCredential(TEST_MEMBER_KEY, testMember());

/**
 * Agent settings for the member-environment tests: IPv4, IPv6 and host-name
 * addresses, and two settings set while the others are left to their defaults.
 */
export const agentSettings: AgentSettings = {
  spEndpoints: [
    { host: '127.0.0.1', port: 7611 },
    { host: '::1', port: 7612 },
  ],
  brokers: [
    { name: 'a', host: 'localhost', port: 1883 },
    { name: 'b', host: '::1', port: 1884 },
  ],
  statIntervalMs: 1_500,
  awaitSubscribers: ['autoscaler'],
};

/** What the local driver writes for member `php-m-1` with `agentSettings`. */
export const memberEnvInput: MemberEnvInput = {
  member: { ...testMember(), cartridgeType: 'php' },
  credential: TEST_CREDENTIAL,
  agent: agentSettings,
  workload: { host: '127.0.0.1', latencyMs: 5, readyFile: '/run/m.ready.json', agentMain: '/dist/main.js' },
  outboxDir: '/run/outbox',
  logDir: '/logs',
  logLevel: 'debug',
};

/** `memberEnvInput` with every agent setting set. */
export const fullMemberEnvInput: MemberEnvInput = {
  ...memberEnvInput,
  agent: {
    ...agentSettings,
    maxUnackedBatches: 20,
    republishIntervalMs: 10_000,
    callTimeoutMs: 300,
    activationPollMs: 250,
  },
};

/**
 * The agent's part of the member environment for `testMember()`, written by
 * hand as a person might (a space after a comma, a bracketed IPv6 address):
 * it reads as `agentSettings`' endpoints, every other setting
 * unset.
 */
export const AGENT_ENV = {
  FAULTLINE_MEMBER_ID: 'php-m-1',
  FAULTLINE_CLUSTER_ID: 'php',
  FAULTLINE_CLUSTER_INSTANCE_ID: 'php-1',
  FAULTLINE_NETWORK_PARTITION_ID: 'np-1',
  FAULTLINE_PARTITION_ID: 'p-1',
  FAULTLINE_MEMBER_CREDENTIAL: TEST_CREDENTIAL,
  FAULTLINE_SP_ENDPOINTS: '127.0.0.1:7611, [::1]:7612',
  FAULTLINE_BROKERS: 'a@localhost:1883,b@::1:1884',
  FAULTLINE_WORKLOAD_PORT: '40123',
  FAULTLINE_OUTBOX_DIR: '/run/outbox',
};
