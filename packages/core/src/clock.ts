/**
 * The one source of time and timers for every Faultline component.
 *
 * Every timer in the project (ping, resubscribe, republish, fault timeout,
 * lease, backoff) is scheduled through a `Clock` that is passed in, never
 * through the globals directly, so unit tests drive them with fake time and the
 * real implementation stays a thin shim. (README "Conventions"; MQTT.js's
 * get-timer.ts is the model, without its leftover global setInterval.)
 */
export type TimerHandle = ReturnType<typeof globalThis.setTimeout>;

export interface Clock {
  /** Wall-clock time, epoch milliseconds. For timestamps that leave the process. */
  now(): number;
  /**
   * Monotonic milliseconds from an arbitrary origin. For measuring elapsed time
   * (self-fencing, overshoot): it never jumps with NTP or a wall-clock change.
   */
  monotonicNow(): number;
  setTimeout(fn: () => void, delayMs: number): TimerHandle;
  clearTimeout(handle: TimerHandle | undefined): void;
  setInterval(fn: () => void, intervalMs: number): TimerHandle;
  clearInterval(handle: TimerHandle | undefined): void;
}

/**
 * The real clock. The globals are looked up on every call, not captured at
 * import time, so `vi.useFakeTimers()` installed after import still applies.
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  monotonicNow: () => globalThis.performance.now(),
  setTimeout: (fn, delayMs) => globalThis.setTimeout(fn, delayMs),
  clearTimeout: (handle) => {
    if (handle !== undefined) globalThis.clearTimeout(handle);
  },
  setInterval: (fn, intervalMs) => globalThis.setInterval(fn, intervalMs),
  clearInterval: (handle) => {
    if (handle !== undefined) globalThis.clearInterval(handle);
  },
};

/** Resolves after `ms` on the given clock (fake time in tests). */
export function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => clock.setTimeout(resolve, ms));
}
