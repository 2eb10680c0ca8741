import { existsSync, readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { MIRROR_MANIFEST, RELOCATION_ROOT, REPO_ROOT, relocationKey, runtimeLayout } from '@faultline/core';
import { describe, expect, it } from 'vitest';
import { testRuntimeDir } from '../src/index.js';

/*
 * The runtime the tests run members and PostgreSQL from: the checkout where
 * the postgres and member users reach it (nothing copied), else the same
 * runtime mirror `faultline stack up` would use for this checkout.
 */
describe('testRuntimeDir', () => {
  const layout = runtimeLayout({ codeRoot: REPO_ROOT });

  it.skipIf(layout.mirror !== undefined)('is undefined where the checkout is reachable, and copies nothing', () => {
    expect(testRuntimeDir()).toBeUndefined();
    expect(existsSync(path.join(RELOCATION_ROOT, relocationKey(REPO_ROOT)))).toBe(false);
  });

  it.skipIf(layout.mirror === undefined)('is the checkout’s runtime mirror where it is not, made once', () => {
    const runtimeDir = testRuntimeDir();
    expect(runtimeDir).toBe(layout.runtimeDir);
    const manifest = JSON.parse(readFileSync(path.join(runtimeDir as string, MIRROR_MANIFEST), 'utf8'));
    expect(manifest.source).toBe(realpathSync(REPO_ROOT));
    for (const script of ['packages/cloud-controller/dist/workload-main.js', 'packages/cartridge-agent/dist/main.js']) {
      expect(existsSync(path.join(runtimeDir as string, script)), script).toBe(true);
    }
    expect(testRuntimeDir()).toBe(runtimeDir);
  });
});
