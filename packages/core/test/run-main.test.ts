import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { REPO_ROOT, SUPERVISED_ENV } from '../src/index.js';

// A minimal main.ts as every service writes it, run as a real process on the built core.
const mainScript = `
import { createLogger, loadConfig, runMain } from ${JSON.stringify(path.join(REPO_ROOT, 'packages/core/dist/index.js'))};
let logger;
await runMain(
  () => (logger = createLogger({ service: 'probe', console: 'json' })),
  async ({ logger }) => {
    const config = loadConfig();
    logger.info('ready', { faultTimeoutMs: config.cep.faultTimeoutMs });
    const timer = setInterval(() => {}, 1000);
    return { close: async () => { clearInterval(timer); logger.info('closing'); } };
  },
);
`;

function runChild(env: NodeJS.ProcessEnv, onReady?: (child: ReturnType<typeof spawn>) => void) {
  const child = spawn(process.execPath, ['--input-type=module', '-e', mainScript], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => {
    stdout += chunk;
    if (stdout.includes('"ready"')) onReady?.(child);
  });
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('runMain in a real process', () => {
  it('exits 2 naming the bad key when the config is invalid', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faultline-main-'));
    const file = path.join(dir, 'bad.yaml');
    writeFileSync(file, 'cep:\n  faultTimeoutMs: zero\n');
    const result = await runChild({ FAULTLINE_CONFIG: file });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('cep.faultTimeoutMs');
    expect(result.stderr).toContain(file);
  });

  it('starts with the default config and stops cleanly on SIGTERM', async () => {
    const result = await runChild({ FAULTLINE_CONFIG: '' }, (child) => child.kill('SIGTERM'));
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('"closing"');
    expect(result.stdout).toContain('"stopped"');
  });
});

/** Whether a process `pid` exists (and is no zombie). */
function running(pid: number): boolean {
  try {
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');
  } catch {
    return false;
  }
}

/**
 * A stand-in for the stack supervisor: starts the service as the supervisor
 * does (its own process group, a stdin pipe it holds, the flag, when `flag`),
 * prints the service's pid, and waits to be killed.
 */
const supervisorScript = (logDir: string, flag: boolean) => `
import { spawn } from 'node:child_process';
const child = spawn(process.execPath, ['--input-type=module', '-e', ${JSON.stringify(
  mainScript.replace(
    "service: 'probe', console: 'json'",
    `service: 'probe', console: 'none', dir: ${JSON.stringify(logDir)}`,
  ),
)}], {
  env: { ...process.env, FAULTLINE_CONFIG: ''${flag ? `, ${SUPERVISED_ENV}: '1'` : ''} },
  stdio: ['pipe', 'ignore', 'ignore'],
  detached: true,
});
process.stdout.write(String(child.pid) + '\\n');
setInterval(() => {}, 1000);
`;

describe('runMain under a supervisor that dies', () => {
  async function superviseThenKill(flag: boolean) {
    const logDir = mkdtempSync(path.join(os.tmpdir(), 'faultline-main-'));
    const supervisor = spawn(process.execPath, ['--input-type=module', '-e', supervisorScript(logDir, flag)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const pid = await new Promise<number>((resolve) =>
      supervisor.stdout.once('data', (c) => resolve(Number(String(c)))),
    );
    const log = path.join(logDir, 'probe.jsonl');
    const events = () =>
      existsSync(log)
        ? readFileSync(log, 'utf8')
            .split('\n')
            .filter(Boolean)
            .map((line) => (JSON.parse(line) as { event: string }).event)
        : [];
    await vi.waitFor(() => expect(readFileSync(log, 'utf8')).toContain('"ready"'), { timeout: 10_000 });
    // SIGKILL: no handler of the supervisor runs; only the kernel closes its end of the pipe.
    supervisor.kill('SIGKILL');
    return { pid, events };
  }

  it('stops the service cleanly when the supervisor is killed with -9 (its stdin ends)', async () => {
    const { pid, events } = await superviseThenKill(true);
    await vi.waitFor(() => expect(running(pid)).toBe(false), { timeout: 10_000 });
    expect(events()).toEqual(expect.arrayContaining(['main.supervisor_gone', 'main.stopped']));
  });

  it('leaves a service not started by the supervisor (no flag) running', async () => {
    const { pid, events } = await superviseThenKill(false);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    try {
      expect(running(pid)).toBe(true);
      expect(events()).not.toContain('main.supervisor_gone');
    } finally {
      process.kill(pid, 'SIGKILL');
    }
  });
});
