import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { sleep, systemClock } from './clock.js';

describe('systemClock', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('schedules timeouts on fake time, installed after import', async () => {
    const fired = vi.fn();
    systemClock.setTimeout(fired, 1_000);
    await vi.advanceTimersByTimeAsync(999);
    expect(fired).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    expect(fired).toHaveBeenCalledOnce();
  });

  it('repeats intervals exactly and stops when cleared', async () => {
    const tick = vi.fn();
    const handle = systemClock.setInterval(tick, 30_000);
    await vi.advanceTimersByTimeAsync(90_000);
    expect(tick).toHaveBeenCalledTimes(3);
    systemClock.clearInterval(handle);
    await vi.advanceTimersByTimeAsync(90_000);
    expect(tick).toHaveBeenCalledTimes(3);
  });

  it('cancels a timeout, and tolerates clearing undefined', async () => {
    const fired = vi.fn();
    const handle = systemClock.setTimeout(fired, 10);
    systemClock.clearTimeout(handle);
    systemClock.clearTimeout(undefined);
    systemClock.clearInterval(undefined);
    await vi.advanceTimersByTimeAsync(100);
    expect(fired).not.toHaveBeenCalled();
  });

  it('advances now() and monotonicNow() with fake time', async () => {
    const wall = systemClock.now();
    const mono = systemClock.monotonicNow();
    await vi.advanceTimersByTimeAsync(2_500);
    expect(systemClock.now() - wall).toBe(2_500);
    expect(systemClock.monotonicNow() - mono).toBe(2_500);
  });

  it('sleep resolves after the given time', async () => {
    let done = false;
    void sleep(systemClock, 60_000).then(() => {
      done = true;
    });
    await vi.advanceTimersByTimeAsync(59_999);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(done).toBe(true);
  });
});
