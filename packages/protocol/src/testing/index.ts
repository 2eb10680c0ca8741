export { columnsOf, signedBatch, testStat } from './batch.js';
export { memberSummary } from './envelopes.js';
export { testMember } from './identity.js';
export {
  AGENT_ENV,
  agentSettings,
  fullMemberEnvInput,
  memberEnvInput,
  TEST_CREDENTIAL,
  TEST_MEMBER_KEY,
} from './member-env.js';
export { prng, randomBatch } from './random-batch.js';
