import { spawn } from 'node:child_process';
import { closeSync, constants, existsSync, fchmodSync, openSync, realpathSync } from 'node:fs';
import { chmod, chown, lstat, open, rm } from 'node:fs/promises';
import path from 'node:path';
import { type Clock, FaultlineError, type Logger, mkdirPrivate, sleep } from '@faultline/core';
import { z } from 'zod';
import { checkMemberReach, commandRunner, type MemberUser, memberIdentity, type ReachCheck } from './member-user.js';
import { describeIssues, intIn, issuesOf, portSchema } from './validate.js';

/**
 * The signal the local driver sends a member's workload (its pid, checked by
 * start time) to have it start a new cartridge agent when its agent is gone
 * (README "Autoscaler → Second witness"). The workload handles it from its
 * first line (workload-main.ts), so it never ends one.
 */
export const AGENT_RESTART_SIGNAL: NodeJS.Signals = 'SIGUSR2';

/**
 * The signal the local driver sends a member's workload (its pid, checked by
 * start time) to have it drain (README "Autoscaler → Graceful drain"): it
 * refuses new requests (503, `Connection: close`), finishes those in flight,
 * and answers `GET /drain` 200 once idle. Handled from its first line
 * (workload-main.ts); a detached workload has no terminal to hang up, so
 * nothing else sends it. SIGUSR1 is Node's own (the inspector).
 */
export const DRAIN_SIGNAL: NodeJS.Signals = 'SIGHUP';

/**
 * What the workload writes to its ready file once it listens and has started
 * its agent, and again, whole, each time it starts a new agent.
 */
export interface ReadyReport {
  pid: number;
  port: number;
  agentPid: number;
  /**
   * New agents it started on the driver's request (0 at first): absent from
   * the report of a workload that cannot start one (an earlier version).
   */
  agentRestarts?: number | undefined;
}

export interface LaunchRequest {
  memberId: string;
  /** The member's whole environment: its processes inherit nothing else. */
  env: NodeJS.ProcessEnv;
  /**
   * The member's own folder (`<runDir>/member-<id>`): created when missing,
   * the working folder of its processes, mode 0700, and the member user's
   * when members run as one. Holds the ready file and the agent's outbox.
   */
  workDir: string;
  readyFile: string;
  /**
   * stdout and stderr of the workload and its agent (their JSON log lines and
   * crash traces), opened by the launcher, mode 0600; undefined: discarded.
   */
  outputFile: string | undefined;
  /**
   * Called synchronously the moment the workload has a pid, before anything
   * else happens (the driver records the instance there, so no member runs
   * unrecorded). A throw stops the launch: the workload's group is killed and
   * the launch rejects with a SpawnError. A launcher that cannot tell may not call it.
   */
  onStarted?: (pid: number) => void;
}

/**
 * Starts a member's processes. Behind an interface so the driver's
 * bookkeeping is unit-tested without processes; the real one is below.
 */
export interface Launcher {
  /** Resolves once the workload reported ready; rejects with a SpawnError after killing whatever it started. */
  launch(request: LaunchRequest): Promise<ReadyReport>;
}

export class SpawnError extends FaultlineError {
  constructor(memberId: string, reason: string, cause?: unknown) {
    super('FL_ERR_SPAWN_FAILED', `member ${memberId} did not start: ${reason}`, { context: { memberId }, cause });
  }
}

const readyReportSchema = z.object(
  {
    pid: intIn(2, 2 ** 31 - 1),
    port: portSchema,
    agentPid: intIn(2, 2 ** 31 - 1),
    agentRestarts: intIn(0, 2 ** 31 - 1).optional(),
  },
  { error: 'not an object' },
);

/** A ready report is a few dozen bytes; anything larger is not one. */
const MAX_READY_BYTES = 4_096;

/**
 * The ready file's report: undefined while there is none, else the report or
 * why it is none. The file is in the member's folder, so the member may have
 * put anything there: a symbolic link is not followed, a FIFO does not block
 * (O_NONBLOCK), a hard link (to a file it could not read itself) is refused,
 * and no more than MAX_READY_BYTES + 1 bytes are ever read.
 */
export async function readReadyFile(file: string): Promise<ReadyReport | string | undefined> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? undefined : `cannot open it (${code})`;
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) return 'not a regular file';
    if (stat.nlink !== 1) return `a file of ${stat.nlink} links`;
    // Read at most one byte past the limit, whatever the file grows to meanwhile.
    const { bytesRead, buffer } = await handle.read(Buffer.alloc(MAX_READY_BYTES + 1), 0, MAX_READY_BYTES + 1, 0);
    if (bytesRead > MAX_READY_BYTES) return `larger than ${MAX_READY_BYTES} bytes`;
    return parseReadyReport(buffer.toString('utf8', 0, bytesRead));
  } finally {
    await handle.close();
  }
}

/** Every `node_modules` folder Node may resolve `file`'s imports from (its own folder's and each one above). */
function packageFolders(file: string): string[] {
  let dir: string;
  try {
    dir = path.dirname(realpathSync(file));
  } catch {
    return [];
  }
  const folders: string[] = [];
  for (;;) {
    const candidate = path.join(dir, 'node_modules');
    if (existsSync(candidate)) folders.push(candidate);
    const up = path.dirname(dir);
    if (up === dir) return folders;
    dir = up;
  }
}

/** The ready report in `text`, or why it is none. */
export function parseReadyReport(text: string): ReadyReport | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return 'not JSON';
  }
  const parsed = readyReportSchema.safeParse(value);
  return parsed.success ? parsed.data : describeIssues(issuesOf(parsed.error)).join('; ');
}

export interface ProcessLauncherOptions {
  nodePath: string;
  workloadMain: string;
  /** The agent's entry point (the workload starts it): the member user must be able to read it too. */
  agentMain: string;
  /** Run as root, members run as this user, created when missing (README "What members can reach"). */
  memberUser: string;
  /** Further files a member reads, checked with the rest: the agent's CA files. @default none */
  memberReads?: readonly { path: string; what: string }[];
  clock: Clock;
  log: Logger;
  /** Longest wait for the ready file. */
  spawnTimeoutMs: number;
  pollMs: number;
}

/**
 * The local launcher. The workload is spawned `detached`, which makes it the
 * leader of a new session and process group; it then starts the cartridge
 * agent as its own, non-detached child, so the agent joins that group. Node
 * cannot set a process group directly, and this keeps each member at exactly
 * two processes (no launcher in between) with the workload in the role of the
 * instance's init, which starts its agent as a VM's init would. Nothing of the
 * member is tied to the driver: stdio goes to a file (or nowhere) and the
 * child is unref'd, so the driver can exit and a new one adopt the member.
 * The ready report comes through a file rather than a pipe, because a pipe to
 * a driver that has exited would break the workload's next write.
 *
 * Run as root, the workload is started as the member user (its uid and gid,
 * no supplementary groups), and so is the agent it starts: the platform's
 * files are not theirs to read (README "What members can reach"). Before the
 * first member, that user checks it can reach the Node binary, both scripts,
 * their packages, the agent's CA files and the members' folder; what it cannot is a
 * MemberIsolationError naming the folder in the way.
 */
export function processLauncher(options: ProcessLauncherOptions): Launcher {
  const { clock, log } = options;
  const run = commandRunner(clock);
  const identity = memberIdentity({ user: options.memberUser, log, run });
  /** The reach check of each members' folder (runDir), made once; forgotten when it failed, so a fix is seen. */
  const reachChecks = new Map<string, Promise<void>>();

  /** Creates the member's folder, the member user's alone; the folder holding it passable (not listable) for that user. */
  const prepare = async (memberId: string, workDir: string, user: MemberUser | undefined) => {
    const runDir = path.dirname(workDir);
    if (user) await chmod(runDir, 0o711);
    mkdirPrivate(workDir);
    // Only the platform writes runDir, so this cannot be swapped for a link between the check and the chown.
    if (!(await lstat(workDir)).isDirectory()) throw new SpawnError(memberId, `${workDir} is not a folder`);
    if (user) await chown(workDir, user.uid, user.gid);
    await chmod(workDir, 0o700);
    if (!user) return;
    const checks: ReachCheck[] = [
      { path: options.nodePath, access: 'execute', what: 'the Node binary' },
      { path: options.workloadMain, access: 'read', what: 'the workload script' },
      { path: options.agentMain, access: 'read', what: 'the agent script' },
      ...[...new Set([...packageFolders(options.workloadMain), ...packageFolders(options.agentMain)])].map(
        (folder): ReachCheck => ({ path: folder, access: 'search', what: 'the packages folder' }),
      ),
      ...(options.memberReads ?? []).map((file): ReachCheck => ({ ...file, access: 'read' })),
      { path: workDir, access: 'search', what: "the member's folder" },
    ];
    let check = reachChecks.get(runDir);
    if (!check) {
      check = checkMemberReach(user, options.nodePath, checks, run);
      reachChecks.set(runDir, check);
      check.catch(() => reachChecks.delete(runDir));
    }
    await check;
  };

  return {
    launch: async (request) => {
      const { memberId } = request;
      if (!existsSync(options.workloadMain)) {
        throw new SpawnError(
          memberId,
          `${options.workloadMain} is missing: build first (npx tsc -b packages/cloud-controller)`,
        );
      }
      const user = await identity();
      await prepare(memberId, request.workDir, user);
      await rm(request.readyFile, { force: true });
      // The platform's file (0600 in its logs folder): the member only gets the descriptor.
      const out = request.outputFile === undefined ? 'ignore' : openSync(request.outputFile, 'a', 0o600);
      let child: ReturnType<typeof spawn>;
      try {
        // One left by an older run under the umask is made 0600 too.
        if (typeof out === 'number') fchmodSync(out, 0o600);
        child = spawn(options.nodePath, [options.workloadMain], {
          detached: true,
          stdio: ['ignore', out, out],
          env: request.env,
          cwd: request.workDir,
          ...(user ? { uid: user.uid, gid: user.gid } : {}),
        });
      } catch (cause) {
        throw new SpawnError(memberId, `spawn failed: ${String(cause)}`, cause);
      } finally {
        if (typeof out === 'number') closeSync(out);
      }
      child.unref();
      const kill = () => {
        // The whole group, even when the workload itself has exited: its agent may still be in it.
        // The id cannot have been handed to another group meanwhile: Linux keeps a pgid while any
        // member lives, and does not reuse a pid within the few milliseconds since.
        if (child.pid === undefined) return;
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // ESRCH: nothing of it is left
        }
      };
      if (child.pid !== undefined && request.onStarted) {
        try {
          request.onStarted(child.pid);
        } catch (cause) {
          kill();
          throw new SpawnError(memberId, `its instance could not be recorded: ${String(cause)}`, cause);
        }
      }
      let failure: string | undefined;
      child.on('error', (error) => {
        failure = `spawn failed: ${error.message}`;
      });
      child.once('exit', (code, signal) => {
        const output = request.outputFile ? `; its output is in ${request.outputFile}` : '';
        failure ??= `workload exited (${signal ?? `code ${code}`}) before it was ready${output}`;
        log.info('member workload exited', {
          event: 'local_iaas.workload_exited',
          memberId,
          pid: child.pid,
          code,
          signal,
        });
      });
      const deadline = clock.monotonicNow() + options.spawnTimeoutMs;
      for (;;) {
        if (failure) {
          kill();
          throw new SpawnError(memberId, failure);
        }
        const report = await readReadyFile(request.readyFile);
        if (report !== undefined) {
          if (typeof report === 'string' || report.pid !== child.pid) {
            kill();
            const why = typeof report === 'string' ? report : `pid ${report.pid} is not ${child.pid}`;
            throw new SpawnError(memberId, `invalid ready report (${why})`);
          }
          return report;
        }
        if (clock.monotonicNow() >= deadline) {
          kill();
          throw new SpawnError(memberId, `not ready within ${options.spawnTimeoutMs} ms`);
        }
        await sleep(clock, options.pollMs);
      }
    },
  };
}
