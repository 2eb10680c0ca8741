import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stripVTControlCharacters } from 'node:util';
import { REPO_ROOT } from '@faultline/core';
import { afterAll, describe, expect, it } from 'vitest';
import { connect } from './mqtt.js';

// The built service, run as the stack runs it (npm test builds first).
const MAIN = path.join(REPO_ROOT, 'packages/broker/dist/main.js');

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function writeConfig(): { file: string; logDir: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'faultline-broker-main-'));
  dirs.push(dir);
  const logDir = path.join(dir, 'logs');
  const file = path.join(dir, 'faultline.yaml');
  writeFileSync(
    file,
    [
      'logging:',
      '  level: info',
      `  dir: ${logDir}`,
      'brokers:',
      '  nodes:',
      '    - { name: a, port: 0 }',
      '    - { name: b, port: 0 }',
      '  credentials:',
      '    sp: { username: sp-main, password: sp-main-secret }',
      '    agent: { username: agent-main, password: agent-main-secret }',
      '    autoscaler: { username: as-main, password: as-main-secret }',
      '',
    ].join('\n'),
  );
  return { file, logDir };
}

interface Run {
  result: Promise<{ code: number | null; stdout: string; stderr: string }>;
  /** Resolves with the port once the node logs `broker listening`. */
  listening: Promise<number>;
  kill(signal: NodeJS.Signals): void;
}

function runMain(args: string[], env: NodeJS.ProcessEnv): Run {
  const child = spawn(process.execPath, [MAIN, ...args], {
    env: { ...process.env, FAULTLINE_BROKER_NAME: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let onPort: (port: number) => void = () => {};
  const listening = new Promise<number>((resolve) => {
    onPort = resolve;
  });
  child.stdout.on('data', (chunk) => {
    stdout += stripVTControlCharacters(String(chunk));
    const match = /broker listening .*port=(\d+)/.exec(stdout);
    if (match?.[1]) onPort(Number(match[1]));
  });
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  const result = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
  return { result, listening, kill: (signal) => child.kill(signal) };
}

describe('broker main.ts as a process', () => {
  it('serves the named node with the configured credentials and stops on SIGTERM', async () => {
    const { file, logDir } = writeConfig();
    const run = runMain(['--name', 'b'], { FAULTLINE_CONFIG: file });
    const port = await Promise.race([run.listening, run.result.then((r) => Promise.reject(new Error(r.stderr)))]);
    const client = await connect(`mqtt://127.0.0.1:${port}`, { username: 'sp-main', password: 'sp-main-secret' });
    await client.end();
    run.kill('SIGTERM');
    const { code, stdout } = await run.result;
    expect(code).toBe(0);
    expect(stdout).toContain('broker-b');
    expect(stdout).toContain('stopped');
    // The JSON-lines file of the service, under logging.dir.
    const records = readFileSync(path.join(logDir, 'broker-b.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(records).toContainEqual(
      expect.objectContaining({ message: 'broker listening', name: 'b', port, service: 'broker-b' }),
    );
    expect(records).toContainEqual(expect.objectContaining({ message: 'client connected', role: 'sp' }));
  });

  it('takes the name from FAULTLINE_BROKER_NAME', async () => {
    const { file } = writeConfig();
    const run = runMain([], { FAULTLINE_CONFIG: file, FAULTLINE_BROKER_NAME: 'a' });
    await run.listening;
    run.kill('SIGTERM');
    expect((await run.result).stdout).toContain('broker-a');
  });

  it('exits 2 naming brokers.nodes for an unknown node', async () => {
    const { file } = writeConfig();
    const { code, stderr } = await runMain(['--name', 'c'], { FAULTLINE_CONFIG: file }).result;
    expect(code).toBe(2);
    expect(stderr).toContain('brokers.nodes');
    expect(stderr).toContain('"c"');
  });

  it('exits 2 when no name is given', async () => {
    const { file } = writeConfig();
    const { code, stderr } = await runMain([], { FAULTLINE_CONFIG: file }).result;
    expect(code).toBe(2);
    expect(stderr).toContain('--name');
  });
});
