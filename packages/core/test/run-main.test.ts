import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../src/index.js';

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
