import type { Clock, TimerHandle } from '@faultline/core';
import { isLateTick } from './loop-stall.js';

/** What the monitor needs from a connection: one acknowledged ping. */
export interface Pinger {
  /** Publishes to `ping` at QoS 1; resolves on the PUBACK. */
  ping(): Promise<void>;
}

/** Every field but onLate is required: the broker link passes its subscriber's resolved `pingIntervalMs` and clock. */
export interface PingMonitorOptions {
  /** Ping period, and how long a ping may stay unacknowledged. */
  intervalMs: number;
  clock: Clock;
  /** Called once, when a ping failed or was not acknowledged within the interval. */
  onDown: (reason: string) => void;
  /** A tick came `elapsedMs` after the previous one (a stalled process): the outstanding ping got another interval. */
  onLate?: (elapsedMs: number) => void;
}

/**
 * The seed's liveness check: a ping every interval, and a ping still not
 * acknowledged when the next one is due means the broker is down. Lives
 * apart from the connection logic (MQTT.js' KeepaliveManager is the model)
 * so 1 s is proven exactly with fake time.
 *
 * Judged on time the process had, not wall time: a stalled event loop (GC, a
 * big snapshot) makes every ping look late, because the PUBACK waits unread
 * in the socket while the timers, which Node runs first, fire. So a tick that
 * comes well after its period (isLateTick) gives the outstanding ping another
 * interval, and a verdict is given one turn of the loop after the tick, once
 * the sockets were read.
 */
export class PingMonitor {
  private timer: TimerHandle | undefined;
  private verdict: TimerHandle | undefined;
  private outstanding = false;
  private stopped = true;
  private lastTickAt = 0;

  constructor(
    private readonly pinger: Pinger,
    private readonly options: PingMonitorOptions,
  ) {}

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.outstanding = false;
    this.lastTickAt = this.options.clock.monotonicNow();
    this.timer = this.options.clock.setInterval(() => this.tick(), this.options.intervalMs);
  }

  stop(): void {
    this.stopped = true;
    this.options.clock.clearInterval(this.timer);
    this.options.clock.clearTimeout(this.verdict);
    this.timer = undefined;
    this.verdict = undefined;
  }

  private tick(): void {
    if (this.stopped) return;
    const { clock, intervalMs } = this.options;
    const now = clock.monotonicNow();
    const elapsed = now - this.lastTickAt;
    this.lastTickAt = now;
    if (this.outstanding) {
      if (isLateTick(elapsed, intervalMs)) {
        this.options.onLate?.(elapsed);
        return;
      }
      // After the sockets were read: a PUBACK that came while the loop was busy is taken into account.
      this.verdict ??= clock.setTimeout(() => {
        this.verdict = undefined;
        if (this.outstanding) this.down(`ping not acknowledged within ${intervalMs} ms`);
      }, 0);
      return;
    }
    this.outstanding = true;
    this.pinger.ping().then(
      () => {
        this.outstanding = false;
      },
      (error: unknown) => this.down(`ping failed: ${error instanceof Error ? error.message : String(error)}`),
    );
  }

  private down(reason: string): void {
    if (this.stopped) return;
    this.stop();
    this.options.onDown(reason);
  }
}
