#!/usr/bin/env node
// Completes package-lock.json with the other platforms' optional binaries
// (turbo's @turbo/darwin-64, Biome's @biomejs/cli-win32-x64, …).
//
// Why: the npm registry this project installs from serves only the Linux
// builds of those packages, so `npm install` cannot record the others, and
// npm 11's `npm ci` then refuses the lock as out of sync ("Missing: … from
// lock file"). Each added entry carries the os/cpu the package is built for,
// so `npm ci` skips it on this platform without fetching anything.
// Run after every `npm install` that changes the lock (npm run lock).
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const file = path.join(root, 'package-lock.json');
const lock = JSON.parse(readFileSync(file, 'utf8'));

const OS = {
  darwin: 'darwin',
  linux: 'linux',
  windows: 'win32',
  win32: 'win32',
  android: 'android',
  freebsd: 'freebsd',
};
const CPU = { 64: 'x64', x64: 'x64', arm64: 'arm64', arm: 'arm', ia32: 'ia32' };

/** `@turbo/darwin-64` → darwin/x64; `@biomejs/cli-linux-x64-musl` → linux/x64/musl. */
function platformOf(name) {
  const parts = name.split('/').pop().split('-');
  const osIndex = parts.findIndex((p) => p in OS);
  if (osIndex < 0) return undefined;
  const cpu = CPU[parts[osIndex + 1]];
  if (!cpu) return undefined;
  const entry = { os: [OS[parts[osIndex]]], cpu: [cpu] };
  if (parts[osIndex + 2] === 'musl') entry.libc = ['musl'];
  return entry;
}

let added = 0;
for (const [key, pkg] of Object.entries(lock.packages)) {
  for (const [dep, version] of Object.entries(pkg.optionalDependencies ?? {})) {
    const depKey = `node_modules/${dep}`;
    if (lock.packages[depKey]) continue;
    const platform = platformOf(dep);
    if (!platform) {
      console.error(
        `lock-platforms: ${dep} (optional dependency of ${key || 'the root'}) is missing and not a platform binary`,
      );
      process.exitCode = 1;
      continue;
    }
    lock.packages[depKey] = { version, ...platform, optional: true, ...(pkg.dev ? { dev: true } : {}) };
    added += 1;
  }
}
lock.packages = Object.fromEntries(
  Object.entries(lock.packages).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a < b ? -1 : 1)),
);
writeFileSync(file, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`lock-platforms: added ${added} platform entries`);
