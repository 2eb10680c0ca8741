import { type Clock, systemClock } from '@faultline/core';
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
    await vi.advanceTimersByTimeAsync(2_000);
    // Judged one turn of the loop after the tick at 2 000 (1 ms on fake time), once the sockets were read.
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

describe('PingMonitor on a stalled event loop', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  /** The system clock whose monotonic time also jumps by what `stall()` adds: a process that was not running. */
  const stallingClock = () => {
    let stalled = 0;
    const clock: Clock = { ...systemClock, monotonicNow: () => systemClock.monotonicNow() + stalled };
    const stall = (ms: number): void => {
      stalled += ms;
    };
    return { clock, stall };
  };
  /** A pinger whose PUBACKs the test delivers. */
  const manualPinger = () => {
    const acks: (() => void)[] = [];
    const ping = vi.fn(() => new Promise<void>((resolve) => acks.push(resolve)));
    return { ping, ack: () => acks.shift()?.() };
  };

  it('a tick that comes late after a stall gives the outstanding ping another interval', async () => {
    const { clock, stall } = stallingClock();
    const { ping, ack } = manualPinger();
    const onDown = vi.fn();
    const onLate = vi.fn();
    new PingMonitor({ ping }, { intervalMs: 1_000, clock, onDown, onLate }).start();
    await vi.advanceTimersByTimeAsync(1_000); // the ping goes out; its PUBACK arrives while…
    stall(1_500); // …the process is frozen 1.5 s (GC, a big snapshot)
    await vi.advanceTimersToNextTimerAsync(); // the first timer after the stall: the tick, 2.5 s after the last
    expect(onDown).not.toHaveBeenCalled();
    expect(onLate).toHaveBeenCalledWith(2_500);
    ack(); // the socket is read
    for (let i = 0; i < 10; i++) {
      await vi.advanceTimersByTimeAsync(1_000);
      ack();
    }
    expect(onDown).not.toHaveBeenCalled();
    expect(ping.mock.calls.length).toBeGreaterThanOrEqual(10);
  });

  it('a PUBACK that waited in the socket while the tick fired counts: the verdict comes one turn later', async () => {
    // A stall that ends right when the tick is due: the tick is on time, and Node runs it before reading sockets.
    const { ping, ack } = manualPinger();
    const onDown = vi.fn();
    new PingMonitor({ ping }, { intervalMs: 1_000, clock: systemClock, onDown }).start();
    await vi.advanceTimersByTimeAsync(1_000);
    await vi.advanceTimersToNextTimerAsync(); // t=2000: the tick finds the ping outstanding
    ack(); // the poll phase that follows reads the PUBACK
    await vi.advanceTimersByTimeAsync(1);
    expect(onDown).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(999); // t=3000: the next ping goes out
    expect(ping).toHaveBeenCalledTimes(2);
  });

  it('a ping still unacknowledged an interval after a late tick marks the broker down', async () => {
    const { clock, stall } = stallingClock();
    const { ping } = manualPinger();
    const onDown = vi.fn();
    new PingMonitor({ ping }, { intervalMs: 1_000, clock, onDown }).start();
    await vi.advanceTimersByTimeAsync(1_000);
    stall(5_000);
    await vi.advanceTimersByTimeAsync(1_000); // late: another interval
    expect(onDown).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1_001); // on time, nothing came: down
    expect(onDown).toHaveBeenCalledWith('ping not acknowledged within 1000 ms');
  });
});
