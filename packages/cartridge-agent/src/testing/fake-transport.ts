import type { Endpoint, HealthStatBatch } from '@faultline/protocol';
import type { BatchTransport, PublishOutcome } from '../batch-sender.js';

/** What a fake SP endpoint does with a publish. */
export type FakeEndpointMode = 'active' | 'passive' | 'down' | 'hung' | 'invalid' | 'ack-lost';

/**
 * In-memory SP endpoints for unit tests of the sender and the agent: each is
 * active (acks, and like the SP dedupes by agent id + sequence across the
 * pair), passive (NotActive), down (connection refused), hung (never answers)
 * invalid (InvalidBatch) or ack-lost (takes the batch, the reply never
 * arrives). Every call and reset is recorded.
 */
export class FakeTransport implements BatchTransport {
  readonly calls: { endpoint: string; sequence: number }[] = [];
  /** The last batch published under each sequence. */
  readonly batches = new Map<number, HealthStatBatch>();
  readonly resets: string[] = [];
  /** Batches acknowledged as new, per endpoint, in order. */
  readonly accepted = new Map<string, number[]>();
  closed = false;
  private readonly modes = new Map<string, FakeEndpointMode>();
  private readonly seen = new Set<string>();

  set(endpoint: string, mode: FakeEndpointMode): void {
    this.modes.set(endpoint, mode);
  }

  /** Every sequence acknowledged as new, by any endpoint. */
  acceptedSequences(): number[] {
    return [...this.accepted.values()].flat().sort((a, b) => a - b);
  }

  publish(endpoint: Endpoint, batch: HealthStatBatch): Promise<PublishOutcome> {
    const name = `${endpoint.host}:${endpoint.port}`;
    this.calls.push({ endpoint: name, sequence: batch.sequence });
    this.batches.set(batch.sequence, batch);
    switch (this.modes.get(name) ?? 'active') {
      case 'passive':
        return Promise.resolve({ type: 'not-active', reason: 'passive' });
      case 'down':
        return Promise.reject(new Error(`connect ECONNREFUSED ${name}`));
      case 'hung':
        return new Promise(() => {});
      case 'invalid':
        return Promise.resolve({ type: 'invalid', reason: 'stats: too many' });
      case 'ack-lost':
        this.take(name, batch);
        return new Promise(() => {});
      case 'active': {
        const duplicate = this.take(name, batch);
        return Promise.resolve({
          type: 'ack',
          ack: { agentId: batch.agentId, sequence: batch.sequence, duplicate, epoch: 1, replicated: true },
        });
      }
    }
  }

  /** Records the batch as the SP pair would; true when it had been seen before. */
  private take(name: string, batch: HealthStatBatch): boolean {
    const key = `${batch.agentId}/${batch.sequence}`;
    const duplicate = this.seen.has(key);
    this.seen.add(key);
    if (!duplicate) this.accepted.set(name, [...(this.accepted.get(name) ?? []), batch.sequence]);
    return duplicate;
  }

  reset(endpoint: Endpoint): void {
    this.resets.push(`${endpoint.host}:${endpoint.port}`);
  }

  /** Every endpoint called that is not down holds an open connection; a hung one is still connecting. */
  connections(): Record<string, 'connecting' | 'open'> {
    const states: Record<string, 'connecting' | 'open'> = {};
    for (const { endpoint } of this.calls) {
      const mode = this.modes.get(endpoint) ?? 'active';
      if (mode !== 'down' && !this.closed) states[endpoint] = mode === 'hung' ? 'connecting' : 'open';
    }
    return states;
  }

  close(): void {
    this.closed = true;
  }
}
