import { execFileSync } from 'node:child_process';
import { linkSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readReadyFile } from './launcher.js';

/*
 * The ready file is in the member's own folder: whatever the member put there
 * under that name is read by the driver (root, when members run as the member
 * user), so it is read as hostile input.
 */
describe('readReadyFile', () => {
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'faultline-ready-'));
    file = path.join(dir, 'ready.json');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('is undefined while there is none, and the report once there is one', async () => {
    expect(await readReadyFile(file)).toBeUndefined();
    writeFileSync(file, JSON.stringify({ pid: 100, port: 8080, agentPid: 101 }));
    expect(await readReadyFile(file)).toEqual({ pid: 100, port: 8080, agentPid: 101 });
  });

  it('does not follow a symbolic link to a file the member may not read', async () => {
    const platform = path.join(dir, 'platform.json');
    writeFileSync(platform, JSON.stringify({ pid: 100, port: 8080, agentPid: 101 }));
    symlinkSync(platform, file);
    expect(await readReadyFile(file)).toBe('cannot open it (ELOOP)');
  });

  it('refuses a hard link to another file', async () => {
    const platform = path.join(dir, 'platform.json');
    writeFileSync(platform, JSON.stringify({ pid: 100, port: 8080, agentPid: 101 }));
    linkSync(platform, file);
    expect(await readReadyFile(file)).toBe('a file of 2 links');
  });

  it('does not block on a FIFO, and refuses a folder', async () => {
    execFileSync('mkfifo', [file]);
    expect(await readReadyFile(file)).toBe('not a regular file');
    rmSync(file);
    execFileSync('mkdir', [file]);
    expect(await readReadyFile(file)).toBe('not a regular file');
  });

  it('refuses a file over 4 KiB without reading it whole, and one that is not a report', async () => {
    writeFileSync(file, `{"pid":100,"port":8080,"agentPid":101}${' '.repeat(8_000)}`);
    expect(await readReadyFile(file)).toBe('larger than 4096 bytes');
    writeFileSync(file, 'not json');
    expect(await readReadyFile(file)).toBe('not JSON');
    writeFileSync(file, JSON.stringify({ pid: 1, port: 8080, agentPid: 101 }));
    expect(await readReadyFile(file)).toMatch(/^pid: /);
  });
});
