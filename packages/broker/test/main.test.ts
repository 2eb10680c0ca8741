import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stripVTControlCharacters } from 'node:util';
import { ensureSecretFile, REPO_ROOT } from '@faultline/core';
import { afterAll, describe, expect, it } from 'vitest';
import { connect } from './mqtt.js';

// The built service, run as the stack runs it (npm test builds first).
const MAIN = path.join(REPO_ROOT, 'packages/broker/dist/main.js');

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** The observer's password is a file named by FAULTLINE_BROKERS_CREDENTIALS_OBSERVER_PASSWORD_FILE (`env`). */
function writeConfig(): { file: string; logDir: string; env: NodeJS.ProcessEnv; observerFile: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'faultline-broker-main-'));
  dirs.push(dir);
  const observerFile = path.join(dir, 'secrets', 'broker-observer.password');
  ensureSecretFile(observerFile);
  const memberKeyFile = path.join(dir, 'secrets', 'member.key');
  ensureSecretFile(memberKeyFile);
  const env = { FAULTLINE_BROKERS_CREDENTIALS_OBSERVER_PASSWORD_FILE: observerFile };
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
      '    autoscaler: { username: as-main, password: as-main-secret }',
      'security:',
      `  memberKeyFile: ${memberKeyFile}`,
      '',
    ].join('\n'),
  );
  return { file, logDir, env, observerFile };
}

/** The records of a service's JSON-lines log so far; a line still being written is left out. */
function readRecords(file: string): Record<string, unknown>[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .flatMap((line) => {
      try {
        return [JSON.parse(line) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
}

interface Run {
  result: Promise<{ code: number | null; stdout: string; stderr: string }>;
  /** Resolves with the port once the node logs `broker.listening` to `logFile`. */
  listening: Promise<number>;
  kill(signal: NodeJS.Signals): void;
}

function runMain(args: string[], env: NodeJS.ProcessEnv, logFile: string): Run {
  const child = spawn(process.execPath, [MAIN, ...args], {
    env: { ...process.env, FAULTLINE_BROKER_NAME: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let exited = false;
  child.stdout.on('data', (chunk) => {
    stdout += stripVTControlCharacters(String(chunk));
  });
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  const result = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    child.on('exit', (code) => {
      exited = true;
      resolve({ code, stdout, stderr });
    });
  });
  const listening = (async () => {
    for (;;) {
      const gone = exited;
      const record = readRecords(logFile).find((r) => r.event === 'broker.listening');
      if (record) return Number(record.port);
      if (gone) throw new Error(`the broker exited before logging broker.listening: ${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  listening.catch(() => {}); // a test that does not wait for it must not see an unhandled rejection
  return { result, listening, kill: (signal) => child.kill(signal) };
}

describe('broker main.ts as a process', () => {
  it('serves the named node with the configured credentials and stops on SIGTERM', async () => {
    const { file, logDir, env, observerFile } = writeConfig();
    const logFile = path.join(logDir, 'broker-b.jsonl');
    const run = runMain(['--name', 'b'], { ...env, FAULTLINE_CONFIG: file }, logFile);
    const port = await run.listening;
    const client = await connect(`mqtt://127.0.0.1:${port}`, { username: 'sp-main', password: 'sp-main-secret' });
    await client.end();
    // The observer's password came from the file its env variable names.
    const observer = await connect(`mqtt://127.0.0.1:${port}`, {
      username: 'observer',
      password: readFileSync(observerFile, 'utf8').trim(),
    });
    await observer.end();
    run.kill('SIGTERM');
    const { code, stdout } = await run.result;
    expect(code).toBe(0);
    expect(stdout).toContain('broker-b');
    // The JSON-lines file of the service, under logging.dir.
    const records = readRecords(logFile);
    expect(records).toContainEqual(expect.objectContaining({ event: 'main.stopped', service: 'broker-b' }));
    expect(records).toContainEqual(
      expect.objectContaining({ event: 'broker.listening', name: 'b', port, service: 'broker-b' }),
    );
    expect(records).toContainEqual(expect.objectContaining({ event: 'broker.client_connected', role: 'sp' }));
  });

  it('takes the name from FAULTLINE_BROKER_NAME', async () => {
    const { file, logDir, env } = writeConfig();
    const run = runMain(
      [],
      { ...env, FAULTLINE_CONFIG: file, FAULTLINE_BROKER_NAME: 'a' },
      path.join(logDir, 'broker-a.jsonl'),
    );
    await run.listening;
    run.kill('SIGTERM');
    expect((await run.result).stdout).toContain('broker-a');
  });

  it('exits 2 naming brokers.nodes for an unknown node', async () => {
    const { file, logDir, env } = writeConfig();
    const { code, stderr } = await runMain(
      ['--name', 'c'],
      { ...env, FAULTLINE_CONFIG: file },
      path.join(logDir, 'broker-c.jsonl'),
    ).result;
    expect(code).toBe(2);
    expect(stderr).toContain('brokers.nodes');
    expect(stderr).toContain('"c"');
  });

  it('exits 2 naming the role account that has no password, there being no built-in one', async () => {
    const { file, logDir } = writeConfig();
    const { code, stderr } = await runMain(
      ['--name', 'a'],
      { FAULTLINE_CONFIG: file },
      path.join(logDir, 'broker-a.jsonl'),
    ).result;
    expect(code).toBe(2);
    expect(stderr).toContain('brokers.credentials.observer: no password');
  });

  it('exits 2 when no name is given', async () => {
    const { file, logDir } = writeConfig();
    const { code, stderr } = await runMain([], { FAULTLINE_CONFIG: file }, path.join(logDir, 'broker.jsonl')).result;
    expect(code).toBe(2);
    expect(stderr).toContain('--name');
  });
});
