import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '@faultline/core';
import { afterAll, describe, expect, it } from 'vitest';

/*
 * Issue "Operate it": the `faultline` command follows the conventions of
 * command-line tools. `-h` and `--version` answer; an unknown option, a
 * missing value or an extra argument is an error with exit 2 (before, `status
 * --jsn` was ignored and `stack up --config` with no value started the default
 * config); NO_COLOR and FORCE_COLOR=0 turn colors off (FORCE_COLOR=0 turned
 * them on). The built CLI, run as a user runs it, in a folder of its own.
 */
const CLI = path.join(REPO_ROOT, 'packages/cli/dist/main.js');
const dir = mkdtempSync(path.join(os.tmpdir(), 'faultline-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const { NO_COLOR: _n, FORCE_COLOR: _f, ...rest } = process.env;
    execFile(process.execPath, [CLI, ...args], { cwd: dir, env: { ...rest, ...env } }, (error, stdout, stderr) =>
      resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe('the faultline command', () => {
  it('answers -h, --help and --version with exit 0; with no command prints its usage and exits 1', async () => {
    for (const args of [['-h'], ['--help'], ['stack', '-h'], ['chaos', '--help'], ['logs', '-h']]) {
      const { code, stdout } = await run(args);
      expect({ args, code }).toEqual({ args, code: 0 });
      expect(stdout).toMatch(/faultline/);
    }
    const version = await run(['--version']);
    expect(version).toMatchObject({ code: 0, stdout: expect.stringMatching(/^faultline \d+\.\d+\.\d+\n$/) });
    expect((await run([])).code).toBe(1);
  });

  it('refuses unknown options, missing values and extra arguments with exit 2, before contacting anything', async () => {
    const cases: [string[], RegExp][] = [
      [['stack', 'status', '--jsn'], /Unknown option '--jsn'/],
      [['stack', 'up', '--config'], /--config <value>' argument missing/],
      [['stack', 'down', '--config', 'x.yaml'], /--config is an option of stack up only/],
      [['chaos', 'kill-sp', 'active', 'extra'], /unexpected argument "extra"/],
      [['logs', '--follow=yes'], /does not take an argument/],
      [['nonsense'], /unknown command "nonsense"/],
      [['stack', 'sideways'], /unknown stack command sideways/],
    ];
    for (const [args, message] of cases) {
      const { code, stderr } = await run(args);
      expect({ args, code }).toEqual({ args, code: 2 });
      expect(stderr).toMatch(message);
    }
  });

  it('exits 1 with one line when no stack runs here', async () => {
    const { code, stderr } = await run(['stack', 'status']);
    expect(code).toBe(1);
    expect(stderr).toMatch(/^faultline: no stack is running .*\n$/);
  });

  it('paints only where colors are wanted: NO_COLOR and FORCE_COLOR=0 turn them off', async () => {
    mkdirSync(path.join(dir, '.faultline/logs'), { recursive: true });
    writeFileSync(
      path.join(dir, '.faultline/logs/sp-1.jsonl'),
      `${JSON.stringify({ level: 'info', message: 'hello', event: 'test.hello', service: 'sp-1', timestamp: new Date().toISOString() })}\n`,
    );
    const ansi = { test: (text: string) => text.includes(`${String.fromCharCode(27)}[`) };
    expect(ansi.test((await run(['logs'], { FORCE_COLOR: '1' })).stdout)).toBe(true);
    for (const env of [{ FORCE_COLOR: '0' }, { FORCE_COLOR: '1', NO_COLOR: '1' }, {}]) {
      const { code, stdout } = await run(['logs'], env);
      expect(code).toBe(0);
      expect(stdout).toContain('hello');
      expect({ env, painted: ansi.test(stdout) }).toEqual({ env, painted: false });
    }
  });
});
