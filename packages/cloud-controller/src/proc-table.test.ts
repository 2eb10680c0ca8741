import { describe, expect, it } from 'vitest';
import { assertProcfs, linuxProcessTable, parseProcStat } from './proc-table.js';
import { FakeProcessTable } from './testing/index.js';

// A real line of /proc/<pid>/stat (52 fields), with a command name that has a space and a parenthesis.
const LINE =
  '4242 (node (main) x) S 4200 4242 4242 0 -1 4194560 1432 0 0 0 12 3 0 0 20 0 11 0 987654 1136893952 12000 ' +
  '18446744073709551615 1 1 0 0 0 0 0 16781312 16898 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0';

describe('parseProcStat', () => {
  it('reads pid, state, ppid, pgid and the start time (field 22), whatever the command name holds', () => {
    expect(parseProcStat(LINE)).toEqual({ pid: 4242, state: 'S', ppid: 4200, pgid: 4242, startTime: 987654 });
  });

  it('returns undefined for anything else', () => {
    expect(parseProcStat('')).toBeUndefined();
    expect(parseProcStat('garbage')).toBeUndefined();
    expect(parseProcStat('12 (x) S 1 2')).toBeUndefined(); // truncated
    expect(parseProcStat(LINE.replace('987654', 'abc'))).toBeUndefined();
  });
});

describe('linuxProcessTable', () => {
  // Reads this very process: procfs is the thing under test, and it is always there on Linux.
  it('finds this process, its group and a start time that stays the same', () => {
    const self = linuxProcessTable.stat(process.pid);
    expect(self?.pid).toBe(process.pid);
    expect(self?.startTime).toBeGreaterThan(0);
    expect(linuxProcessTable.stat(process.pid)?.startTime).toBe(self?.startTime);
    expect(linuxProcessTable.groupMembers(self?.pgid ?? -1)).toContain(process.pid);
    expect(linuxProcessTable.bootId()).toMatch(/^[0-9a-f-]{36}$/);
    expect(() => assertProcfs(linuxProcessTable)).not.toThrow();
  });

  it('says false for a signal to a process that does not exist', () => {
    // Above the kernel's pid_max: never a process.
    expect(linuxProcessTable.kill(2 ** 30, 0)).toBe(false);
    expect(linuxProcessTable.stat(2 ** 30)).toBeUndefined();
  });

  it('refuses to run without procfs, with a typed error', () => {
    const table = new FakeProcessTable();
    table.bootId = () => {
      throw new Error('ENOENT: /proc/sys/kernel/random/boot_id');
    };
    expect(() => assertProcfs(table)).toThrow(expect.objectContaining({ code: 'FL_ERR_PLATFORM_UNSUPPORTED' }));
    // A procfs that does not show this very process is no procfs to rely on either.
    expect(() => assertProcfs(new FakeProcessTable())).toThrow(
      expect.objectContaining({ code: 'FL_ERR_PLATFORM_UNSUPPORTED' }),
    );
  });
});
