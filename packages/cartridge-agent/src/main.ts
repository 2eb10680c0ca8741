/**
 * The cartridge agent of one member, as its workload starts it:
 *   node packages/cartridge-agent/dist/main.js
 * Identity and settings come from the member environment (README "Members",
 * src/env.ts); a bad variable exits 2 naming it.
 */
import { createLogger, runMain } from '@faultline/core';
import { createAgent } from './agent.js';
import { type AgentEnv, parseAgentEnv } from './env.js';

let env: AgentEnv | undefined;

await runMain(
  // The environment is read before the logger exists because the logger's
  // name and folder come from it; runMain turns a ConfigError into exit 2.
  () => {
    env = parseAgentEnv(process.env);
    return createLogger({
      service: `agent-${env.options.member.memberId}`,
      level: env.logLevel,
      dir: env.logDir,
      // With a log folder the JSON file is the log; stdout (the member's .out file) keeps crash traces only.
      console: env.logDir ? 'none' : 'json',
    });
  },
  async ({ logger }) => {
    if (!env) throw new Error('agent environment was not read');
    const agent = createAgent({ ...env.options, logger });
    await agent.start();
    return agent;
  },
);
