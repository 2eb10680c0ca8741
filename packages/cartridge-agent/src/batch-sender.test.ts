import { systemClock } from '@faultline/core';
import type { HealthStat } from '@faultline/protocol';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BatchSender } from './batch-sender.js';
import type { BatchSenderOptions } from './batch-sender-options.js';
import { FakeTransport } from './testing/index.js';

const A = { host: 'sp-1', port: 7611 };
const B = { host: 'sp-2', port: 7612 };
const stat: HealthStat = {
  clusterId: 'php',
  clusterInstanceId: 'php-1',
  networkPartitionId: 'np-1',
  partitionId: 'p-1',
  memberId: 'm-1',
  healthDescription: 'load_average',
  value: 12,
  timestamp: 1,
};

const CREDENTIAL = 'm-1:php:np-1:credential-issued-at-spawn';

function setup(extra: Partial<BatchSenderOptions> = {}) {
  const transport = new FakeTransport();
  const sender = new BatchSender({
    agentId: 'm-1:1000',
    credential: CREDENTIAL,
    endpoints: [A, B],
    transport,
    clock: systemClock,
    ...extra,
  });
  return { transport, sender };
}

const settle = () => vi.advanceTimersByTimeAsync(0);

describe('BatchSender', () => {
  beforeEach(() => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date', 'performance'] }));
  afterEach(() => vi.useRealTimers());

  it('numbers batches 1, 2, 3 for this agent and removes each on its ack', async () => {
    const { transport, sender } = setup();
    for (let i = 0; i < 3; i++) sender.enqueue([stat]);
    await settle();
    expect(transport.calls).toEqual([1, 2, 3].map((sequence) => ({ endpoint: 'sp-1:7611', sequence })));
    expect(sender.queued).toBe(0);
    expect(sender.state).toBe('idle');
    expect(sender.counters).toMatchObject({ batches: 3, sent: 3, acked: 3, failovers: 0 });
    expect([...transport.batches.values()].map((b) => b.credential)).toEqual([CREDENTIAL, CREDENTIAL, CREDENTIAL]);
  });

  it('moves to the next endpoint on NotActive and resends the same batch there', async () => {
    const { transport, sender } = setup();
    transport.set('sp-1:7611', 'passive');
    sender.enqueue([stat]);
    sender.enqueue([stat]);
    await settle();
    expect(transport.calls).toEqual([
      { endpoint: 'sp-1:7611', sequence: 1 },
      { endpoint: 'sp-2:7612', sequence: 1 },
      { endpoint: 'sp-2:7612', sequence: 2 }, // it stays where it was accepted
    ]);
    expect(transport.accepted.get('sp-2:7612')).toEqual([1, 2]);
    expect(sender.counters).toMatchObject({ refused: 1, failovers: 1, acked: 2 });
  });

  it('after a whole round of failures waits 1 s, doubling to 10 s, and starts again at 1 s after an ack', async () => {
    const { transport, sender } = setup();
    transport.set('sp-1:7611', 'down');
    transport.set('sp-2:7612', 'passive');
    sender.enqueue([stat]);
    const callsAt: number[] = [];
    for (let t = 0; t <= 40_000; t += 100) {
      callsAt.push(...transport.calls.splice(0).map(() => t));
      await vi.advanceTimersByTimeAsync(100);
    }
    // Rounds of two calls at 0, 1, 3, 7, 15, 25, 35 s.
    expect(callsAt.filter((_, i) => i % 2 === 0)).toEqual([0, 1_000, 3_000, 7_000, 15_000, 25_000, 35_000]);
    expect(sender.state).toBe('backoff');
    transport.set('sp-2:7612', 'active');
    await vi.advanceTimersByTimeAsync(10_000);
    expect(sender.counters.acked).toBe(1);
    transport.set('sp-2:7612', 'down');
    transport.calls.splice(0);
    sender.enqueue([stat]);
    await vi.advanceTimersByTimeAsync(999);
    expect(transport.calls).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(transport.calls).toHaveLength(4);
  });

  it('gives up on a call after its timeout, drops that connection and tries the next endpoint', async () => {
    const { transport, sender } = setup({ callTimeoutMs: 3_000 });
    transport.set('sp-1:7611', 'hung');
    sender.enqueue([stat]);
    await vi.advanceTimersByTimeAsync(2_999);
    expect(sender.counters.acked).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(transport.resets).toEqual(['sp-1:7611']);
    expect(sender.counters).toMatchObject({ timeouts: 1, errors: 1, acked: 1 });
    expect(transport.accepted.get('sp-2:7612')).toEqual([1]);
  });

  it('counts the duplicate when a resend follows a lost ack, and the SP keeps it once', async () => {
    const { transport, sender } = setup({ callTimeoutMs: 1_000 });
    transport.set('sp-1:7611', 'ack-lost');
    sender.enqueue([stat]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(sender.counters).toMatchObject({ acked: 1, duplicates: 1 });
    expect(transport.acceptedSequences()).toEqual([1]);
  });

  it('keeps at most maxUnackedBatches, dropping and counting the oldest, and sends the rest in order later', async () => {
    const { transport, sender } = setup({ maxUnackedBatches: 3 });
    transport.set('sp-1:7611', 'down');
    transport.set('sp-2:7612', 'down');
    for (let i = 0; i < 5; i++) {
      sender.enqueue([stat]);
      await vi.advanceTimersByTimeAsync(100);
      expect(sender.queued).toBeLessThanOrEqual(3);
    }
    expect(sender.counters.droppedBatches).toBe(2);
    transport.set('sp-2:7612', 'active');
    await vi.advanceTimersByTimeAsync(10_000);
    expect(transport.accepted.get('sp-2:7612')).toEqual([3, 4, 5]);
    expect(sender.queued).toBe(0);
  });

  it('drops a batch the SP refuses as invalid instead of blocking every later one', async () => {
    const { transport, sender } = setup();
    transport.set('sp-1:7611', 'invalid');
    sender.enqueue([stat]);
    await settle();
    transport.set('sp-1:7611', 'active');
    sender.enqueue([stat]);
    await settle();
    expect(sender.counters).toMatchObject({ rejectedBatches: 1, acked: 1 });
    expect(transport.acceptedSequences()).toEqual([2]);
  });

  it('a sequence refused as out of the SP window: the queue is renumbered from 1 under a new agent id, nothing dropped', async () => {
    const { transport, sender } = setup();
    transport.set('sp-1:7611', 'down');
    transport.set('sp-2:7612', 'down');
    for (let i = 0; i < 3; i++) sender.enqueue([{ ...stat, value: i }]);
    await settle();
    // The SP still holds the agent's old window: every sequence of the old id is too far ahead.
    const sent: { agentId: string; sequence: number; value: number }[] = [];
    transport.publish = async (_endpoint, batch) => {
      sent.push({ agentId: batch.agentId, sequence: batch.sequence, value: batch.stats[0]?.value ?? -1 });
      if (batch.agentId === 'm-1:1000') {
        return { type: 'invalid', reason: 'sequence_out_of_window: sequence 2000 is more than 1024 above …' };
      }
      return {
        type: 'ack',
        ack: { agentId: batch.agentId, sequence: batch.sequence, duplicate: false, epoch: 1, replicated: true },
      };
    };
    // Made before the refusal with the old id's numbering, sent after it under the new id.
    await vi.advanceTimersByTimeAsync(1_000);
    sender.enqueue([{ ...stat, value: 3 }]);
    await vi.advanceTimersByTimeAsync(10_000);
    const renewed = sender.currentAgentId;
    expect(renewed).toMatch(/^m-1:\d+$/);
    expect(renewed).not.toBe('m-1:1000');
    expect(sent.filter((s) => s.agentId === renewed)).toEqual(
      [0, 1, 2, 3].map((value) => ({
        agentId: renewed,
        sequence: value + 1,
        value,
      })),
    );
    expect(sender.counters).toMatchObject({ agentIdRenewals: 1, rejectedBatches: 0, acked: 4 });
  });

  it('renews once: a window refusal before the new id has an ack drops that batch like any other refusal', async () => {
    const { transport, sender } = setup();
    transport.publish = async () => ({ type: 'invalid', reason: 'sequence_out_of_window: always' });
    sender.enqueue([stat]);
    sender.enqueue([stat]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(sender.counters).toMatchObject({ agentIdRenewals: 1, rejectedBatches: 2, sent: 3 });
    expect(sender.queued).toBe(0);
  });

  it('treats an ack naming another batch as a failure', async () => {
    const { transport, sender } = setup();
    transport.publish = async (_endpoint, batch) => ({
      type: 'ack',
      ack: { agentId: batch.agentId, sequence: batch.sequence + 1, duplicate: false, epoch: 1, replicated: true },
    });
    sender.enqueue([stat]);
    await settle();
    expect(sender.counters).toMatchObject({ acked: 0, errors: 2 });
    expect(sender.queued).toBe(1);
  });

  it('stops on close, idempotently, and refuses new batches', async () => {
    const { transport, sender } = setup({ callTimeoutMs: 60_000 });
    transport.set('sp-1:7611', 'hung');
    sender.enqueue([stat]);
    await settle();
    sender.close();
    sender.close();
    expect(sender.state).toBe('closed');
    expect(sender.enqueue([stat])).toBeUndefined();
    await vi.advanceTimersByTimeAsync(120_000);
    expect(transport.calls).toHaveLength(1);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('refuses to be created without an endpoint', () => {
    expect(() => setup({ endpoints: [] })).toThrow(
      expect.objectContaining({
        code: 'FL_ERR_CONFIG_INVALID',
        issues: [expect.objectContaining({ key: 'endpoints' })],
      }),
    );
  });
});
