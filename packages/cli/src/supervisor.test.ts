import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { systemClock } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import { describe, expect, it, vi } from 'vitest';
import { Supervisor } from './supervisor.js';

describe('Supervisor', () => {
  it("writes a service's output file mode 0600 in a folder it creates 0700, whatever the umask", async () => {
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'faultline-supervisor-')), 'logs', 'broker-a.log');
    const supervisor = new Supervisor({ clock: systemClock, logger: createMemoryLogger() });
    const previous = process.umask(0o022);
    try {
      await supervisor.start({
        name: 'echo',
        command: process.execPath,
        args: ['-e', 'console.log("hello"); setTimeout(() => {}, 60_000)'],
        ready: async () => true,
        restart: false,
        outputFile: file,
      });
    } finally {
      process.umask(previous);
    }
    try {
      await vi.waitFor(() => expect(readFileSync(file, 'utf8')).toContain('hello'), { timeout: 5_000 });
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
    } finally {
      await supervisor.stopAll();
    }
  });
});
