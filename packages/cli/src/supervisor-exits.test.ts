import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ServiceRecords } from './service-records.js';
import { FakeProcesses, superviseFakes } from './testing/index.js';

/*
 * How the supervisor sees a death, on fake time: only once the process's
 * output has been read (its last line is its reason), and never through an
 * exception of its own: a spawn that throws, records that cannot be written.
 */

describe('Supervisor exits', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('acts on an exit only once its output is read: the reason read after the exit, without a newline, is kept', async () => {
    const { processes, supervisor, service, fatal } = superviseFakes();
    await supervisor.start(service('sp-1'));
    const child = processes.last('sp-1');
    // node emits 'exit' while the last of stderr may still be in the pipe.
    child.exit(2, null, { outputOpen: true });
    await vi.advanceTimersByTimeAsync(0);
    expect(fatal).toEqual([]);
    child.stderr.write('invalid configuration:\n');
    child.stderr.write('  - streamProcessor.nodes: no node sp-9');
    child.closeOutput();
    await vi.advanceTimersByTimeAsync(0);
    expect(fatal).toHaveLength(1);
    expect(fatal[0]?.message).toMatch(/^sp-1 exited with code 2 .*streamProcessor\.nodes: no node sp-9; the stack/);
  });

  it('fails start() with the reason read after the exit', async () => {
    const { processes, supervisor, service } = superviseFakes();
    const started = supervisor.start(service('sp-1', { ready: async () => false }));
    const failed = expect(started).rejects.toMatchObject({
      code: 'FL_ERR_SERVICE_FAILED',
      message: expect.stringContaining('security.memberKeyFile: missing'),
    });
    const child = processes.last('sp-1');
    child.exit(2, null, { outputOpen: true });
    await vi.advanceTimersByTimeAsync(300);
    child.stderr.write('security.memberKeyFile: missing');
    child.closeOutput();
    await vi.advanceTimersByTimeAsync(200);
    await failed;
  });

  it('waits for the output at most outputDrainMs: a child that outlived it may hold the pipes open', async () => {
    const { processes, supervisor, service, events } = superviseFakes();
    await supervisor.start(service('sp-1'));
    processes.last('sp-1').exit(1, null, { outputOpen: true });
    await vi.advanceTimersByTimeAsync(1_900);
    expect(events('supervisor.service_restarting')).toEqual([]);
    await vi.advanceTimersByTimeAsync(200);
    expect(events('supervisor.service_restarting')).toHaveLength(1);
  });

  it('takes a spawn that throws on a restart for a death: logged, restarted after the backoff, nothing unhandled', async () => {
    const processes = new FakeProcesses();
    const { supervisor, service, events } = superviseFakes({}, processes);
    await supervisor.start(service('sp-1'));
    let refusals = 1;
    processes.onSpawn = () => {
      if (refusals-- > 0) throw Object.assign(new Error('spawn EPERM'), { code: 'EPERM' });
    };
    processes.last('sp-1').exit(1);
    await vi.advanceTimersByTimeAsync(1_100);
    expect(events('supervisor.service_spawn_failed')).toHaveLength(1);
    expect(events('supervisor.service_restarting').map((r) => r.delayMs)).toEqual([1_000, 2_000]);
    await vi.advanceTimersByTimeAsync(2_100);
    expect(processes.of('sp-1')).toHaveLength(2);
    expect(supervisor.list()[0]).toMatchObject({ state: 'up', restarts: 2 });
  });

  it('goes on when its records cannot be written (a full disk, a file where its folder should be)', async () => {
    const processes = new FakeProcesses();
    const blocker = path.join(mkdtempSync(path.join(os.tmpdir(), 'faultline-records-')), 'run');
    writeFileSync(blocker, 'not a folder');
    const records = new ServiceRecords(path.join(blocker, 'services.json'), processes);
    const { supervisor, service, events } = superviseFakes({ records }, processes);
    await supervisor.start(service('sp-1'));
    processes.last('sp-1').exit(1);
    await vi.advanceTimersByTimeAsync(1_100);
    expect(events('supervisor.records_failed').map((r) => r.action)).toEqual(['add', 'remove', 'add']);
    expect(supervisor.list()[0]).toMatchObject({ state: 'up', restarts: 1 });
  });
});
