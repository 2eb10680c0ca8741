/**
 * A periodic check that fires this many periods after the previous one
 * (monotonic time) ran late: the process was not running (a GC pause, a big
 * snapshot, a blocked event loop), so whatever it waited for (a PUBACK) may
 * be sitting unread in a socket. Node runs due timers before it reads
 * sockets, so such a tick must not judge.
 */
export const LATE_TICK_FACTOR = 1.5;

/** Whether a tick `elapsedMs` after the previous one, on a `periodMs` period, is late enough to give no verdict. */
export function isLateTick(elapsedMs: number, periodMs: number): boolean {
  return elapsedMs > periodMs * LATE_TICK_FACTOR;
}
