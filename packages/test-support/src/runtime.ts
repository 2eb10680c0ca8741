import { prepareRelocation, REPO_ROOT, type RuntimeLayout, runtimeLayout } from '@faultline/core';

let prepared: RuntimeLayout | undefined;

/**
 * The runtime folder this checkout's members and embedded PostgreSQL run
 * from in the tests, decided as `faultline stack up` decides it (core's
 * runtimeLayout, README "What members can reach"): undefined where the
 * `postgres` and member users can reach the checkout (not root, or a
 * checkout every user can pass through) and nothing is copied; run as root
 * from a checkout they cannot reach (`/root/faultline`, `/root` being
 * 0700), the checkout's runtime mirror under `/var/lib/faultline`, made or
 * refreshed on the first call of a test file (the same one folder per
 * checkout the stack uses, reused across runs). Give it to the local driver
 * (`createLocalIaas({ runtimeDir })`, `cloudController.local.runtimeDir`) and
 * to `startEmbeddedPostgres`; startPostgres uses it itself.
 */
export function testRuntimeDir(): string | undefined {
  if (!prepared) {
    const layout = runtimeLayout({ codeRoot: REPO_ROOT });
    prepareRelocation({ dirs: layout.dir ? [layout.dir] : [], mirror: layout.mirror });
    prepared = layout;
  }
  return prepared.mirror ? prepared.runtimeDir : undefined;
}
