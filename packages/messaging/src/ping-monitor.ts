import type { Clock, TimerHandle } from '@faultline/core';

/** What the monitor needs from a connection: one acknowledged ping. */
export interface Pinger {
  /** Publishes to `ping` at QoS 1; resolves on the PUBACK. */
  ping(): Promise<void>;
}

/** Every field is required: the broker link passes its subscriber's resolved `pingIntervalMs` and clock. */
export interface PingMonitorOptions {
  /** Ping period, and how long a ping may stay unacknowledged. */
  intervalMs: number;
  clock: Clock;
  /** Called once, when a ping failed or was not acknowledged within the interval. */
  onDown: (reason: string) => void;
}

/**
 * The seed's liveness check: a ping every interval, and a ping still not
 * acknowledged when the next one is due means the broker is down. Lives
 * apart from the connection logic (MQTT.js' KeepaliveManager is the model)
 * so 1 s is proven exactly with fake time.
 */
export class PingMonitor {
  private timer: TimerHandle | undefined;
  private outstanding = false;
  private stopped = true;

  constructor(
    private readonly pinger: Pinger,
    private readonly options: PingMonitorOptions,
  ) {}

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.outstanding = false;
    this.timer = this.options.clock.setInterval(() => this.tick(), this.options.intervalMs);
  }

  stop(): void {
    this.stopped = true;
    this.options.clock.clearInterval(this.timer);
    this.timer = undefined;
  }

  private tick(): void {
    if (this.stopped) return;
    if (this.outstanding) {
      this.down(`ping not acknowledged within ${this.options.intervalMs} ms`);
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
