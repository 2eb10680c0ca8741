import { decodeAgentEnv, encodeMemberEnv, encodeWorkloadPort, memberIdentityOf } from '@faultline/protocol';
import { AGENT_ENV, fullMemberEnvInput } from '@faultline/protocol/testing';
import { describe, expect, it } from 'vitest';
import { readAgentEnv } from './agent-env.js';

// protocol's member-env.test.ts checks the codec itself (every variable, value and issue); these check what the
// agent makes of it: its options, the outbox file path and one ConfigError.

function issuesOf(env: NodeJS.ProcessEnv): string[] {
  try {
    readAgentEnv(env);
  } catch (error) {
    expect(error).toMatchObject({ code: 'FL_ERR_CONFIG_INVALID' });
    return (error as { issues: { key: string }[] }).issues.map((i) => i.key);
  }
  return [];
}

describe('readAgentEnv', () => {
  it('passes the decoded identity, endpoints and settings on, unset ones left to the defaults', () => {
    const decoded = decodeAgentEnv(AGENT_ENV);
    if (!decoded.ok) throw new Error('AGENT_ENV does not decode');
    const { member, credential, agent, workload } = decoded.value;
    expect(readAgentEnv(AGENT_ENV)).toEqual({
      options: { ...agent, member, credential, workload, outboxFile: '/run/outbox/agent-php-m-1.outbox' },
      logDir: undefined,
      logLevel: 'info',
    });
  });

  it('names every bad or missing variable in one ConfigError', () => {
    expect(
      issuesOf({
        ...AGENT_ENV,
        FAULTLINE_MEMBER_ID: '../m',
        FAULTLINE_WORKLOAD_PORT: undefined,
        FAULTLINE_LOG_LEVEL: 'loud',
      }),
    ).toEqual(['FAULTLINE_MEMBER_ID', 'FAULTLINE_WORKLOAD_PORT', 'FAULTLINE_LOG_LEVEL']);
    expect(issuesOf({})).toContain('FAULTLINE_OUTBOX_DIR');
    expect(() => readAgentEnv({})).toThrow(/^invalid cartridge agent environment:/);
  });

  it('reads exactly what the local driver and the workload write (protocol’s codec, both sides)', () => {
    const input = fullMemberEnvInput;
    const env = { PATH: '/bin', ...encodeMemberEnv(input), ...encodeWorkloadPort(41_000) };
    const { options, logDir, logLevel } = readAgentEnv(env);
    expect(options).toEqual({
      ...input.agent,
      member: memberIdentityOf(input.member),
      credential: input.credential,
      outboxFile: '/run/outbox/agent-php-m-1.outbox',
      workload: { host: '127.0.0.1', port: 41_000 },
    });
    expect({ logDir, logLevel }).toEqual({ logDir: '/logs', logLevel: 'debug' });
  });
});
