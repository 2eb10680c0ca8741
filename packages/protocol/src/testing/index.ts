export { testMember } from './identity.js';
export { AGENT_ENV, agentSettings, fullMemberEnvInput, memberEnvInput } from './member-env.js';
