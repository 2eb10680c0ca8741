import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { RELOCATION_ROOT, RUNTIME_FOLDERS, relocationKey, runtimeLayout } from './relocation.js';

/** Folders the postgres and member users cannot pass through: everything under /root (drwx------). */
const homeIsClosed = (dir: string) => !(dir === '/root' || dir.startsWith('/root/'));

describe('runtimeLayout', () => {
  it('not root: the checkout, wherever it is (PostgreSQL and the members run as this user)', () => {
    expect(runtimeLayout({ codeRoot: '/root/faultline', uid: 1000, canPass: homeIsClosed })).toEqual({
      runtimeDir: '/root/faultline',
      mirror: undefined,
      dir: undefined,
    });
  });

  it('root, a checkout every user can pass through: the checkout, nothing to copy', () => {
    const asked: string[] = [];
    const layout = runtimeLayout({
      codeRoot: '/opt/faultline/',
      uid: 0,
      canPass: (dir) => {
        asked.push(dir);
        return true;
      },
    });
    expect(layout).toEqual({ runtimeDir: '/opt/faultline', mirror: undefined, dir: undefined });
    expect(asked).toEqual(RUNTIME_FOLDERS.map((folder) => path.join('/opt/faultline', folder)));
  });

  it('root, a checkout in a closed home folder: its mirror, one folder per checkout under the relocation root', () => {
    const dir = path.join(RELOCATION_ROOT, relocationKey('/root/faultline'));
    expect(runtimeLayout({ codeRoot: '/root/faultline', uid: 0, canPass: homeIsClosed })).toEqual({
      runtimeDir: `${dir}/runtime`,
      mirror: { from: '/root/faultline', to: `${dir}/runtime` },
      dir,
    });
    // One closed folder is enough (a node_modules of mode 0700).
    const closed = runtimeLayout({
      codeRoot: '/srv/faultline',
      uid: 0,
      relocationRoot: '/data/fl',
      canPass: (folder) => !folder.endsWith('cartridge-agent/dist'),
    });
    expect(closed.runtimeDir).toBe(path.join('/data/fl', relocationKey('/srv/faultline'), 'runtime'));
  });
});
