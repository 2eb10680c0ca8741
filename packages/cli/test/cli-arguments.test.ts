import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { startControl } from '../src/control.js';

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
      [['chaos', 'kill-sp', 'leader'], /kill-sp takes active or passive/],
      [['chaos', 'pause-sp', 'passive'], /pause-sp takes active/],
      [['explain'], /explain needs a member id/],
      [['explain', 'a b'], /"a b" is not a member id/],
      [['console', 'extra'], /unexpected argument "extra"/],
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

describe('faultline config', () => {
  it('validates a file (exit 0) or names every bad key (exit 2, one key a line)', async () => {
    const good = await run(['config', 'validate', '--config', path.join(REPO_ROOT, 'infra/config/faultline.yaml')]);
    expect(good).toMatchObject({ code: 0, stdout: expect.stringMatching(/^valid: .*faultline\.yaml\n$/) });
    const bad = path.join(dir, 'bad.yaml');
    writeFileSync(bad, 'cep:\n  faultTimeoutMs: soon\nlogging:\n  maxFiles: 1\n');
    const refused = await run(['config', 'validate', '--config', bad]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/\n {2}- cep\.faultTimeoutMs: /);
    expect(refused.stderr).toMatch(/\n {2}- logging\.maxFiles: /);
    // What stack up would refuse, validate refuses too: external brokers need every role's password.
    const external = path.join(dir, 'external.yaml');
    writeFileSync(external, 'brokers:\n  kind: external\n  nodes:\n    - { name: a, url: "mqtt://127.0.0.1:1883" }\n');
    const unready = await run(['config', 'validate', '--config', external]);
    expect(unready.code).toBe(2);
    expect(unready.stderr).toMatch(/brokers\.credentials\.sp: brokers\.kind is external/);
  });

  it('shows the configuration as resolved, passwords hidden', async () => {
    const file = path.join(dir, 'secret.yaml');
    writeFileSync(file, 'brokers:\n  credentials:\n    sp: { password: hunter2-of-a-fair-length }\n');
    const { code, stdout } = await run(['config', 'show', '--config', file, '--json']);
    expect(code).toBe(0);
    const shown = JSON.parse(stdout) as { brokers: { credentials: { sp: { password: string } } }; cep: object };
    expect(shown.brokers.credentials.sp.password).toBe('(set)');
    expect(shown.cep).toMatchObject({ faultTimeoutMs: 60_000 });
    expect(stdout).not.toContain('hunter2');
  });

  it('prints the JSON Schema the repository commits (infra/config/faultline.schema.json is not stale)', async () => {
    const { code, stdout } = await run(['config', 'schema']);
    expect(code).toBe(0);
    const committed = readFileSync(path.join(REPO_ROOT, 'infra/config/faultline.schema.json'), 'utf8');
    // Regenerate with: node packages/cli/dist/main.js config schema > infra/config/faultline.schema.json
    expect(JSON.parse(stdout)).toEqual(JSON.parse(committed));
    expect(readFileSync(path.join(REPO_ROOT, 'infra/config/faultline.yaml'), 'utf8')).toMatch(
      /^# yaml-language-server: \$schema=\.\/faultline\.schema\.json\n/,
    );
  });
});

describe('finding the running stack', () => {
  it('from a folder below the stack, or anywhere with FAULTLINE_STATE_DIR or --state-dir', async () => {
    const stackDir = path.join(dir, 'stack');
    const below = path.join(stackDir, 'some', 'folder');
    mkdirSync(below, { recursive: true });
    const healthy = {
      services: [{ name: 'sp-1', pid: 1, state: 'up', restarts: 0 }],
      sp: [{ node: 'sp-1', role: 'ACTIVE', epoch: 1, passiveLink: 'ready', thriftPort: 1 }],
      brokers: [{ name: 'a', port: 1, up: true }],
      clusters: [],
      actions: [],
    };
    const control = await startControl({
      runDir: path.join(stackDir, '.faultline/run'),
      handlers: { status: async () => healthy },
      logger: createMemoryLogger(),
    });
    try {
      const from = async (cwd: string, args: string[], env: NodeJS.ProcessEnv = {}) =>
        new Promise<{ code: number; stdout: string }>((resolve) =>
          execFile(process.execPath, [CLI, ...args], { cwd, env: { ...process.env, ...env } }, (error, stdout) =>
            resolve({ code: error ? Number(error.code ?? 1) : 0, stdout }),
          ),
        );
      const status = ['stack', 'status', '--json'];
      expect((await from(below, status)).code).toBe(0);
      expect((await from(dir, status)).code).toBe(1); // not below it: no stack here
      expect((await from(dir, status, { FAULTLINE_STATE_DIR: path.join(stackDir, '.faultline') })).code).toBe(0);
      expect((await from(dir, [...status, '--state-dir', path.join(stackDir, '.faultline')])).code).toBe(0);
      const answer = JSON.parse((await from(below, status)).stdout) as { degraded: string[] };
      expect(answer.degraded).toEqual([]);
    } finally {
      await control.close();
    }
  });
});
