import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '@faultline/core';
import { describe, expect, it } from 'vitest';

const idlDir = path.join(REPO_ROOT, 'infra/thrift');
const generatedDir = path.join(REPO_ROOT, 'packages/protocol/generated');
const hasThrift = spawnSync('thrift', ['--version']).status === 0;

describe('committed Thrift bindings', () => {
  it('were generated from the current IDL (checksum)', () => {
    const recorded = readFileSync(path.join(generatedDir, 'IDL.sha256'), 'utf8').trim().split('\n');
    const current = readdirSync(idlDir)
      .filter((name) => name.endsWith('.thrift'))
      .sort()
      .map(
        (name) =>
          `${createHash('sha256')
            .update(readFileSync(path.join(idlDir, name)))
            .digest('hex')}  ./${name}`,
      );
    expect(recorded, 'run scripts/gen-thrift and commit the result').toEqual(current);
  });

  it.skipIf(!hasThrift)('match a fresh regeneration byte for byte', () => {
    const out = mkdtempSync(path.join(os.tmpdir(), 'faultline-gen-'));
    execFileSync('bash', [path.join(REPO_ROOT, 'scripts/gen-thrift'), out], { stdio: 'pipe' });
    for (const name of readdirSync(generatedDir)) {
      expect(readFileSync(path.join(out, name), 'utf8'), name).toBe(
        readFileSync(path.join(generatedDir, name), 'utf8'),
      );
    }
    expect(readdirSync(out).sort()).toEqual(readdirSync(generatedDir).sort());
  });
});
