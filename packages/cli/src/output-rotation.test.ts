import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { systemClock } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { rotatedName, startOutputRotation } from './output-rotation.js';

/*
 * The raw outputs of the logs folder (README "Logs"): a member's output and
 * a process's .log capture are written by processes that hold them open, so
 * past the size bound they are copied and truncated, their writers going on
 * at the new end.
 */

const dirs: string[] = [];
afterEach(() => {
  vi.useRealTimers();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
const folder = () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'faultline-outputs-'));
  dirs.push(dir);
  return dir;
};

/** A rotation of `dir`: 1 000 bytes a file at most, a look a minute. */
const rotationOf = (dir: string, logger = createMemoryLogger(), maxFiles = 3) =>
  startOutputRotation({ dir, maxFileBytes: 1_000, maxFiles, intervalMs: 60_000, clock: systemClock, logger });

describe('raw output rotation', () => {
  it('copies a member’s output past the bound to .1 and truncates it; its O_APPEND writer goes on at the start', async () => {
    const dir = folder();
    const file = path.join(dir, 'member-php-a1b2c3.jsonl');
    // As the driver opens it for the member's processes: append mode, 0600.
    const fd = openSync(file, 'a', 0o600);
    try {
      writeSync(fd, `${'{"old":true}\n'.repeat(100)}`);
      const logger = createMemoryLogger();
      const rotation = rotationOf(dir, logger);
      expect(await rotation.runOnce()).toEqual(['member-php-a1b2c3.jsonl']);
      rotation.stop();
      // Its last maxFileBytes: a copy never takes more than the bound, whatever the file had grown to.
      expect(readFileSync(path.join(dir, 'member-php-a1b2c3.1.jsonl'), 'utf8')).toBe(
        '{"old":true}\n'.repeat(100).slice(-1_000),
      );
      expect(statSync(path.join(dir, 'member-php-a1b2c3.1.jsonl')).mode & 0o777).toBe(0o600);
      expect(statSync(file).size).toBe(0);
      // The writer's next line lands at the new end, not past a hole where the old content was.
      writeSync(fd, '{"new":true}\n');
      expect(readFileSync(file, 'utf8')).toBe('{"new":true}\n');
      expect(logger.events()).toContain('stack.output_rotated');
    } finally {
      closeSync(fd);
    }
  });

  it('keeps maxFiles per output, rotates .log captures too, and leaves self-rotating service logs and rotated copies alone', async () => {
    const dir = folder();
    const big = 'x'.repeat(2_000);
    const rotation = rotationOf(dir);
    for (let round = 1; round <= 4; round++) {
      writeFileSync(path.join(dir, 'postgres.log'), `${round}${big}`);
      writeFileSync(path.join(dir, 'sp-1.jsonl'), big);
      expect(await rotation.runOnce()).toEqual(['postgres.log']);
    }
    expect(readFileSync(path.join(dir, rotatedName('postgres.log', 1)), 'utf8')).toBe(big.slice(-1_000));
    expect(readFileSync(path.join(dir, rotatedName('postgres.log', 2)), 'utf8')).toBe(big.slice(-1_000));
    expect(existsSync(path.join(dir, rotatedName('postgres.log', 3)))).toBe(false);
    // Below the bound: nothing to do.
    writeFileSync(path.join(dir, 'mosquitto-a.log'), 'small');
    expect(await rotation.runOnce()).toEqual([]);
    expect(statSync(path.join(dir, 'sp-1.jsonl')).size).toBe(2_000);
    rotation.stop();
  });

  it('looks every intervalMs on its clock (fake time), one look at a time, and a missing folder is no failure', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const dir = folder();
    const file = path.join(dir, 'member-php-x.jsonl');
    writeFileSync(file, 'y'.repeat(2_000));
    const logger = createMemoryLogger();
    const rotation = rotationOf(dir, logger, 2);
    // Real I/O completes on its own: a few turns are enough for a look that started.
    const settle = async () => {
      for (let i = 0; i < 50; i++) await new Promise((resolve) => setImmediate(resolve));
    };
    await vi.advanceTimersByTimeAsync(59_999);
    await settle();
    expect(statSync(file).size).toBe(2_000);
    await vi.advanceTimersByTimeAsync(1);
    await settle();
    await rotation.runOnce();
    expect(statSync(file).size).toBe(0);
    expect(statSync(path.join(dir, 'member-php-x.1.jsonl')).size).toBe(1_000);
    rotation.stop();

    const missing = rotationOf(path.join(dir, 'not-yet'), logger, 2);
    expect(await missing.runOnce()).toEqual([]);
    missing.stop();
    expect(logger.events()).not.toContain('stack.output_rotation_failed');
  });

  it('never follows a link: a link planted in the folder is left alone, and so is what it points to', async () => {
    const dir = folder();
    const outside = path.join(folder(), 'precious.db');
    writeFileSync(outside, 'p'.repeat(5_000));
    symlinkSync(outside, path.join(dir, 'member-php-evil01.jsonl'));
    const rotation = rotationOf(dir);
    expect(await rotation.runOnce()).toEqual([]);
    expect(statSync(outside).size).toBe(5_000);
    expect(existsSync(path.join(dir, 'member-php-evil01.1.jsonl'))).toBe(false);
    // A link planted where the copy goes: the copy is not written through it, the output still truncated.
    writeFileSync(path.join(dir, 'member-php-b.jsonl'), 'b'.repeat(2_000));
    symlinkSync(outside, path.join(dir, 'member-php-b.1.jsonl'));
    await rotation.runOnce();
    expect(readFileSync(outside, 'utf8')).toBe('p'.repeat(5_000));
    expect(statSync(path.join(dir, 'member-php-b.jsonl')).size).toBe(0);
    await rotation.stop();
  });

  it('a copy that fails (a full disk) still truncates the output, and says its content is lost', async () => {
    const dir = folder();
    writeFileSync(path.join(dir, 'member-php-c.jsonl'), 'c'.repeat(2_000));
    // Where the copy goes cannot be written: a folder with something in it.
    mkdirSync(path.join(dir, 'member-php-c.1.jsonl'));
    writeFileSync(path.join(dir, 'member-php-c.1.jsonl', 'x'), 'x');
    const logger = createMemoryLogger();
    // Two files kept: the copy goes where the folder is, with no older copy to move it to.
    const rotation = rotationOf(dir, logger, 2);
    expect(await rotation.runOnce()).toEqual(['member-php-c.jsonl']);
    expect(statSync(path.join(dir, 'member-php-c.jsonl')).size).toBe(0);
    expect(logger.events()).toContain('stack.output_truncated');
    await rotation.stop();
  });
});
