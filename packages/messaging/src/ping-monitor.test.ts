import { systemClock } from '@faultline/core';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { PingMonitor } from './ping-monitor.js';

describe('PingMonitor', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('pings every 1 000 ms while acknowledged', async () => {
    const ping = vi.fn(async () => {});
    const onDown = vi.fn();
    const monitor = new PingMonitor({ ping }, { intervalMs: 1_000, clock: systemClock, onDown });
    monitor.start();
    await vi.advanceTimersByTimeAsync(999);
    expect(ping).toHaveBeenCalledTimes(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(ping).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(9_000);
    expect(ping).toHaveBeenCalledTimes(10);
    expect(onDown).not.toHaveBeenCalled();
    monitor.stop();
    await vi.advanceTimersByTimeAsync(5_000);
    expect(ping).toHaveBeenCalledTimes(10);
  });

  it('declares the broker down when a ping is not acknowledged within the interval', async () => {
    const ping = vi.fn(() => new Promise<void>(() => {}));
    const onDown = vi.fn();
    new PingMonitor({ ping }, { intervalMs: 1_000, clock: systemClock, onDown }).start();
    await vi.advanceTimersByTimeAsync(1_999);
    expect(onDown).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    expect(onDown).toHaveBeenCalledOnce();
    expect(onDown.mock.calls[0]?.[0]).toMatch(/not acknowledged within 1000 ms/);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(onDown).toHaveBeenCalledOnce();
    expect(ping).toHaveBeenCalledOnce();
  });

  it('declares the broker down at once when a ping fails', async () => {
    const onDown = vi.fn();
    new PingMonitor(
      { ping: async () => Promise.reject(new Error('closed')) },
      { intervalMs: 1_000, clock: systemClock, onDown },
    ).start();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(onDown).toHaveBeenCalledWith('ping failed: closed');
  });
});
