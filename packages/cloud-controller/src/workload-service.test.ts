import { describe, expect, it } from 'vitest';
import { parseReadyReport } from './launcher.js';
import { readWorkloadEnv } from './workload-service.js';

describe('readWorkloadEnv', () => {
  const env = {
    FAULTLINE_MEMBER_ID: 'm-1',
    FAULTLINE_WORKLOAD_READY_FILE: '/tmp/m-1.ready.json',
    // Any file that exists stands in for the agent's entry point here.
    FAULTLINE_AGENT_MAIN: import.meta.filename,
    FAULTLINE_WORKLOAD_LATENCY_MS: '7',
  };

  it('reads the workload’s part of the member environment, with defaults', () => {
    expect(readWorkloadEnv(env)).toEqual({
      memberId: 'm-1',
      host: '127.0.0.1',
      latencyMs: 7,
      readyFile: '/tmp/m-1.ready.json',
      agentMain: import.meta.filename,
      logDir: undefined,
      logLevel: 'info',
    });
  });

  it('names each bad variable in one ConfigError (exit 2 in main), a missing agent entry point too', () => {
    let caught: unknown;
    try {
      readWorkloadEnv({
        FAULTLINE_MEMBER_ID: 'a/b',
        FAULTLINE_WORKLOAD_LATENCY_MS: '-3',
        FAULTLINE_AGENT_MAIN: '/nope.js',
      });
    } catch (error) {
      caught = error;
    }
    expect(caught).toMatchObject({ code: 'FL_ERR_CONFIG_INVALID' });
    expect((caught as { issues: { key: string }[] }).issues.map((i) => i.key)).toEqual([
      'FAULTLINE_MEMBER_ID',
      'FAULTLINE_WORKLOAD_LATENCY_MS',
      'FAULTLINE_WORKLOAD_READY_FILE',
      'FAULTLINE_AGENT_MAIN',
    ]);
    expect(() => readWorkloadEnv({ ...env, FAULTLINE_AGENT_MAIN: '/nope.js' })).toThrow(
      expect.objectContaining({ issues: [{ key: 'FAULTLINE_AGENT_MAIN', reason: '/nope.js is missing' }] }),
    );
  });
});

describe('parseReadyReport', () => {
  it('reads the report and refuses anything else', () => {
    expect(parseReadyReport('{"pid":10,"port":8080,"agentPid":11}')).toEqual({ pid: 10, port: 8080, agentPid: 11 });
    expect(parseReadyReport('{"pid":10,')).toBe('not JSON');
    expect(parseReadyReport('[]')).toBe('not an object');
    expect(parseReadyReport('{"pid":10,"port":0,"agentPid":1}')).toBe(
      'port: must be an integer from 1 to 65535; agentPid: must be an integer from 2 to 2147483647',
    );
  });
});
