import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createMemoryLogger } from '@faultline/core/testing';
import { describe, expect, it } from 'vitest';
import { parseReadyReport, type ReadyReport } from './launcher.js';
import { readWorkloadEnv, startWorkloadService } from './workload-service.js';

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
    expect(parseReadyReport('{"pid":10,"port":8080,"agentPid":11,"agentRestarts":2}')).toEqual({
      pid: 10,
      port: 8080,
      agentPid: 11,
      agentRestarts: 2,
    });
    expect(parseReadyReport('{"pid":10,"port":8080,"agentPid":11,"agentRestarts":-1}')).toBe(
      'agentRestarts: must be an integer from 0 to 2147483647',
    );
    expect(parseReadyReport('{"pid":10,')).toBe('not JSON');
    expect(parseReadyReport('[]')).toBe('not an object');
    expect(parseReadyReport('{"pid":10,"port":0,"agentPid":1}')).toBe(
      'port: must be an integer from 1 to 65535; agentPid: must be an integer from 2 to 2147483647',
    );
  });
});

describe('startWorkloadService: a new agent on request', () => {
  const alive = (pid: number | undefined) => {
    try {
      process.kill(pid ?? 0, 0);
      return true;
    } catch {
      return false;
    }
  };
  const until = async (predicate: () => boolean, what: string) => {
    const deadline = Date.now() + 10_000;
    while (!predicate()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };

  it('starts one only when its agent is gone, once for requests at once, and rewrites its ready file', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faultline-workload-'));
    // An agent that only runs: what the workload does with it is the test, not what it does itself.
    const agentMain = path.join(dir, 'agent.mjs');
    writeFileSync(agentMain, 'setInterval(() => {}, 1_000);\n');
    const readyFile = path.join(dir, 'ready.json');
    const logger = createMemoryLogger();
    const config = {
      memberId: 'm-1',
      host: '127.0.0.1',
      latencyMs: 5,
      readyFile,
      agentMain,
      logLevel: 'info' as const,
    };
    const service = await startWorkloadService({ ...config, logDir: undefined }, logger, {});
    const report = () => JSON.parse(readFileSync(readyFile, 'utf8')) as ReadyReport;
    try {
      const first = service.agentPid;
      expect(report()).toEqual({ pid: process.pid, port: expect.any(Number), agentPid: first, agentRestarts: 0 });
      expect(await service.restartAgent()).toBe('running');
      expect(report().agentPid).toBe(first);

      process.kill(first ?? 0, 'SIGKILL');
      await until(() => logger.events().includes('workload.agent_exited'), 'the agent’s exit');
      const [a, b] = await Promise.all([service.restartAgent(), service.restartAgent()]);
      expect([a, b]).toEqual(['started', 'started']);
      const second = service.agentPid;
      expect(second).not.toBe(first);
      expect(alive(second)).toBe(true);
      expect(report()).toMatchObject({ pid: process.pid, agentPid: second, agentRestarts: 1 });
      expect(logger.events().filter((e) => e === 'workload.agent_restarted')).toHaveLength(1);
      expect(await service.restartAgent()).toBe('running');
    } finally {
      const last = service.agentPid;
      await service.close();
      await until(() => !alive(last), 'the agent stopped with the workload');
      rmSync(dir, { recursive: true, force: true });
    }
    expect(await service.restartAgent()).toBe('closing');
  });
});
