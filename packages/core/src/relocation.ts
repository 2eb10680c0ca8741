import { createHash } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { RelocationError } from './errors.js';
import { withDefaults } from './lifecycle.js';
import { type Logger, nullLogger } from './logger.js';
import { ensureRuntimeMirror } from './runtime-mirror.js';

/**
 * Where, run as root, what the `postgres` user and the member user must reach
 * goes when they cannot reach it where it is (a checkout in a home folder of
 * mode 0700, such as `/root/faultline`): each checkout and each stack folder
 * gets a folder of its own in here, root's (README "What members can
 * reach"). The only place this path is written.
 */
export const RELOCATION_ROOT = '/var/lib/faultline';

/** The folders of a checkout the members and PostgreSQL run code from: the mirror is made when one is out of reach. */
export const RUNTIME_FOLDERS = [
  'node_modules',
  'packages/cloud-controller/dist',
  'packages/cartridge-agent/dist',
] as const;

/** Everyone but the owner and the group may pass through every existing folder from `/` down to `dir`. */
export function othersCanPass(dir: string): boolean {
  const chains = [path.resolve(dir)];
  try {
    chains.push(realpathSync(dir));
  } catch {
    // Not there yet: the literal path's folders are what will be walked.
  }
  for (const target of chains) {
    let folder: string = path.sep;
    for (const part of ['', ...target.split(path.sep).filter(Boolean)]) {
      folder = path.join(folder, part);
      let mode: number;
      try {
        mode = statSync(folder).mode;
      } catch {
        break; // missing from here on: created later, with the usual modes
      }
      if ((mode & 0o001) === 0) return false;
    }
  }
  return true;
}

/** `<basename>-<8 hex of the path's SHA-256>`: one folder per checkout or stack folder, recognisable by name. */
export function relocationKey(dir: string): string {
  const resolved = path.resolve(dir);
  const name = path.basename(resolved).replace(/[^A-Za-z0-9._-]/g, '_') || 'root';
  return `${name}-${createHash('sha256').update(resolved).digest('hex').slice(0, 8)}`;
}

export interface RuntimeLayoutInput {
  /** The checkout whose code the members and PostgreSQL run (REPO_ROOT). */
  codeRoot: string;
  /** The process's uid. @default process.getuid() */
  uid?: number;
  /** @default RELOCATION_ROOT */
  relocationRoot?: string;
  /**
   * Whether an unprivileged user that owns none of them can pass through every
   * existing folder from `/` down to `dir`, itself included.
   * @default othersCanPass (the modes' "others" bits)
   */
  canPass?: (dir: string) => boolean;
}

/** Where the members and PostgreSQL load a checkout's code from. */
export interface RuntimeLayout {
  /** The checkout, or its mirror: the `runtimeDir` of the local driver and of the embedded PostgreSQL. */
  runtimeDir: string;
  /** Set when the checkout is out of reach: its runtime is copied from `from` to `to` (= runtimeDir). */
  mirror: { from: string; to: string } | undefined;
  /** The checkout's folder under the relocation root, which holds the mirror; undefined when nothing moves. */
  dir: string | undefined;
}

/**
 * The one decision of where the members and PostgreSQL run a checkout's code
 * from (README "What members can reach"), the stack's and the tests' alike.
 * Not root: the checkout (they run as this user). Root: PostgreSQL runs as
 * `postgres` and the members as the member user; when they cannot pass
 * through a folder of RUNTIME_FOLDERS, a runtime mirror in
 * `<root>/<checkout key>/runtime`, one per checkout, made by
 * prepareRelocation. Pure but for `canPass` (the file modes).
 */
export function runtimeLayout(input: RuntimeLayoutInput): RuntimeLayout {
  const { uid, relocationRoot, canPass } = withDefaults(
    { uid: process.getuid?.() ?? -1, relocationRoot: RELOCATION_ROOT, canPass: othersCanPass },
    input,
  );
  const codeRoot = path.resolve(input.codeRoot);
  if (uid !== 0 || RUNTIME_FOLDERS.every((folder) => canPass(path.join(codeRoot, folder)))) {
    return { runtimeDir: codeRoot, mirror: undefined, dir: undefined };
  }
  const dir = path.join(relocationRoot, relocationKey(codeRoot));
  const runtimeDir = path.join(dir, 'runtime');
  return { runtimeDir, mirror: { from: codeRoot, to: runtimeDir }, dir };
}

/**
 * A folder of the relocation root, root's alone: created (0755) when missing;
 * an existing one must be a folder owned by root that nobody else may write
 * (anyone who could would choose what root loads and members run). The root
 * itself may be a link to such a folder (a volume); the folders in it may not;
 * no folder above it may let anyone else swap it (openAncestor).
 */
function ensureRootFolder(dir: string, relocationRoot: string, isRoot = false): void {
  const advice = `Make ${relocationRoot} a folder root can write and only root can (in a container with a read-only root filesystem, mount a volume there), put the checkout and the stack's folder where every user can pass through (e.g. /opt/faultline), or run the stack and the tests as an unprivileged user`;
  try {
    mkdirSync(dir, { mode: 0o755 });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EEXIST') {
      throw new RelocationError(
        `cannot create ${dir} (${code ?? String(error)}), where what the postgres and member users must reach goes when they cannot reach the checkout. ${advice}`,
        { dir, code },
        error,
      );
    }
  }
  const stat = isRoot ? statSync(dir) : lstatSync(dir);
  if (!stat.isDirectory() || stat.uid !== 0 || (stat.mode & 0o022) !== 0) {
    const what = !stat.isDirectory()
      ? 'is not a folder'
      : `is mode ${(stat.mode & 0o7777).toString(8).padStart(4, '0')}, owner uid ${stat.uid}: not root's alone`;
    throw new RelocationError(`${dir} ${what}. ${advice}`, { dir, uid: stat.uid, mode: stat.mode & 0o7777 });
  }
  if (isRoot) {
    const above = openAncestor(dir);
    if (above) {
      throw new RelocationError(
        `${above.folder}, above ${dir}, is mode ${above.mode.toString(8).padStart(4, '0')}, owner uid ${above.uid}: whoever can write there can put another folder in its place. ${advice}`,
        { dir, folder: above.folder, uid: above.uid, mode: above.mode },
      );
    }
  }
  if ((stat.mode & 0o7777) !== 0o755) chmodSync(dir, 0o755);
}

/**
 * The first folder above `dir` (its real path) that someone but root could
 * rename `dir` or a folder on its way out of, and put their own in its place:
 * one not root's, or writable by its group or others without the sticky bit
 * (as `/tmp` has, where only an entry's owner may rename it).
 */
function openAncestor(dir: string): { folder: string; uid: number; mode: number } | undefined {
  let folder = realpathSync(dir);
  for (;;) {
    const up = path.dirname(folder);
    if (up === folder) return undefined;
    folder = up;
    const stat = statSync(folder);
    const writable = (stat.mode & 0o022) !== 0 && (stat.mode & 0o1000) === 0;
    if (stat.uid !== 0 || writable) return { folder, uid: stat.uid, mode: stat.mode & 0o7777 };
  }
}

export interface RelocationPlan {
  /** @default RELOCATION_ROOT */
  relocationRoot?: string;
  /** The folders under the relocation root to create, root's (0755), before anything is put in them. */
  dirs: readonly string[];
  /** The runtime mirror to make or refresh (ensureRuntimeMirror), if any. */
  mirror: { from: string; to: string } | undefined;
  /** @default nullLogger */
  logger?: Logger;
}

/**
 * Makes a relocation real: the relocation root and each of `dirs` under it,
 * root's (ensureRootFolder), then the runtime mirror. Nothing to do when
 * there are no `dirs`. Throws a RelocationError (FL_ERR_RELOCATION_FAILED)
 * naming the folder and what to do when one cannot be made or is not root's
 * alone, or when what moved is still out of the users' reach (a folder above
 * the relocation root).
 */
export function prepareRelocation(input: RelocationPlan): void {
  const plan = withDefaults({ relocationRoot: RELOCATION_ROOT, logger: nullLogger }, input);
  if (plan.dirs.length === 0) return;
  const { relocationRoot } = plan;
  ensureRootFolder(relocationRoot, relocationRoot, true);
  for (const dir of plan.dirs) ensureRootFolder(dir, relocationRoot);
  if (plan.mirror) {
    try {
      ensureRuntimeMirror({ ...plan.mirror, logger: plan.logger });
    } catch (error) {
      if (error instanceof RelocationError) throw error;
      const code = (error as NodeJS.ErrnoException).code;
      throw new RelocationError(
        `cannot copy the runtime to ${plan.mirror.to} (${code ?? (error instanceof Error ? error.message : String(error))}): free space there, or put the checkout where every user can pass through (e.g. /opt/faultline)`,
        { dir: plan.mirror.to, code },
        error,
      );
    }
  }
  for (const dir of plan.dirs) {
    if (!othersCanPass(dir)) {
      throw new RelocationError(
        `${dir} is still out of the postgres and member users' reach: a folder above it may not be passed through. Give ${relocationRoot} and the folders above it mode 0755`,
        { dir },
      );
    }
  }
}
