import type { Logger, TimerHandle } from '@faultline/core';
import { type BatchAck, type Endpoint, type HealthStat, type HealthStatBatch, refusalOf } from '@faultline/protocol';
import {
  type BatchSenderOptions,
  type ResolvedBatchSenderOptions,
  resolveBatchSenderOptions,
} from './batch-sender-options.js';
import { CallTimeoutError } from './errors.js';

/** How an SP answered one publish. Connection failures are rejections instead. */
export type PublishOutcome =
  | { type: 'ack'; ack: BatchAck }
  /** A passive node (or one that just stepped down): try the next endpoint. */
  | { type: 'not-active'; reason: string }
  /** The SP will never take this batch: resending it would block every later one. */
  | { type: 'invalid'; reason: string };

/**
 * The sender's narrow view of the wire (nats.js' heartbeat depends on a
 * three-method interface the same way), so the failover, resend and bound
 * logic is unit-tested on fake time; the Thrift one is in thrift-transport.ts.
 */
export interface BatchTransport {
  /** Resolves with the SP's answer; rejects when the connection fails. */
  publish(endpoint: Endpoint, batch: HealthStatBatch): Promise<PublishOutcome>;
  /** Forgets the connection to `endpoint` (after a timeout), so the next publish reconnects. */
  reset(endpoint: Endpoint): void;
  close(): void;
  /**
   * The connection to each endpoint it holds one to, by `host:port` (read by
   * the agent's metrics; an endpoint not listed has none). Optional: a
   * transport that cannot tell has no connection metric.
   */
  connections?(): Readonly<Record<string, 'connecting' | 'open'>>;
}

export interface BatchSenderCounters {
  /** Batches made (the last sequence). */
  batches: number;
  /** Publish calls (first sends and resends). */
  sent: number;
  /** Batches acknowledged and removed. */
  acked: number;
  /** Health stats in the batches acknowledged. */
  statsAcked: number;
  /** Acks that said the SP had already seen the batch (a resend after a lost ack). */
  duplicates: number;
  /** NotActive answers. */
  refused: number;
  /** Connection failures, timeouts and acks that did not match the batch. */
  errors: number;
  timeouts: number;
  /** Oldest batches dropped because the buffer was full. */
  droppedBatches: number;
  /** Batches the SP refused as invalid: dropped, never resent. */
  rejectedBatches: number;
  /** New agent ids taken because the SP refused a sequence as out of its window (the queue renumbered from 1). */
  agentIdRenewals: number;
  /** Moves to the next endpoint. */
  failovers: number;
}

export type SenderState = 'idle' | 'sending' | 'backoff' | 'closed';

type Attempt = 'acked' | 'rejected' | 'failed' | 'renewed' | 'closed';

/**
 * The agent's Thrift publisher (README "The cartridge agent"): numbers each
 * batch, keeps every unacknowledged one in order in a bounded buffer, sends
 * the oldest first to the current endpoint, and on NotActive, an error or a
 * timeout moves to the next endpoint; after a whole round of failures it
 * waits (1 s doubling to 10 s) before the next. An ack removes exactly the
 * batch it names. Nothing is lost while the buffer holds; when it does not,
 * the oldest go first and are counted.
 */
export class BatchSender {
  readonly counters: BatchSenderCounters = {
    batches: 0,
    sent: 0,
    acked: 0,
    statsAcked: 0,
    duplicates: 0,
    refused: 0,
    errors: 0,
    timeouts: 0,
    droppedBatches: 0,
    rejectedBatches: 0,
    agentIdRenewals: 0,
    failovers: 0,
  };
  private readonly options: ResolvedBatchSenderOptions;
  private readonly log: Logger;
  private readonly queue: HealthStatBatch[] = [];
  private agentId: string;
  /** The last sequence given under `agentId`. */
  private sequence = 0;
  /** Renewed, and no batch acknowledged under the new id yet: a window refusal now is not the SP's old state. */
  private renewalUnconfirmed = false;
  private current = 0;
  private failuresInRound = 0;
  private failing = false;
  private retryDelayMs: number;
  private senderState: SenderState = 'idle';
  private timer: TimerHandle | undefined;
  private wake: (() => void) | undefined;

  constructor(input: BatchSenderOptions) {
    this.options = resolveBatchSenderOptions(input);
    this.retryDelayMs = this.options.retryDelayMs;
    this.agentId = this.options.agentId;
    this.log = this.options.logger.child({ component: 'batch-sender' });
  }

  /** The agent id batches are sent under now: the one given, or the last renewal of it. */
  get currentAgentId(): string {
    return this.agentId;
  }

  get state(): SenderState {
    return this.senderState;
  }

  /** Every endpoint as `host:port`, in the order they are tried. */
  get endpointNames(): string[] {
    return this.options.endpoints.map((_, index) => this.endpointName(index));
  }

  /** The endpoint batches go to now (`host:port`). */
  get currentEndpoint(): string {
    return this.endpointName();
  }

  /** A getter, not a field test: TypeScript would narrow the field across the awaits of run(). */
  private get closed(): boolean {
    return this.senderState === 'closed';
  }

  /** Batches waiting for an ack (bounded by maxUnackedBatches). */
  get queued(): number {
    return this.queue.length;
  }

  /** Numbers `stats` as the next batch, queues it and starts sending. */
  enqueue(stats: HealthStat[]): HealthStatBatch | undefined {
    if (this.senderState === 'closed') return undefined;
    this.counters.batches += 1;
    this.sequence += 1;
    const batch: HealthStatBatch = {
      agentId: this.agentId,
      sequence: this.sequence,
      stats,
      credential: this.options.credential,
    };
    this.queue.push(batch);
    if (this.queue.length > this.options.maxUnackedBatches) {
      const dropped = this.queue.shift();
      this.counters.droppedBatches += 1;
      this.log.warn('resend buffer full, dropped the oldest batch', {
        event: 'batch_sender.batch_dropped',
        sequence: dropped?.sequence,
        maxUnackedBatches: this.options.maxUnackedBatches,
        droppedBatches: this.counters.droppedBatches,
      });
    }
    if (this.senderState === 'idle') void this.run();
    return batch;
  }

  /** Stops sending; what is still queued is given up (and counted in the log). Idempotent. */
  close(): void {
    if (this.senderState === 'closed') return;
    this.senderState = 'closed';
    this.options.clock.clearTimeout(this.timer);
    this.wake?.();
    if (this.queue.length > 0) {
      this.log.warn('closing with unacknowledged batches', {
        event: 'batch_sender.closed_unacknowledged',
        queued: this.queue.length,
      });
    }
  }

  private endpointName(index = this.current): string {
    const endpoint = this.options.endpoints[index] as Endpoint;
    return `${endpoint.host}:${endpoint.port}`;
  }

  private async run(): Promise<void> {
    this.senderState = 'sending';
    const n = this.options.endpoints.length;
    while (this.queue.length > 0 && !this.closed) {
      const batch = this.queue[0] as HealthStatBatch;
      const result = await this.attempt(batch);
      if (result === 'closed' || this.closed) return;
      if (result === 'renewed') continue;
      if (result !== 'failed') {
        const at = this.queue.indexOf(batch);
        // Absent when the buffer overflowed and dropped it while it was in flight.
        if (at >= 0) this.queue.splice(at, 1);
        if (this.failing) {
          this.log.info('batches accepted again', {
            event: 'batch_sender.accepted_again',
            endpoint: this.endpointName(),
            queued: this.queue.length,
          });
        }
        this.failing = false;
        this.failuresInRound = 0;
        this.retryDelayMs = this.options.retryDelayMs;
        continue;
      }
      this.current = (this.current + 1) % n;
      this.counters.failovers += 1;
      this.failuresInRound += 1;
      if (this.failuresInRound >= n) {
        this.failuresInRound = 0;
        if (!this.failing) {
          this.log.warn('no SP endpoint accepts batches, keeping them', {
            event: 'batch_sender.no_endpoint_accepts',
            queued: this.queue.length,
          });
        }
        this.failing = true;
        await this.pause(this.retryDelayMs);
        this.retryDelayMs = Math.min(this.retryDelayMs * 2, this.options.maxRetryDelayMs);
      }
    }
    if (!this.closed) this.senderState = 'idle';
  }

  private pause(ms: number): Promise<void> {
    this.senderState = 'backoff';
    return new Promise<void>((resolve) => {
      this.wake = resolve;
      this.timer = this.options.clock.setTimeout(resolve, ms);
    }).then(() => {
      this.wake = undefined;
      if (this.senderState === 'backoff') this.senderState = 'sending';
    });
  }

  /**
   * Takes a new agent id `<memberId>:<now>` (never the current one) and
   * renumbers the queue from 1 under it. Safe: batches go oldest first, one
   * at a time, so none after the refused one has reached an SP.
   */
  private renew(reason: string): void {
    const memberId = this.agentId.split(':')[0] as string;
    const previous = this.agentId;
    const start = Number(previous.split(':')[1] ?? 0);
    this.agentId = `${memberId}:${Math.max(this.options.clock.now(), start + 1)}`;
    this.sequence = 0;
    for (let i = 0; i < this.queue.length; i++) {
      this.sequence += 1;
      this.queue[i] = { ...(this.queue[i] as HealthStatBatch), agentId: this.agentId, sequence: this.sequence };
    }
    this.counters.agentIdRenewals += 1;
    this.renewalUnconfirmed = true;
    this.log.warn('SP refused the sequence as out of its window; sending under a new agent id', {
      event: 'batch_sender.agent_id_renewed',
      previous,
      agentId: this.agentId,
      queued: this.queue.length,
      reason,
    });
  }

  /** One publish of `batch` to the current endpoint, bounded by the call timeout. Never rejects. */
  private async attempt(batch: HealthStatBatch): Promise<Attempt> {
    const { clock, callTimeoutMs, transport } = this.options;
    const endpoint = this.options.endpoints[this.current] as Endpoint;
    const fields = { endpoint: this.endpointName(), sequence: batch.sequence };
    this.counters.sent += 1;
    let timer: TimerHandle | undefined;
    try {
      const outcome = await new Promise<PublishOutcome | 'closed'>((resolve, reject) => {
        this.wake = () => resolve('closed');
        timer = clock.setTimeout(
          () => reject(new CallTimeoutError(`publish to ${fields.endpoint}`, callTimeoutMs)),
          callTimeoutMs,
        );
        transport.publish(endpoint, batch).then(resolve, reject);
      });
      if (outcome === 'closed') return 'closed';
      switch (outcome.type) {
        case 'ack': {
          const { ack } = outcome;
          if (ack.agentId !== batch.agentId || ack.sequence !== batch.sequence) {
            this.counters.errors += 1;
            this.log.warn('ack does not match the batch', {
              event: 'batch_sender.ack_mismatch',
              ...fields,
              ackAgentId: ack.agentId,
              ackSequence: ack.sequence,
            });
            return 'failed';
          }
          this.counters.acked += 1;
          this.counters.statsAcked += batch.stats.length;
          this.renewalUnconfirmed = false;
          if (ack.duplicate) this.counters.duplicates += 1;
          return 'acked';
        }
        case 'not-active':
          this.counters.refused += 1;
          this.log.debug('endpoint not active', {
            event: 'batch_sender.endpoint_not_active',
            ...fields,
            reason: outcome.reason,
          });
          return 'failed';
        case 'invalid':
          // Out of the SP's sequence window (the SP kept this agent's state through a long outage while
          // the buffer dropped more than its window): a new agent id starts a fresh window. Not again
          // before the new id has an ack: then the refusal is not about old state, and the batch is dropped.
          if (refusalOf(outcome.reason) === 'sequence_out_of_window' && !this.renewalUnconfirmed) {
            this.renew(outcome.reason);
            return 'renewed';
          }
          this.counters.rejectedBatches += 1;
          this.log.error('SP refused a batch as invalid, dropping it', {
            event: 'batch_sender.batch_rejected',
            ...fields,
            reason: outcome.reason,
          });
          return 'rejected';
      }
    } catch (error) {
      this.counters.errors += 1;
      if (error instanceof CallTimeoutError) {
        this.counters.timeouts += 1;
        // A hung connection may still answer late; a fresh one is needed either way.
        transport.reset(endpoint);
      }
      this.log.debug('publish failed', { event: 'batch_sender.publish_failed', ...fields, error });
      return 'failed';
    } finally {
      clock.clearTimeout(timer);
      this.wake = undefined;
    }
  }
}
