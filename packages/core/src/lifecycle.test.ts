import { EventEmitter } from 'node:events';
import { PassThrough } from 'node:stream';
import { describe, expect, it, vi } from 'vitest';
import { ConfigError } from './errors.js';
import { closeAll, once, runMain, SUPERVISED_ENV, withDefaults } from './lifecycle.js';
import { createMemoryLogger } from './testing/index.js';

function fakeProcess(env: Record<string, string> = {}) {
  const emitter = new EventEmitter() as EventEmitter & {
    exit: ReturnType<typeof vi.fn>;
    stderr: { write: ReturnType<typeof vi.fn> };
    stdin: PassThrough;
    env: Record<string, string>;
  };
  emitter.exit = vi.fn();
  emitter.stderr = { write: vi.fn() };
  emitter.stdin = new PassThrough();
  emitter.env = env;
  return emitter;
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('once', () => {
  it('runs the function a single time and shares its promise', async () => {
    const fn = vi.fn(async () => 42);
    const close = once(fn);
    const [a, b] = await Promise.all([close(), close()]);
    expect(await close()).toBe(42);
    expect([a, b]).toEqual([42, 42]);
    expect(fn).toHaveBeenCalledOnce();
  });
});

describe('closeAll', () => {
  it('closes in reverse order and keeps going after a failure', async () => {
    const order: string[] = [];
    const log = createMemoryLogger();
    await closeAll(
      [
        { close: async () => void order.push('first') },
        {
          close: async () => {
            order.push('second');
            throw new Error('nope');
          },
        },
        undefined,
        { close: async () => void order.push('third') },
      ],
      log,
    );
    expect(order).toEqual(['third', 'second', 'first']);
    expect(log.records[0]?.event).toBe('lifecycle.close_failed');
  });
});

describe('runMain', () => {
  it('closes the service on SIGTERM and exits 0', async () => {
    const proc = fakeProcess();
    const close = vi.fn(async () => {});
    const log = createMemoryLogger();
    await runMain(
      () => log,
      async () => ({ close }),
      { proc: proc as unknown as NodeJS.Process },
    );
    proc.emit('SIGTERM');
    await settle();
    expect(close).toHaveBeenCalledOnce();
    expect(proc.exit).toHaveBeenCalledWith(0);
    expect(log.events()).toEqual(['main.signal', 'main.stopped']);
  });

  it('exits 1 at once on a second signal', async () => {
    const proc = fakeProcess();
    await runMain(
      () => createMemoryLogger(),
      async () => ({ close: () => new Promise<void>(() => {}) }),
      {
        proc: proc as unknown as NodeJS.Process,
      },
    );
    proc.emit('SIGINT');
    proc.emit('SIGINT');
    await settle();
    expect(proc.exit).toHaveBeenCalledWith(1);
  });

  it('prints a ConfigError and exits 2', async () => {
    const proc = fakeProcess();
    await runMain(
      () => createMemoryLogger(),
      async () => {
        throw new ConfigError('FL_ERR_CONFIG_INVALID', 'invalid configuration:\n  - cep.faultTimeoutMs: too small');
      },
      { proc: proc as unknown as NodeJS.Process },
    );
    expect(proc.stderr.write).toHaveBeenCalledWith(expect.stringContaining('cep.faultTimeoutMs'));
    expect(proc.exit).toHaveBeenCalledWith(2);
  });

  it('logs any other start failure and exits 1', async () => {
    const proc = fakeProcess();
    const log = createMemoryLogger();
    await runMain(
      () => log,
      async () => {
        throw new Error('port in use');
      },
      { proc: proc as unknown as NodeJS.Process },
    );
    expect(log.records[0]?.event).toBe('main.start_failed');
    expect(proc.exit).toHaveBeenCalledWith(1);
  });
});

describe('runMain under the stack supervisor', () => {
  it('closes the service and exits 0 when stdin ends (the supervisor died)', async () => {
    const proc = fakeProcess({ [SUPERVISED_ENV]: '1' });
    const close = vi.fn(async () => {});
    const log = createMemoryLogger();
    await runMain(
      () => log,
      async () => ({ close }),
      { proc: proc as unknown as NodeJS.Process },
    );
    proc.stdin.write('anything the supervisor writes is ignored\n');
    await settle();
    expect(close).not.toHaveBeenCalled();
    proc.stdin.end();
    await vi.waitFor(() => expect(proc.exit).toHaveBeenCalledWith(0));
    expect(close).toHaveBeenCalledOnce();
    expect(log.events()).toEqual(['main.supervisor_gone', 'main.stopped']);
  });

  it('closes once when stdin ends and a SIGTERM follows', async () => {
    const proc = fakeProcess({ [SUPERVISED_ENV]: '1' });
    const close = vi.fn(async () => {});
    await runMain(
      () => createMemoryLogger(),
      async () => ({ close }),
      { proc: proc as unknown as NodeJS.Process },
    );
    proc.stdin.destroy();
    proc.emit('SIGTERM');
    await vi.waitFor(() => expect(proc.exit).toHaveBeenCalledWith(0));
    expect(close).toHaveBeenCalledOnce();
  });

  it('ignores the end of stdin when not started by the supervisor', async () => {
    const proc = fakeProcess();
    const close = vi.fn(async () => {});
    await runMain(
      () => createMemoryLogger(),
      async () => ({ close }),
      { proc: proc as unknown as NodeJS.Process },
    );
    proc.stdin.end();
    proc.stdin.resume();
    await settle();
    await settle();
    expect(close).not.toHaveBeenCalled();
    expect(proc.exit).not.toHaveBeenCalled();
  });
});

describe('withDefaults', () => {
  it('keeps a default where the input is undefined, takes every defined value', () => {
    const input: { a?: number; b?: number; c?: string } = { a: undefined, b: 0, c: 'x' };
    expect(withDefaults({ a: 60_000, b: 5 }, input)).toEqual({ a: 60_000, b: 0, c: 'x' });
  });
});
