import path from 'node:path';
import type { LogLevel } from '@faultline/core';
import { decodeAgentEnv, memberEnvError } from '@faultline/protocol';
import type { AgentOptions } from './agent-options.js';

/** What the agent process reads from its environment: the agent's options and its logging. */
export interface AgentProcessSettings {
  options: Omit<
    AgentOptions,
    'clock' | 'logger' | 'transport' | 'probe' | 'checks' | 'execEnv' | 'system' | 'connector'
  >;
  logDir: string | undefined;
  logLevel: LogLevel;
}

/**
 * Reads the agent's part of the member environment (README "The member
 * environment"), written by the local driver and the workload through
 * protocol's codec; a ConfigError names every bad variable (runMain: exit 2).
 */
export function readAgentEnv(env: NodeJS.ProcessEnv): AgentProcessSettings {
  const decoded = decodeAgentEnv(env);
  if (!decoded.ok) throw memberEnvError('cartridge agent', decoded.error);
  const { member, credential, agent, workload, outboxDir, metricsPortFile, logDir, logLevel } = decoded.value;
  return {
    options: {
      ...agent,
      member,
      credential,
      workload,
      outboxFile: path.join(outboxDir, `agent-${member.memberId}.outbox`),
      ...(metricsPortFile === undefined ? {} : { metricsPortFile }),
    },
    logDir,
    logLevel,
  };
}
