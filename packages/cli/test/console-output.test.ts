import { spawn } from 'node:child_process';
import path from 'node:path';
import { REPO_ROOT } from '@faultline/core';
import { describe, expect, it } from 'vitest';

/*
 * `npm run stack | tee log`, then Ctrl-C: tee dies first, and every later
 * write of the supervisor to its stdout fails with EPIPE. A supervisor (the
 * CLI's dist) whose service keeps printing, its stdout's reader gone: it
 * must stop its stack and exit 0, not die of an 'error' event halfway.
 */

const dist = (file: string) => JSON.stringify(path.join(REPO_ROOT, 'packages', file));

/** Runs a supervisor whose console is `guarded` or node's bare stdout; its reader goes away after the first line. */
async function supervisorWithClosedStdout(guarded: boolean): Promise<{ code: number | null; stderr: string }> {
  const script = `
    import { Supervisor } from ${dist('cli/dist/index.js')};
    import { guardConsole } from ${dist('cli/dist/console-output.js')};
    import { nullLogger, systemClock } from ${dist('core/dist/index.js')};
    const write = ${guarded} ? guardConsole().write : (line) => process.stdout.write(line + '\\n');
    const s = new Supervisor({ clock: systemClock, logger: nullLogger, write });
    await s.start({
      name: 'chatty', command: process.execPath, args: ['-e', 'setInterval(() => console.log("x".repeat(500)), 1)'],
      ready: async () => true, restart: false,
    });
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    await s.stopAll();
    process.stderr.write('stopped\\n');
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk) => {
    stderr += String(chunk);
  });
  // The reader goes away (tee killed by the same Ctrl-C) once the supervisor has printed.
  await new Promise((resolve) => child.stdout.once('data', resolve));
  child.stdout.destroy();
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  return { code, stderr };
}

describe('the supervisor’s console', () => {
  it('outlives its reader: EPIPE on stdout stops the console output, not the supervisor', async () => {
    const { code, stderr } = await supervisorWithClosedStdout(true);
    expect(stderr).toContain('stopped');
    expect(code).toBe(0);
  });

  it('(the hazard) dies of the EPIPE when nothing listens for it', async () => {
    const { code, stderr } = await supervisorWithClosedStdout(false);
    expect(stderr).toMatch(/EPIPE/);
    expect(stderr).not.toContain('stopped');
    expect(code).not.toBe(0);
  });
});
