import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';

/*
 * What the isolation tests (run as root) ask of the machine: who a process
 * runs as, which process serves a PostgreSQL data folder, and what a given
 * uid and gid can read.
 */
const run = promisify(execFile);

/** Uid and gid (real, effective, saved, fs) and supplementary groups of a process, from /proc/<pid>/status. */
export function processIds(pid: number): { uid: number[]; gid: number[]; groups: number[] } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) =>
    (new RegExp(`^${name}:(.*)$`, 'm').exec(status)?.[1] ?? '').trim().split(/\s+/).filter(Boolean).map(Number);
  return { uid: field('Uid'), gid: field('Gid'), groups: field('Groups') };
}

/** A user's uid and gid, as `id` prints them. */
export async function userIds(name: string): Promise<{ uid: number; gid: number }> {
  const [uid, gid] = await Promise.all([run('id', ['-u', name]), run('id', ['-g', name])]);
  return { uid: Number(uid.stdout), gid: Number(gid.stdout) };
}

/** The postmaster serving `dataDir`: the process whose command line is `…/postgres -D <dataDir> …`. */
export function postmasterOf(dataDir: string): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (argv[0]?.endsWith('/postgres') && argv[1] === '-D' && argv[2] === dataDir) return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

/**
 * Reads each path as a process with exactly this uid and gid, no
 * supplementary groups and an empty environment (how the local driver starts
 * a member): `read`, or the error code. A path ending in `/` is listed instead.
 */
export async function readAs(uid: number, gid: number, paths: readonly string[]): Promise<Record<string, string>> {
  const probe = `
    const fs = require('node:fs');
    const out = {};
    for (const p of JSON.parse(process.argv[1])) {
      try { p.endsWith('/') ? fs.readdirSync(p) : fs.readFileSync(p); out[p] = 'read'; } catch (e) { out[p] = e.code; }
    }
    process.stdout.write(JSON.stringify(out));`;
  const { stdout } = await run(process.execPath, ['-e', probe, JSON.stringify(paths)], { uid, gid, cwd: '/', env: {} });
  return JSON.parse(stdout) as Record<string, string>;
}
