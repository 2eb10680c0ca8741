import { execFile } from 'node:child_process';
import { constants, type Stats, statSync } from 'node:fs';
import path from 'node:path';
import { type Clock, FaultlineError, type Logger, type TimerHandle } from '@faultline/core';

/** The unprivileged user members run as when the local driver runs as root. */
export interface MemberUser {
  name: string;
  uid: number;
  gid: number;
  /** The driver created it (useradd) rather than finding it. */
  created: boolean;
}

export class MemberIsolationError extends FaultlineError {
  constructor(message: string, context: Record<string, unknown>, cause?: unknown) {
    super('FL_ERR_MEMBER_ISOLATION', message, { context, cause });
  }
}

/** What a command run without a shell ended with: code -1 when it could not be started (`error`). */
export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
  error?: NodeJS.ErrnoException;
}

/** Runs `file` with `args` (no shell, so nothing in them is interpreted). Never rejects. */
export type CommandRunner = (
  file: string,
  args: readonly string[],
  options?: { uid?: number; gid?: number; env?: NodeJS.ProcessEnv; cwd?: string },
) => Promise<CommandResult>;

/** How long one helper command (id, useradd, the reach probe) may take before it is killed. */
const COMMAND_TIMEOUT_MS = 15_000;
/** Most of a helper command's output kept: `id` prints a number, the probe a short JSON list. */
const COMMAND_MAX_OUTPUT = 1024 * 1024;

/** The real CommandRunner: execFile, killed (SIGKILL) after COMMAND_TIMEOUT_MS on `clock`. */
export function commandRunner(clock: Clock): CommandRunner {
  return (file, args, options = {}) =>
    new Promise((resolve) => {
      let timer: TimerHandle | undefined;
      const child = execFile(
        file,
        [...args],
        { ...options, encoding: 'utf8', maxBuffer: COMMAND_MAX_OUTPUT },
        (error, stdout, stderr) => {
          clock.clearTimeout(timer);
          if (!error) {
            resolve({ code: 0, stdout, stderr });
            return;
          }
          const failure = error as NodeJS.ErrnoException & { code?: number | string | null; signal?: string | null };
          // A number: the command's exit code; a string: it could not be started (ENOENT, EACCES) or said too
          // much (ERR_CHILD_PROCESS_STDIO_MAXBUFFER); neither: it was killed, by the timeout or by someone else.
          if (typeof failure.code === 'number') resolve({ code: failure.code, stdout, stderr });
          else {
            const code = failure.code ?? `killed by ${failure.signal ?? 'a signal'}`;
            resolve({ code: -1, stdout, stderr, error: Object.assign(failure, { code }) });
          }
        },
      );
      timer = clock.setTimeout(() => child.kill('SIGKILL'), COMMAND_TIMEOUT_MS);
    });
}

/** What useradd is asked for: a system account, no home folder, no login shell, no password. */
export function useraddArgs(name: string, group: 'new' | 'existing'): string[] {
  return [
    '--system',
    '--no-create-home',
    '--home-dir',
    '/nonexistent',
    '--shell',
    '/usr/sbin/nologin',
    ...(group === 'new' ? ['--user-group'] : ['--gid', name]),
    name,
  ];
}

/** A uid or gid as `id` prints it: decimal digits and a newline; anything else (empty, `0x10`, `1e3`) is none. */
function idOf(text: string): number | undefined {
  if (!/^\d{1,10}\n?$/.test(text)) return undefined;
  const id = Number.parseInt(text, 10);
  return id <= 0xffff_fffe ? id : undefined;
}

/** The user's uid and gid, or undefined when there is no such user. */
async function lookup(name: string, run: CommandRunner): Promise<{ uid: number; gid: number } | undefined> {
  const [uid, gid] = await Promise.all([run('id', ['-u', name]), run('id', ['-g', name])]);
  if (uid.error) {
    throw new MemberIsolationError(`cannot look up member user ${name}: id could not be run (${uid.error.code})`, {
      user: name,
    });
  }
  if (uid.code !== 0 || gid.code !== 0) return undefined;
  const ids = { uid: idOf(uid.stdout), gid: idOf(gid.stdout) };
  if (ids.uid === undefined || ids.gid === undefined) {
    const answer = JSON.stringify(`${uid.stdout.trim()} ${gid.stdout.trim()}`.slice(0, 80));
    throw new MemberIsolationError(`cannot look up member user ${name}: id answered ${answer}`, { user: name });
  }
  return { uid: ids.uid, gid: ids.gid };
}

/**
 * The member user `name`: looked up, and created when missing (a system
 * account without home folder, login shell or password; with its own group,
 * or the existing group of that name). Idempotent, and safe against a
 * concurrent creator: useradd refuses a name taken meanwhile (exit 9) and the
 * user is looked up again. A user that is root, or whose group is root's, is
 * refused: members would be as privileged as the platform.
 */
export async function ensureMemberUser(name: string, run: CommandRunner): Promise<MemberUser> {
  let found = await lookup(name, run);
  let created = false;
  if (!found) {
    let result = await run('useradd', useraddArgs(name, 'new'));
    // 9: the name is taken, by a user created meanwhile or by a group of that name.
    if (result.code === 9 && !(await lookup(name, run))) result = await run('useradd', useraddArgs(name, 'existing'));
    found = await lookup(name, run);
    created = result.code === 0;
    if (!found) {
      const why = result.error
        ? `useradd could not be run (${result.error.code})`
        : `useradd exited ${result.code}: ${result.stderr.trim()}`;
      throw new MemberIsolationError(
        `member user ${name} does not exist and could not be created (${why}); create it (useradd ${useraddArgs(name, 'new').join(' ')}) or name an existing unprivileged user in cloudController.local.memberUser`,
        { user: name },
      );
    }
  }
  if (found.uid === 0 || found.gid === 0) {
    throw new MemberIsolationError(
      `member user ${name} has uid ${found.uid} and gid ${found.gid}: members must not run as root or in its group; name an unprivileged user in cloudController.local.memberUser`,
      { user: name, uid: found.uid, gid: found.gid },
    );
  }
  return { name, ...found, created };
}

/** What the member user must be able to do with a path. */
export type Access = 'read' | 'search' | 'execute';

export interface ReachCheck {
  path: string;
  access: Access;
  /** What the path is, for the message: `the workload script`, `the members' folder`. */
  what: string;
}

const ACCESS_MODE: Record<Access, number> = {
  read: constants.R_OK,
  search: constants.X_OK,
  execute: constants.X_OK,
};

/**
 * Run as the member user: checks each path with access(2), so the kernel
 * decides (modes, ACLs, every folder on the way). A missing path is not its
 * business: the spawn reports it. Prints the failures as JSON.
 */
const PROBE = `
const fs = require('node:fs');
const failed = [];
for (const [file, mode] of JSON.parse(process.argv[1])) {
  try { fs.accessSync(file, mode); } catch (error) { if (error.code !== 'ENOENT') failed.push([file, error.code]); }
}
process.stdout.write(JSON.stringify(failed));
`;

/** The probe's failures, each a check it was asked to make and an error code; undefined when the answer is not such a list. */
function parseProbeAnswer(
  text: string,
  checks: readonly ReachCheck[],
): { check: ReachCheck; code: string }[] | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!Array.isArray(value)) return undefined;
  const failed: { check: ReachCheck; code: string }[] = [];
  for (const item of value) {
    const check = Array.isArray(item) ? checks.find((c) => c.path === item[0]) : undefined;
    const code = Array.isArray(item) ? item[1] : undefined;
    if (!check || typeof code !== 'string' || !/^E[A-Z0-9]{1,20}$/.test(code)) return undefined;
    failed.push({ check, code });
  }
  return failed;
}

/** The uid/gid's rights on a file of this stat (owner, else group, else others; no supplementary groups). */
function rightsOf(stat: { uid: number; gid: number; mode: number }, user: { uid: number; gid: number }): number {
  if (stat.uid === user.uid) return (stat.mode >> 6) & 7;
  if (stat.gid === user.gid) return (stat.mode >> 3) & 7;
  return stat.mode & 7;
}

/** The first folder on the way to `target` the user may not pass through, if the modes say so. */
export function blockingFolder(
  target: string,
  user: { uid: number; gid: number },
): { folder: string; mode: number; owner: number } | undefined {
  const parts = path.resolve(target).split(path.sep).filter(Boolean);
  let folder: string = path.sep;
  for (const part of parts.slice(0, -1)) {
    folder = path.join(folder, part);
    let stat: Stats;
    try {
      stat = statSync(folder);
    } catch {
      return undefined;
    }
    if ((rightsOf(stat, user) & 1) === 0) return { folder, mode: stat.mode & 0o7777, owner: stat.uid };
  }
  return undefined;
}

/** One failed check in words, with the folder that blocks it when the modes show one. */
function explain(check: ReachCheck, code: string, user: MemberUser): string {
  const blocked = blockingFolder(check.path, user);
  const where = blocked
    ? `${blocked.folder} is mode ${blocked.mode.toString(8).padStart(4, '0')} (owner uid ${blocked.owner}), which ${user.name} may not pass through`
    : `${check.access} access is refused (${code})`;
  return `${check.what} ${check.path}: ${where}`;
}

/**
 * Checks, as the member user itself (a short Node process run with its uid and
 * gid), that it can reach every path of `checks`. Throws a
 * MemberIsolationError naming each unreachable path and the folder in the way.
 */
export async function checkMemberReach(
  user: MemberUser,
  nodePath: string,
  checks: readonly ReachCheck[],
  run: CommandRunner,
): Promise<void> {
  const result = await run(
    nodePath,
    ['-e', PROBE, JSON.stringify(checks.map((check) => [check.path, ACCESS_MODE[check.access]]))],
    { uid: user.uid, gid: user.gid, env: { PATH: '/usr/bin:/bin' }, cwd: '/' },
  );
  let problems: string[];
  if (result.error || result.code !== 0) {
    // Most often the Node binary itself (or a folder above it) is out of its reach.
    const node: ReachCheck = { path: nodePath, access: 'execute', what: 'the Node binary' };
    problems = [
      result.error
        ? explain(node, String(result.error.code), user)
        : `the reach probe (${nodePath}) exited ${result.code}: ${result.stderr.trim().split('\n')[0] ?? ''}`,
    ];
  } else {
    // It ran as the member user, so its answer is checked like any input: only the paths asked about count.
    const failed = parseProbeAnswer(result.stdout, checks);
    problems =
      failed === undefined
        ? [
            `the reach probe (${nodePath}) answered ${JSON.stringify(result.stdout.slice(0, 80))}, not its list of failures`,
          ]
        : failed.map(({ check, code }) => explain(check, code, user));
  }
  if (problems.length === 0) return;
  throw new MemberIsolationError(
    `members run as ${user.name} (uid ${user.uid}), who cannot reach what they need: ${problems.join('; ')}. Put the checkout and the stack's folder where ${user.name} can pass through every folder on the way (e.g. /opt/faultline, or chmod o+x on the folder named), or run the platform as an unprivileged user (members then run as that user, unisolated)`,
    { user: user.name, uid: user.uid, problems },
  );
}

export interface MemberIdentityOptions {
  /** The configured member user (`cloudController.local.memberUser`). */
  user: string;
  log: Logger;
  /** The driver's own uid. @default process.getuid() */
  platformUid?: number;
  /** Runs `id` and `useradd` (commandRunner on the driver's Clock). */
  run: CommandRunner;
}

/**
 * Who members run as, decided at the first spawn: as root, the member user
 * (looked up or created; a failure is thrown and tried again at the next
 * spawn); as anyone else, the platform's own user, which is logged once
 * (`local_iaas.member_isolation_unavailable`): a process cannot start another
 * as a different user without root.
 */
export function memberIdentity(options: MemberIdentityOptions): () => Promise<MemberUser | undefined> {
  const platformUid = options.platformUid ?? process.getuid?.() ?? -1;
  const resolve = async (): Promise<MemberUser | undefined> => {
    if (platformUid !== 0) {
      options.log.warn('members run as the platform’s own user: only root can start them as another', {
        event: 'local_iaas.member_isolation_unavailable',
        uid: platformUid,
        memberUser: options.user,
      });
      return undefined;
    }
    const user = await ensureMemberUser(options.user, options.run);
    options.log.info(`members run as ${user.name}`, {
      event: 'local_iaas.member_user',
      user: user.name,
      uid: user.uid,
      gid: user.gid,
      created: user.created,
    });
    return user;
  };
  let pending: Promise<MemberUser | undefined> | undefined;
  return () => {
    pending ??= resolve().catch((error: unknown) => {
      pending = undefined;
      throw error;
    });
    return pending;
  };
}
