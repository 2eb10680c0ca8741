import type { Logger, TimerHandle } from '@faultline/core';
import type { BatchAck, Endpoint, HealthStat, HealthStatBatch } from '@faultline/protocol';
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
}

export interface BatchSenderCounters {
  /** Batches made (the last sequence). */
  batches: number;
  /** Publish calls (first sends and resends). */
  sent: number;
  /** Batches acknowledged and removed. */
  acked: number;
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
  /** Moves to the next endpoint. */
  failovers: number;
}

export type SenderState = 'idle' | 'sending' | 'backoff' | 'closed';

type Attempt = 'acked' | 'rejected' | 'failed' | 'closed';

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
    duplicates: 0,
    refused: 0,
    errors: 0,
    timeouts: 0,
    droppedBatches: 0,
    rejectedBatches: 0,
    failovers: 0,
  };
  private readonly options: ResolvedBatchSenderOptions;
  private readonly log: Logger;
  private readonly queue: HealthStatBatch[] = [];
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
    this.log = this.options.logger.child({ component: 'batch-sender' });
  }

  get state(): SenderState {
    return this.senderState;
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
    const batch: HealthStatBatch = { agentId: this.options.agentId, sequence: this.counters.batches, stats };
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
