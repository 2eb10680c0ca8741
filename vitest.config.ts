import { readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { defineConfig } from 'vitest/config';

const root = import.meta.dirname;
// Tests run the TypeScript sources of every workspace package directly; child
// processes started by integration and e2e tests run the built `dist/` (npm
// test builds first). `@faultline/<name>/testing` is a package's test doubles
// (src/testing/), `@faultline/<name>` its production surface.
const packages = readdirSync(path.join(root, 'packages'));
const alias = packages.flatMap((name) => [
  { find: `@faultline/${name}/testing`, replacement: path.join(root, 'packages', name, 'src/testing/index.ts') },
  { find: new RegExp(`^@faultline/${name}$`), replacement: path.join(root, 'packages', name, 'src/index.ts') },
]);

export default defineConfig({
  resolve: { alias },
  test: {
    projects: [
      {
        resolve: { alias },
        test: {
          name: 'unit',
          include: ['packages/*/src/**/*.test.ts'],
          // Fake time, no process of their own: every core (vitest's default leaves one idle), at most
          // the slots test-support's freePort has port ranges for.
          maxWorkers: Math.min(8, os.availableParallelism()),
          // A few do seconds of real work (an outbox of 3 000 members' ticks, a streamed snapshot under
          // load, 5 000 random payloads) and share the cores with the integration files that run beside.
          testTimeout: 20_000,
        },
      },
      {
        resolve: { alias },
        test: {
          name: 'integration',
          include: [
            'packages/*/test/**/*.test.ts',
            'test/integration/**/*.test.ts',
            'test/interop/**/*.test.ts',
            // Attacks on real processes, as a hostile peer would make them.
            'test/security/**/*.test.ts',
          ],
          testTimeout: 60_000,
          hookTimeout: 60_000,
          // Most of their time is spent waiting on real timers, leases and processes, not on a core:
          // two files at a time even on two cores, each worker's ports from a range of its own
          // (test-support's freePort).
          maxWorkers: Math.min(8, Math.max(2, os.availableParallelism())),
        },
      },
      {
        resolve: { alias },
        test: {
          // The whole stack as a user starts it, broken on purpose: one file, run alone.
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          // Each file runs a whole stack (the nemesis one breaks it on a schedule): one at a time, so
          // no stack's timings are judged under another's load.
          fileParallelism: false,
          testTimeout: 180_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
