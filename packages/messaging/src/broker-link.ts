import { randomBytes } from 'node:crypto';
import type { Logger, TimerHandle } from '@faultline/core';
import {
  decodePresenceAsk,
  encodePing,
  PRESENCE_ROOT,
  pings,
  pingTopicOf,
  presenceAskFilterOf,
  presenceAskOf,
} from '@faultline/protocol';
import {
  type BrokerEndpoint,
  ConnectTimeoutError,
  type MqttConnection,
  NotConnectedError,
  persistentClientId,
  SubscribeRefusedError,
} from './connection.js';
import type { StatusListener } from './messaging-status.js';
import { PingMonitor } from './ping-monitor.js';
import { AnswerThrottle, type AskOutcome, answerGapMs } from './presence-answers.js';
import type { ResolvedSubscriberOptions } from './subscriber-options.js';

export type LinkState = 'connecting' | 'up' | 'down' | 'closed';

/** The subscriber's resolved connection and timing options, and what this link adds. */
export interface BrokerLinkOptions
  extends Pick<
    ResolvedSubscriberOptions,
    | 'connector'
    | 'clientId'
    | 'role'
    | 'credentials'
    | 'clock'
    | 'pingIntervalMs'
    | 'resubscribeIntervalMs'
    | 'connectTimeoutMs'
    | 'persistentSession'
  > {
  endpoint: BrokerEndpoint;
  /** The subscriber's topic filters. */
  filters: readonly string[];
  /** The subscriber's logger. */
  logger: Logger;
  onMessage: (topic: string, payload: Buffer, broker: string) => void;
  onStatus: StatusListener;
  onPing: () => void;
  /** A ping went out at once, besides the regular ones: on a (re)subscription, or answering presence asks. */
  onAnnounce: () => void;
  /** A presence ask arrived on this link: what became of it, or `invalid` (dropped). */
  onAsk: (event: AskEvent) => void;
}

/** One presence ask a link received; `topic` and `bytes` as they came (the topic at most 256 characters). */
export interface AskEvent {
  broker: string;
  outcome: AskOutcome | 'invalid';
  /** The account that asked (the topic's last level, which the broker binds to it). */
  asker: string | undefined;
  topic: string;
  bytes: number;
  /** The link's answer gap: at most one answer per this many ms. */
  minGapMs: number;
}

/**
 * A subscriber's hold on one broker, the seed's loop: connect and subscribe;
 * ping every second (on `ping/<role>`, the one ping topic the broker lets its
 * account publish); on a failed or late ping (or a closed connection) close,
 * wait 30 s, connect and resubscribe, and repeat every 30 s until it works.
 *
 * Each connection is one subscription of the link, with an id of its own
 * (`sub`): its pings carry it, and its MQTT Last Will, on the same ping topic,
 * says `{ sub, gone: true }`. When the connection dies (a crash, a kill, a
 * close: the link never sends DISCONNECT) the broker publishes the will at
 * once, and publishers stop counting the subscriber present until a ping of
 * a later subscription comes.
 *
 * Presence without a ping cycle: each subscription announces itself with a
 * ping at once, and the link reads the asks for its role's presence
 * (`presence/<role>/+`): a publisher that (re)connects asks there, and the
 * link answers with a ping at once, rate-limited (AnswerThrottle). A broker
 * that refuses that subscription (an older ACL) leaves the link as it was,
 * seen by its regular pings.
 */
export class BrokerLink {
  state: LinkState = 'down';
  private connection: MqttConnection | undefined;
  private retryTimer: TimerHandle | undefined;
  private readonly monitor: PingMonitor;
  private everUp = false;
  private attempt = 0;
  private pingSeq = 0;
  /** The id of the current connection's subscription (see the class comment). */
  private sub = '';
  private readonly answers: AnswerThrottle;

  constructor(private readonly options: BrokerLinkOptions) {
    this.answers = new AnswerThrottle({
      clock: options.clock,
      minGapMs: answerGapMs(options.pingIntervalMs),
      answer: () => this.announce(),
    });
    this.monitor = new PingMonitor(
      {
        ping: () => {
          const connection = this.connection;
          if (!connection) return Promise.reject(new NotConnectedError(options.endpoint.name));
          this.options.onPing();
          const ping = encodePing({ clientId: options.clientId, seq: ++this.pingSeq, sub: this.sub });
          return connection.publish(pingTopicOf(options.role), ping, 1);
        },
      },
      {
        intervalMs: options.pingIntervalMs,
        clock: options.clock,
        onDown: (reason) => this.down(reason),
        onLate: (elapsedMs) =>
          options.logger.warn('event loop stalled: the outstanding ping gets another interval', {
            event: 'subscriber.loop_stalled',
            broker: options.endpoint.name,
            elapsedMs: Math.round(elapsedMs),
            intervalMs: options.pingIntervalMs,
          }),
      },
    );
  }

  get broker(): string {
    return this.options.endpoint.name;
  }

  /** Connects at once; failures are retried on the resubscribe interval. */
  start(): void {
    if (this.state === 'closed') return;
    void this.connect();
  }

  close(): void {
    this.state = 'closed';
    this.monitor.stop();
    this.answers.reset();
    this.options.clock.clearTimeout(this.retryTimer);
    this.connection?.close();
    this.connection = undefined;
  }

  private async connect(): Promise<void> {
    const { endpoint, clock, connectTimeoutMs } = this.options;
    this.state = 'connecting';
    const attempt = ++this.attempt;
    let timer: TimerHandle | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = clock.setTimeout(
        () => reject(new ConnectTimeoutError(endpoint.name, connectTimeoutMs)),
        connectTimeoutMs,
      );
    });
    const { clientId, credentials, persistentSession, role } = this.options;
    const sub = randomBytes(8).toString('hex');
    this.sub = sub;
    const connecting = this.options.connector(endpoint, {
      clientId: persistentSession ? persistentClientId(clientId, credentials) : clientId,
      credentials,
      persistentSession,
      will: { topic: pingTopicOf(role), payload: encodePing({ clientId, seq: 0, sub, gone: true }) },
    });
    try {
      const connection = await Promise.race([connecting, deadline]);
      if (this.superseded(attempt)) {
        connection.close();
        return;
      }
      this.connection = connection;
      this.answers.reset();
      connection.onMessage((topic, payload) => {
        if (topic.startsWith(`${PRESENCE_ROOT}/`)) this.onAsk(connection, topic, payload);
        else this.options.onMessage(topic, payload, endpoint.name);
      });
      connection.onClose((error) => {
        if (this.connection === connection) this.down(`connection closed${error ? `: ${error.message}` : ''}`);
      });
      await Promise.race([connection.subscribe(this.options.filters), deadline]);
      if (this.connection !== connection) return;
      this.state = 'up';
      this.monitor.start();
      // Before the announcement: a publisher that missed it asked after it, so its ask finds the subscription.
      if (pings(role)) await Promise.race([this.watchAsks(connection), deadline]);
      if (this.connection !== connection) return;
      this.answers.announce();
      const status = this.everUp ? 'resubscribed' : 'connected';
      this.everUp = true;
      const fields = { broker: endpoint.name, filters: this.options.filters };
      if (status === 'connected') {
        this.options.logger.info('subscriber connected', { event: 'subscriber.connected', ...fields });
      } else {
        this.options.logger.info('subscriber resubscribed', { event: 'subscriber.resubscribed', ...fields });
      }
      this.options.onStatus({ type: status, broker: endpoint.name });
    } catch (error) {
      // A connection that arrives after the deadline is closed, not leaked.
      connecting.then((late) => late !== this.connection && late.close()).catch(() => {});
      if (this.superseded(attempt)) return;
      const reason = error instanceof Error ? error.message : String(error);
      this.failed(reason);
    } finally {
      clock.clearTimeout(timer);
    }
  }

  /** Subscribes to the asks for its role's presence; a broker that refuses them (an older ACL) is logged, not failed. */
  private async watchAsks(connection: MqttConnection): Promise<void> {
    const filter = presenceAskFilterOf(this.options.role);
    try {
      await connection.subscribe([filter]);
    } catch (error) {
      if (!(error instanceof SubscribeRefusedError) || this.connection !== connection) return;
      this.options.logger.warn('broker refused the presence asks: publishers see this link by its pings only', {
        event: 'subscriber.asks_refused',
        broker: this.broker,
        filter,
      });
    }
  }

  /** One ping of the current subscription, now: its announcement, or an answer to presence asks. */
  private announce(): void {
    const connection = this.connection;
    if (!connection || this.state !== 'up') return;
    this.options.onAnnounce();
    const { clientId, role } = this.options;
    const ping = encodePing({ clientId, seq: ++this.pingSeq, sub: this.sub });
    // A failed publish ends the connection: the ping monitor and onClose see to it.
    connection.publish(pingTopicOf(role), ping, 1).catch(() => {});
  }

  private onAsk(connection: MqttConnection, topic: string, payload: Buffer): void {
    if (this.connection !== connection) return;
    const ask = presenceAskOf(topic);
    const valid = ask?.role === this.options.role && decodePresenceAsk(payload) !== undefined;
    // Asks that come before the link is up are answered by its announcement.
    const outcome = !valid ? 'invalid' : this.state === 'up' ? this.answers.ask() : 'coalesced';
    this.options.onAsk({
      broker: this.broker,
      outcome,
      asker: ask?.asker,
      topic: topic.slice(0, MAX_LOGGED_TOPIC),
      bytes: payload.length,
      minGapMs: answerGapMs(this.options.pingIntervalMs),
    });
  }

  /** A newer attempt started, or the link was closed, while this one awaited. */
  private superseded(attempt: number): boolean {
    return this.state === 'closed' || attempt !== this.attempt;
  }

  /** The broker was up and is not any more. */
  private down(reason: string): void {
    if (this.state === 'closed' || this.state === 'down') return;
    const wasUp = this.state === 'up';
    this.dropConnection();
    if (wasUp) {
      this.options.logger.warn('broker down', { event: 'subscriber.broker_down', broker: this.broker, reason });
      this.options.onStatus({ type: 'broker-down', broker: this.broker, reason });
    }
    this.scheduleRetry();
  }

  /** A connect or subscribe attempt failed. */
  private failed(reason: string): void {
    this.dropConnection();
    const retryInMs = this.options.resubscribeIntervalMs;
    this.options.logger.warn('reconnect failed', {
      event: 'subscriber.reconnect_failed',
      broker: this.broker,
      reason,
      retryInMs,
    });
    this.options.onStatus({ type: 'reconnect-failed', broker: this.broker, reason, retryInMs });
    this.scheduleRetry();
  }

  private dropConnection(): void {
    this.monitor.stop();
    this.answers.reset();
    const connection = this.connection;
    this.connection = undefined;
    this.state = 'down';
    connection?.close();
  }

  private scheduleRetry(): void {
    this.options.clock.clearTimeout(this.retryTimer);
    this.retryTimer = this.options.clock.setTimeout(() => {
      this.retryTimer = undefined;
      if (this.state === 'down') void this.connect();
    }, this.options.resubscribeIntervalMs);
  }
}

/** A topic in a log field: a peer chose it. */
const MAX_LOGGED_TOPIC = 256;
