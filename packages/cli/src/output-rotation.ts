import { constants } from 'node:fs';
import { type FileHandle, lstat, open, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Clock, Logger, TimerHandle } from '@faultline/core';

/*
 * The raw output files of the logs folder that no logger of ours rotates
 * (README "Logs"): each member's `member-<id>.jsonl` (its workload's and
 * agent's stdout and stderr, written by them through a descriptor the driver
 * opened with O_APPEND), and the `<name>.log` captures of the processes the
 * supervisor starts (PostgreSQL, Mosquitto, each service's stdout). Their
 * writers hold the file open, so they cannot be renamed under them: past
 * `maxFileBytes` a file's last `maxFileBytes` are copied to `<name>.1.<ext>`
 * (the one before that to `.2`, and so on, `maxFiles` files kept in all) and
 * it is truncated to zero, as logrotate's copytruncate does. An O_APPEND
 * writer goes on at the new end; what it writes between the copy and the
 * truncate (a few milliseconds) is lost, which is the price of not stopping
 * it. A copy that fails (a full disk) still truncates: the output is lost,
 * said in the log, and the disk is not filled. Links are never followed: the
 * supervisor may run as root, and a link in the folder is not its output.
 */

/** Files rotated here: members' output, and processes' `.log` captures. `<service>.jsonl` rotates itself. */
const RAW_OUTPUT = /^(member-[A-Za-z0-9._-]+\.jsonl|[A-Za-z0-9_-]+\.log)$/;
/** A rotated copy: `<base>.<n>.<ext>`; never rotated again here. */
const ROTATED = /\.\d+\.(jsonl|log)$/;

export interface OutputRotationOptions {
  dir: string;
  /** A file past this size is rotated (logging.maxFileBytes). */
  maxFileBytes: number;
  /** Files kept per output, the current one included (logging.maxFiles). */
  maxFiles: number;
  /** Between two looks at the folder. */
  intervalMs: number;
  clock: Clock;
  logger: Logger;
}

export interface OutputRotation {
  /** One look at the folder now: the files rotated. Never rejects. */
  runOnce(): Promise<string[]>;
  /** No more looks; resolves once a look under way has ended. */
  stop(): Promise<void>;
}

/** `member-a.jsonl`, 2 → `member-a.2.jsonl`. */
export function rotatedName(name: string, n: number): string {
  const ext = path.extname(name);
  return `${name.slice(0, -ext.length)}.${n}${ext}`;
}

export function startOutputRotation(options: OutputRotationOptions): OutputRotation {
  const { dir, maxFileBytes, maxFiles, clock, logger } = options;
  let timer: TimerHandle | undefined;
  let stopped = false;
  let running: Promise<string[]> | undefined;

  /** The last `maxFileBytes` of `source` into a new file `target` (0600, never through a link). */
  const copyTail = async (source: FileHandle, size: number, target: string): Promise<void> => {
    const length = Math.min(size, maxFileBytes);
    const buffer = Buffer.allocUnsafe(length);
    const { bytesRead } = await source.read(buffer, 0, length, size - length);
    const out = await open(
      target,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      0o600,
    );
    try {
      await out.write(buffer, 0, bytesRead);
    } finally {
      await out.close();
    }
  };

  /** Rotates `name`; resolves whether its copy was kept (false: truncated without one). */
  const rotate = async (name: string, size: number): Promise<{ copied: boolean; error?: unknown }> => {
    const file = path.join(dir, name);
    // Opened first, never through a link: what is truncated is the file the look found.
    const handle = await open(file, constants.O_RDWR | constants.O_NOFOLLOW);
    try {
      let copyError: unknown;
      try {
        await rm(path.join(dir, rotatedName(name, maxFiles - 1)), { force: true });
        for (let n = maxFiles - 2; n >= 1; n--) {
          await rename(path.join(dir, rotatedName(name, n)), path.join(dir, rotatedName(name, n + 1))).catch(
            (error: NodeJS.ErrnoException) => {
              if (error.code !== 'ENOENT') throw error;
            },
          );
        }
        const target = path.join(dir, rotatedName(name, 1));
        await rm(target, { force: true });
        await copyTail(handle, size, target);
      } catch (error) {
        copyError = error;
      }
      // Truncated whatever became of the copy: a full disk must not keep the file growing.
      await handle.truncate(0);
      return copyError === undefined ? { copied: true } : { copied: false, error: copyError };
    } finally {
      await handle.close();
    }
  };

  const look = async (): Promise<string[]> => {
    const rotated: string[] = [];
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT')
        logger.warn('logs folder not readable: raw outputs not rotated this time', {
          event: 'stack.output_rotation_failed',
          dir,
          error,
        });
      return rotated;
    }
    for (const name of names) {
      if (stopped) break;
      if (!RAW_OUTPUT.test(name) || ROTATED.test(name)) continue;
      try {
        // A link (or anything but a plain file) is not an output of ours: left alone.
        const info = await lstat(path.join(dir, name));
        if (!info.isFile() || info.size <= maxFileBytes) continue;
        const done = await rotate(name, info.size);
        rotated.push(name);
        if (done.copied)
          logger.info('raw output rotated (its end copied, then truncated)', {
            event: 'stack.output_rotated',
            file: name,
            bytes: info.size,
          });
        else
          logger.warn('raw output truncated without a copy: the copy failed (a full disk?); its content is lost', {
            event: 'stack.output_truncated',
            file: name,
            bytes: info.size,
            error: done.error,
          });
      } catch (error) {
        // Gone meanwhile (a member removed), or a full disk: the next look tries again.
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
        logger.warn('raw output not rotated: tried again at the next look', {
          event: 'stack.output_rotation_failed',
          file: name,
          error,
        });
      }
    }
    return rotated;
  };

  const runOnce = (): Promise<string[]> => {
    // One look at a time: a slow disk never stacks them up.
    running ??= look().finally(() => {
      running = undefined;
    });
    return running;
  };

  const schedule = () => {
    if (stopped) return;
    timer = clock.setTimeout(() => {
      void runOnce().finally(schedule);
    }, options.intervalMs);
  };
  schedule();

  return {
    runOnce,
    stop: async () => {
      stopped = true;
      clock.clearTimeout(timer);
      await running?.catch(() => {});
    },
  };
}
