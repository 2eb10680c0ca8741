/**
 * The cartridge agent of one member, as its workload starts it:
 *   node packages/cartridge-agent/dist/main.js
 * Identity and settings come from the member environment (README "The member
 * environment", src/agent-env.ts); a bad variable exits 2 naming it.
 */
import { createLogger, runMain } from '@faultline/core';
import { createAgent } from './agent.js';
import { type AgentProcessSettings, readAgentEnv } from './agent-env.js';

// Assigned by the first step of runMain, which always runs before the second.
let settings!: AgentProcessSettings;

await runMain(
  // The environment is read before the logger exists because the logger's
  // name and folder come from it; runMain turns a ConfigError into exit 2.
  () => {
    settings = readAgentEnv(process.env);
    return createLogger({
      service: `agent-${settings.options.member.memberId}`,
      level: settings.logLevel,
      dir: settings.logDir,
      // With a log folder the JSON file is the log; stdout (the member's .out file) keeps crash traces only.
      console: settings.logDir ? 'none' : 'json',
    });
  },
  async ({ logger }) => {
    const agent = createAgent({ ...settings.options, logger });
    await agent.start();
    return agent;
  },
);
