import { type Clock, ConfigError, FaultlineError, type TimerHandle } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import {
  type ClusterStatEventType,
  decodeEnvelope,
  type Envelope,
  type EnvelopeOf,
  type HealthDescription,
  type HealthStat,
  type HealthStatBatch,
  MAX_ENVELOPE_BYTES,
  MEMBERS_PER_STAT_EVENT,
  type MemberStatEventType,
  topicFor,
  validateEnvelope,
} from '@faultline/protocol';
import { columnsOf } from '@faultline/protocol/testing';
import type { QueryEngine } from '@faultline/stream-processor';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type CepEngine, type CepEngineOptions, createCepEngine, type FaultDeclared } from './index.js';

const stat = (
  memberId: string,
  healthDescription: HealthDescription,
  value: number,
  timestamp: number,
  clusterId = 'php',
): HealthStat => ({
  clusterId,
  clusterInstanceId: `${clusterId}-1`,
  networkPartitionId: 'np-1',
  partitionId: 'p-1',
  memberId,
  healthDescription,
  value,
  timestamp,
});

let sequence = 0;
const batch = (...stats: HealthStat[]): HealthStatBatch => ({ agentId: 'agent-1', sequence: ++sequence, stats });
/** One agent round: load, memory and requests in flight of one member. */
const round = (memberId: string, timestamp: number, value = 1) =>
  batch(
    stat(memberId, 'load_average', value, timestamp),
    stat(memberId, 'memory_consumption', value, timestamp),
    stat(memberId, 'requests_in_flight', value, timestamp),
  );

type SummaryEnvelope = Extract<Envelope, { type: ClusterStatEventType | MemberStatEventType }>;

const engines: CepEngine[] = [];
function engine(options: CepEngineOptions = {}) {
  const logger = createMemoryLogger();
  const e = createCepEngine({ source: 'sp-1', logger, ...options });
  engines.push(e);
  /** What a subscriber acts on: the first emission of each id (it dedupes repeats, e.g. re-announced faults, by id). */
  const out: Envelope[] = [];
  /** Every emission, repeats included. */
  const all: Envelope[] = [];
  const seen = new Set<string>();
  e.onOutput((envelope) => {
    all.push(envelope);
    if (!seen.has(envelope.id)) out.push(envelope);
    seen.add(envelope.id);
  });
  const faults = () => out.filter((o): o is EnvelopeOf<'MemberFaultEvent'> => o.type === 'MemberFaultEvent');
  const summaries = () => out.filter((o): o is SummaryEnvelope => o.type !== 'MemberFaultEvent');
  return { e, out, all, faults, summaries, logger };
}

describe('CepEngine', () => {
  beforeEach(() => vi.useFakeTimers({ now: 0 }));
  afterEach(() => {
    for (const e of engines.splice(0)) e.close();
    vi.useRealTimers();
  });

  it('has the shape of the stream processor’s QueryEngine', () => {
    const asQueryEngine: QueryEngine = createCepEngine();
    asQueryEngine.close();
  });

  it('publishes a MemberFault at exactly the fault timeout, with a deterministic id and the epoch', async () => {
    const { e, faults, logger } = engine();
    e.activate(3);
    e.apply(round('m-1', 1_000));
    await vi.advanceTimersByTimeAsync(59_999);
    expect(faults()).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(faults()).toEqual([
      {
        id: 'MemberFaultEvent:m-1:1000',
        type: 'MemberFaultEvent',
        time: 60_000,
        source: 'sp-1',
        epoch: 3,
        data: {
          clusterId: 'php',
          clusterInstanceId: 'php-1',
          networkPartitionId: 'np-1',
          partitionId: 'p-1',
          memberId: 'm-1',
          reason: 'timeout',
          lastStatAt: 1_000,
          silentForMs: 60_000,
        },
      },
    ]);
    const [fault] = faults();
    expect(validateEnvelope(fault).ok).toBe(true);
    expect(topicFor('MemberFaultEvent')).toBe('summarized-health-stats/MemberFaultEvent');
    expect(logger.records).toContainEqual(
      expect.objectContaining({
        level: 'info',
        event: 'cep.member_fault',
        fields: expect.objectContaining({ component: 'cep', memberId: 'm-1', reason: 'timeout', silentForMs: 60_000 }),
      }),
    );
  });

  it('declares no fault while stats flow, one per silence, and again after a new life', async () => {
    const { e, faults } = engine();
    e.activate(1);
    for (let t = 0; t < 300_000; t += 15_000) {
      e.apply(round('m-1', t));
      await vi.advanceTimersByTimeAsync(15_000);
    }
    expect(faults()).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(10 * 60_000);
    expect(faults().map((f) => [f.id, f.time])).toEqual([['MemberFaultEvent:m-1:285000', 345_000]]);
    e.apply(round('m-1', 900_000));
    await vi.advanceTimersByTimeAsync(60_000);
    expect(faults().map((f) => f.id)).toEqual(['MemberFaultEvent:m-1:285000', 'MemberFaultEvent:m-1:900000']);
    expect(e.status()).toMatchObject({ members: 1, faulted: 1, faultsDeclared: 2, faultsEmitted: 2 });
  });

  it('a stat resent after the fault, not newer than the last, starts no new life', async () => {
    const { e, faults } = engine();
    e.activate(1);
    e.apply(round('m-1', 5_000));
    await vi.advanceTimersByTimeAsync(60_000);
    e.apply(round('m-1', 5_000));
    await vi.advanceTimersByTimeAsync(120_000);
    expect(faults()).toHaveLength(1);
    expect(e.status().lateStats).toBe(3);
  });

  it('ports_not_open is an immediate fault, once per life', async () => {
    const { e, faults } = engine();
    e.activate(1);
    e.apply(round('m-1', 1_000));
    await vi.advanceTimersByTimeAsync(5_000);
    e.apply(batch(stat('m-1', 'ports_not_open', 1, 6_000)));
    e.apply(batch(stat('m-1', 'ports_not_open', 1, 7_000)));
    expect(faults().map((f) => [f.id, f.time, f.data])).toEqual([
      ['MemberFaultEvent:m-1:6000', 5_000, expect.objectContaining({ reason: 'ports_not_open', silentForMs: 0 })],
    ]);
    // No timeout fault for the same life either.
    await vi.advanceTimersByTimeAsync(120_000);
    expect(faults()).toHaveLength(1);
    // A member first seen by its ports_not_open faults at once too.
    e.apply(batch(stat('m-2', 'ports_not_open', 1, 8_000)));
    expect(faults().map((f) => f.id)).toEqual(['MemberFaultEvent:m-1:6000', 'MemberFaultEvent:m-2:8000']);
  });

  it('ports_not_open (README "Probes"): rounds of it alone fault once per life; a stale one or a 0 faults nobody', async () => {
    const { e, faults } = engine();
    e.activate(1);
    // An agent whose liveness failed past its threshold: at once, then every round, ports_not_open alone.
    e.apply(round('m-1', 1_000));
    for (const t of [20_000, 30_000, 45_000, 60_000]) e.apply(batch(stat('m-1', 'ports_not_open', 1, t)));
    await vi.advanceTimersByTimeAsync(180_000);
    expect(faults().map((f) => [f.id, f.data.reason])).toEqual([['MemberFaultEvent:m-1:20000', 'ports_not_open']]);
    // One older than the member's newest stat (resent after a failover, or late): a later round had none,
    // so liveness passed then. Ignored, counted.
    e.apply(round('m-2', 10_000));
    e.apply(round('m-2', 25_000));
    e.apply(batch(stat('m-2', 'ports_not_open', 1, 12_000)));
    expect(e.status().stalePortsNotOpen).toBe(1);
    // Value 0 says the port answers: a sign of life, no fault.
    e.apply(batch(stat('m-2', 'ports_not_open', 0, 30_000)));
    expect(faults().map((f) => f.data.memberId)).toEqual(['m-1']);
    expect(e.status()).toMatchObject({ faulted: 1 });
  });

  it('an older agent’s round (figures, then ports_not_open after one missed answer) is still a fault at once', () => {
    // The wire carries no agent version: its single miss cannot be told from a threshold reached.
    const { e, faults } = engine();
    e.activate(1);
    e.apply(round('m-old', 1_000));
    e.apply(
      batch(
        stat('m-old', 'load_average', 1, 16_000),
        stat('m-old', 'memory_consumption', 1, 16_000),
        stat('m-old', 'ports_not_open', 1, 16_001),
      ),
    );
    expect(faults().map((f) => [f.id, f.data.reason])).toEqual([['MemberFaultEvent:m-old:16001', 'ports_not_open']]);
    expect(e.status().stalePortsNotOpen).toBe(0);
  });

  it('forget ends detection; late stats of the forgotten member are ignored, newer ones track it anew', async () => {
    const { e, faults, summaries } = engine({ summaryIntervalMs: 15_000 });
    e.activate(1);
    e.apply(round('m-1', 1_000));
    e.apply(round('m-2', 1_000));
    await vi.advanceTimersByTimeAsync(10_000);
    e.forget('m-1');
    e.apply(round('m-1', 1_000));
    expect(e.status().ignoredStats).toBe(3);
    await vi.advanceTimersByTimeAsync(50_000);
    expect(faults().map((f) => f.data.memberId)).toEqual(['m-2']);
    expect(summaries().some((s) => 'memberId' in s.data && s.data.memberId === 'm-1')).toBe(false);
    e.apply(round('m-1', 70_000));
    await vi.advanceTimersByTimeAsync(60_000);
    expect(faults().map((f) => f.id)).toEqual(['MemberFaultEvent:m-2:1000', 'MemberFaultEvent:m-1:70000']);
  });

  it('a passive emits nothing; at activate an unconfirmed timeout fault is re-verified, then published with the new epoch', async () => {
    const { e, faults } = engine({ summaryIntervalMs: 1_000_000 });
    e.apply(round('m-1', 1_000));
    e.apply(round('m-2', 2_000));
    e.apply(round('m-3', 3_000));
    await vi.advanceTimersByTimeAsync(60_000);
    expect(faults()).toHaveLength(0);
    expect(e.status()).toMatchObject({ role: 'PASSIVE', pendingOutputs: 3, faultsDeclared: 3, faultsEmitted: 0 });
    // The active published m-1's and m-3's faults.
    e.confirm(['MemberFaultEvent:m-1:1000', 'MemberFaultEvent:m-3:3000']);
    expect(e.status().pendingOutputs).toBe(1);
    await vi.advanceTimersByTimeAsync(5_000);
    e.activate(7);
    // Its own conclusion, never confirmed: the member gets the grace period (60 s) first …
    expect(faults()).toEqual([]);
    expect(e.status()).toMatchObject({ role: 'ACTIVE', epoch: 7, pendingOutputs: 0, faultsReopened: 1 });
    await vi.advanceTimersByTimeAsync(60_000);
    // … and, still silent, is faulted again under the same id.
    expect(faults().map((f) => [f.id, f.epoch, f.time, f.source])).toEqual([
      ['MemberFaultEvent:m-2:2000', 7, 125_000, 'sp-1'],
    ]);
    expect(e.status()).toMatchObject({ faultsEmitted: 1 });
  });

  it('a confirmation that overtakes the passive’s own fault keeps it from being held', async () => {
    const { e, faults } = engine({ summaryIntervalMs: 1_000_000 });
    e.apply(round('m-1', 1_000));
    e.confirm(['MemberFaultEvent:m-1:1000']);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(e.status()).toMatchObject({ faultsDeclared: 1, pendingOutputs: 0, outputsAlreadyPublished: 1 });
    e.activate(2);
    expect(faults()).toHaveLength(0);
  });

  it('after a takeover every member gets the grace period before any new fault', async () => {
    const { e, faults } = engine({ graceAfterTakeoverMs: 60_000 });
    e.apply(round('m-1', 0));
    await vi.advanceTimersByTimeAsync(50_000);
    e.activate(2); // m-1 was due at 60 000; now not before 110 000
    await vi.advanceTimersByTimeAsync(59_999);
    expect(faults()).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(faults().map((f) => [f.id, f.time, f.epoch, f.data.silentForMs])).toEqual([
      ['MemberFaultEvent:m-1:0', 110_000, 2, 110_000],
    ]);
  });

  it('tells the overshoot metric of the active’s detections only, each once, a takeover’s grace not counted as lateness', async () => {
    const declared: FaultDeclared[] = [];
    const { e } = engine({ graceAfterTakeoverMs: 60_000, onFaultDeclared: (f) => void declared.push(f) });
    e.apply(round('m-1', 0));
    e.apply(round('m-2', 0));
    await vi.advanceTimersByTimeAsync(60_000);
    // Passive: both faults declared and held, none told.
    expect(e.status()).toMatchObject({ faultsDeclared: 2 });
    expect(declared).toEqual([]);
    e.apply(round('m-3', 60_000));
    e.activate(2); // every silent member gets the grace: none faulted before 120 000
    await vi.advanceTimersByTimeAsync(120_000);
    const byMember = new Map(declared.map((f) => [f.memberId, f]));
    expect(byMember.size).toBe(declared.length);
    expect(byMember.get('m-3')).toEqual({ memberId: 'm-3', reason: 'timeout', silentForMs: 60_000, overshootMs: 0 });
    // Declared at their deadline, the grace included: late by nothing.
    for (const f of declared) expect(f.overshootMs).toBe(0);
    e.apply(batch(stat('m-4', 'ports_not_open', 1, 180_000)));
    expect(declared.at(-1)).toEqual({
      memberId: 'm-4',
      reason: 'ports_not_open',
      silentForMs: 0,
      overshootMs: undefined,
    });
  });

  it('the grace defaults to one fault timeout and a member first seen after the takeover has the plain timeout', async () => {
    const { e, faults } = engine({ faultTimeoutMs: 10_000 });
    e.apply(round('old', 0));
    await vi.advanceTimersByTimeAsync(9_000);
    e.activate(2);
    e.apply(round('new', 9_000));
    await vi.advanceTimersByTimeAsync(10_000);
    expect(
      faults()
        .map((f) => [f.data.memberId, f.time])
        .sort(),
    ).toEqual([
      ['new', 19_000],
      ['old', 19_000],
    ]);
  });

  it('deactivate holds outputs again; a repeated activate is no new takeover', async () => {
    const { e, faults } = engine({ faultTimeoutMs: 10_000 });
    e.activate(1);
    e.activate(1);
    e.apply(round('m-1', 0));
    e.deactivate();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(faults()).toHaveLength(0);
    e.activate(2);
    expect(faults()).toHaveLength(0); // re-verified over the grace period first
    await vi.advanceTimersByTimeAsync(10_000);
    expect(faults().map((f) => f.epoch)).toEqual([2]);
  });

  it('two engines fed the same batches produce the same ids', async () => {
    const a = engine({ source: 'sp-1' });
    const b = engine({ source: 'sp-2' });
    a.e.activate(1);
    b.e.activate(1);
    for (let t = 0; t < 120_000; t += 15_000) {
      const batches = [round('m-1', t, t / 1000), round('m-2', t + 500, 50 - t / 5000)];
      if (t < 45_000) batches.push(round('m-3', t + 900, 3));
      for (const x of batches) {
        a.e.apply(x);
        b.e.apply(x);
      }
      await vi.advanceTimersByTimeAsync(15_000);
    }
    await vi.advanceTimersByTimeAsync(60_000);
    expect(a.out.length).toBeGreaterThan(50);
    expect(a.out.map((o) => o.id)).toEqual(b.out.map((o) => o.id));
    expect(a.out.map((o) => o.data)).toEqual(b.out.map((o) => o.data));
    expect(new Set(a.out.map((o) => o.id)).size).toBe(a.out.length);
    expect(new Set(b.out.map((o) => o.source))).toEqual(new Set(['sp-2']));
    expect(a.faults().map((f) => [f.id, f.time])).toEqual([
      ['MemberFaultEvent:m-3:30900', 90_000],
      expect.anything(),
      expect.anything(),
    ]);
    expect(
      a
        .faults()
        .map((f) => f.id)
        .sort(),
    ).toEqual(['MemberFaultEvent:m-1:105000', 'MemberFaultEvent:m-2:105500', 'MemberFaultEvent:m-3:30900']);
  });

  it('a batch in columns (how an agent’s call is read) moves the engine exactly as the same batch as objects', async () => {
    const a = engine();
    const b = engine();
    const both = (x: HealthStatBatch) => {
      a.e.apply(x);
      b.e.apply(columnsOf(x));
    };
    a.e.activate(1);
    b.e.activate(1);
    for (let t = 0; t < 60_000; t += 15_000) {
      both(round('m-1', t, t / 1000));
      both(round('m-2', t + 500, 7));
      both(round('m-3', t + 900, 3));
      await vi.advanceTimersByTimeAsync(15_000);
    }
    // m-1 falls silent and faults; a resend not newer is late; a newer round revives it.
    await vi.advanceTimersByTimeAsync(60_000);
    both(round('m-1', 45_000));
    both(round('m-1', 200_000));
    // ports_not_open: a fault at once, a stale one counted, a 0 a sign of life.
    both(batch(stat('m-2', 'ports_not_open', 1, 130_000)));
    both(batch(stat('m-1', 'ports_not_open', 1, 100_000)));
    both(batch(stat('m-3', 'ports_not_open', 0, 131_000)));
    // A forgotten member: late stats ignored, a newer one tracked anew.
    a.e.forget('m-3');
    b.e.forget('m-3');
    both(round('m-3', 100_000));
    both(round('m-3', 400_000, 9));
    await vi.advanceTimersByTimeAsync(120_000);
    expect(a.all.length).toBeGreaterThan(20);
    expect(b.all.map((o) => [o.id, o.data])).toEqual(a.all.map((o) => [o.id, o.data]));
    expect(a.e.status()).toMatchObject({ lateStats: 3, stalePortsNotOpen: 1, ignoredStats: 3 });
    expect(b.e.status()).toEqual(a.e.status());
    expect(b.e.exportState()).toEqual(a.e.exportState());
  });

  it('a takeover reopens every timeout fault it declared while passive (its silence may be its own pause)', async () => {
    const { e, faults, logger } = engine({ faultTimeoutMs: 60_000 });
    e.apply(round('m-early', 0));
    await vi.advanceTimersByTimeAsync(20_000);
    e.apply(round('m-late', 20_000));
    e.apply(round('m-alive', 20_000));
    // The passive was paused (or its link lagged): it faulted all three on its own, none confirmed by an active.
    await vi.advanceTimersByTimeAsync(70_000);
    expect(e.status()).toMatchObject({ faultsDeclared: 3, faulted: 3 });
    e.activate(7);
    expect(faults()).toEqual([]);
    expect(e.status()).toMatchObject({ faultsReopened: 3, faulted: 0, pendingOutputs: 0 });
    expect(logger.records.find((r) => r.event === 'cep.faults_reopened')?.fields).toMatchObject({ reopened: 3 });
    await vi.advanceTimersByTimeAsync(10_000);
    e.apply(round('m-early', 100_000)); // both report to the new active: m-early a new life
    e.apply(round('m-alive', 100_000));
    await vi.advanceTimersByTimeAsync(49_999);
    expect(faults()).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    // m-late stayed silent through the grace period: now it is faulted, under the same id.
    expect(faults().map((f) => [f.id, f.time, f.epoch])).toEqual([['MemberFaultEvent:m-late:20000', 150_000, 7]]);
  });

  it('summaries: window math on the wire, ids aligned to the tick, every envelope valid', async () => {
    const { e, summaries } = engine({ faultTimeoutMs: 600_000 });
    e.activate(4);
    // m-1 load 1, 2, 4, 8 and m-2 load 10, 40 (see window-stats.test.ts for the hand computation).
    for (const [t, v] of [
      [15, 1],
      [30, 2],
      [45, 4],
      [60, 8],
    ] as const) {
      e.apply(batch(stat('m-1', 'load_average', v, t * 1000)));
    }
    e.apply(batch(stat('m-2', 'load_average', 10, 20_000), stat('m-2', 'load_average', 40, 50_000)));
    await vi.advanceTimersByTimeAsync(60_000);
    const at60 = summaries().filter((s) => s.data.windowTo === 60_000);
    // One event per cluster summary; one per member-summary type listing every member.
    const byId = Object.fromEntries(
      at60.flatMap((s) =>
        'members' in s.data ? s.data.members.map((m) => [`${s.id} ${m.memberId}`, m.value]) : [[s.id, s.data.value]],
      ),
    );
    expect(byId).toEqual({
      'AverageLoadAverageEvent:php:np-1:60000': expect.closeTo(65 / 6, 12),
      'GradientOfLoadAverageEvent:php:np-1:60000': expect.closeTo(26 / 45, 12),
      'SecondDerivativeOfLoadAverageEvent:php:np-1:60000': expect.closeTo(1 / 150, 12),
      'MemberAverageLoadAverageEvent:php:np-1:0:60000 m-1': 3.75,
      'MemberGradientOfLoadAverageEvent:php:np-1:0:60000 m-1': expect.closeTo(7 / 45, 12),
      'MemberSecondDerivativeOfLoadAverageEvent:php:np-1:0:60000 m-1': expect.closeTo(1 / 150, 12),
      'MemberAverageLoadAverageEvent:php:np-1:0:60000 m-2': 25,
      'MemberGradientOfLoadAverageEvent:php:np-1:0:60000 m-2': 1,
    });
    expect(at60.map((s) => s.id)).toHaveLength(6);
    for (const s of summaries()) {
      expect(validateEnvelope(s).ok).toBe(true);
      expect(s.epoch).toBe(4);
      expect(s.data.windowTo % 15_000).toBe(0);
      expect(s.data.windowFrom).toBe(s.data.windowTo - 60_000);
    }
    // Tick at 15 000: only m-1's sample at 15 000 is in (−45 000, 15 000]: an average, no gradient.
    expect(
      summaries()
        .filter((s) => s.data.windowTo === 15_000)
        .map((s) => s.type),
    ).toEqual(['AverageLoadAverageEvent', 'MemberAverageLoadAverageEvent']);
  });

  it('member summaries of a large cluster go out in parts of MEMBERS_PER_STAT_EVENT, in a fixed member order', async () => {
    const { e, summaries } = engine({ faultTimeoutMs: 600_000 });
    e.activate(1);
    const members = Array.from({ length: 2_500 }, (_, i) => `m-${i}`);
    for (const m of members) e.apply(batch(stat(m, 'load_average', 1, 1_000)));
    await vi.advanceTimersByTimeAsync(15_000);
    const averages = summaries().filter(
      (s): s is EnvelopeOf<'MemberAverageLoadAverageEvent'> => s.type === 'MemberAverageLoadAverageEvent',
    );
    expect(averages.map((s) => [s.id, s.data.part, s.data.members.length])).toEqual([
      ['MemberAverageLoadAverageEvent:php:np-1:0:15000', 0, MEMBERS_PER_STAT_EVENT],
      ['MemberAverageLoadAverageEvent:php:np-1:1:15000', 1, MEMBERS_PER_STAT_EVENT],
      ['MemberAverageLoadAverageEvent:php:np-1:2:15000', 2, 500],
    ]);
    expect(averages.flatMap((s) => s.data.members.map((m) => m.memberId))).toEqual(members);
    for (const s of summaries()) expect(validateEnvelope(s).ok).toBe(true);
    // 1 cluster average (one load sample each: no gradient yet) + 3 parts, not 2 500 member events.
    expect(e.status().summariesEmitted).toBe(4);
  });

  describe('member summaries split by encoded size, never over the envelope limit', () => {
    const MEMBER_AVERAGES = ['MemberAverageLoadAverageEvent', 'MemberAverageMemoryConsumptionEvent'] as const;
    type MemberAverage = EnvelopeOf<(typeof MEMBER_AVERAGES)[number]>;
    /** `count` member ids of exactly `length` characters. */
    const idsOf = (count: number, length: number) =>
      Array.from({ length: count }, (_, i) => {
        const suffix = `-${String(i).padStart(6, '0')}`;
        return `${'m'.repeat(length - suffix.length)}${suffix}`;
      });
    /** Each member of checkout-api reports its load and memory once, figures of 17 significant digits. */
    const report = (e: CepEngine, ids: readonly string[]) => {
      for (const m of ids) {
        e.apply(
          batch(
            stat(m, 'load_average', 12.345678901234567, 1_000, 'checkout-api'),
            stat(m, 'memory_consumption', 87.65432109876544, 1_000, 'checkout-api'),
          ),
        );
      }
    };
    const memberParts = (out: readonly Envelope[]) =>
      out.filter((o): o is MemberAverage => (MEMBER_AVERAGES as readonly string[]).includes(o.type));
    /** What a subscriber with this limit receives of the parts: each payload decoded on its topic. */
    const receive = (parts: readonly MemberAverage[], maxBytes = MAX_ENVELOPE_BYTES) =>
      parts.map((part) => {
        const payload = Buffer.from(JSON.stringify(part));
        const decoded = decodeEnvelope(payload, { topic: topicFor(part.type), maxBytes });
        if (!decoded.ok) throw decoded.error;
        expect(payload.length).toBeLessThanOrEqual(maxBytes);
        return decoded.value as MemberAverage;
      });

    it.each([40, 128])(
      'a 1 000-member tick of %i-character ids reaches a subscriber whole: every part within 64 KiB, each member once',
      async (length) => {
        const { e, out } = engine({ faultTimeoutMs: 600_000 });
        e.activate(7);
        const ids = idsOf(1_000, length);
        report(e, ids);
        await vi.advanceTimersByTimeAsync(15_000);
        for (const type of MEMBER_AVERAGES) {
          const parts = memberParts(out).filter((p) => p.type === type);
          const received = receive(parts);
          expect(received.flatMap((p) => p.data.members.map((m) => m.memberId))).toEqual(ids);
          expect(parts.length).toBeGreaterThan(1);
          expect(parts.map((p) => p.id)).toEqual(parts.map((_, k) => `${type}:checkout-api:np-1:${k}:15000`));
        }
        expect(e.status().summaryEntriesTooLarge).toBe(0);
      },
    );

    it('keeps every part within the configured maxMessageBytes', async () => {
      const { e, out } = engine({ faultTimeoutMs: 600_000, maxMessageBytes: 16_384 });
      e.activate(7);
      const ids = idsOf(1_000, 40);
      report(e, ids);
      await vi.advanceTimersByTimeAsync(15_000);
      for (const type of MEMBER_AVERAGES) {
        const received = receive(
          memberParts(out).filter((p) => p.type === type),
          16_384,
        );
        expect(received.length).toBeGreaterThan(5);
        expect(received.flatMap((p) => p.data.members.map((m) => m.memberId))).toEqual(ids);
      }
    });

    it('an entry no envelope can carry is counted, logged at most once a minute, never emitted over the limit, never thrown', async () => {
      // A window of two minutes: the stats stay in it for the tick at 75 s.
      const { e, out, summaries, logger } = engine({
        faultTimeoutMs: 600_000,
        windowMs: 120_000,
        maxMessageBytes: 1_024,
      });
      e.activate(7);
      const ids = idsOf(3, 128);
      report(e, ids);
      await vi.advanceTimersByTimeAsync(15_000);
      expect(memberParts(out)).toEqual([]);
      // The cluster summaries still go out.
      expect(summaries().map((s) => s.type)).toEqual(['AverageLoadAverageEvent', 'AverageMemoryConsumptionEvent']);
      expect(e.status().summaryEntriesTooLarge).toBe(6);
      const logged = () => logger.records.filter((r) => r.event === 'cep.summary_entry_too_large');
      expect(logged()).toHaveLength(1);
      expect(logged()[0]).toMatchObject({
        level: 'warn',
        fields: { maxMessageBytes: 1_024, clusterId: 'checkout-api', memberId: ids[0] },
      });
      await vi.advanceTimersByTimeAsync(15_000);
      expect(e.status().summaryEntriesTooLarge).toBe(12);
      expect(logged()).toHaveLength(1);
      // A minute on the engine's clock after the first line (the tick at 75 s), the next, with the count so far.
      await vi.advanceTimersByTimeAsync(30_000);
      expect(logged()).toHaveLength(1);
      await vi.advanceTimersByTimeAsync(15_000);
      expect(logged()).toHaveLength(2);
      expect(logged()[1]?.fields).toMatchObject({ summaryEntriesTooLarge: 4 * 6 + 1 });
    });

    it('a passive holds the same parts under the same ids: confirmations clear them, a takeover publishes the rest', async () => {
      const active = engine({ source: 'sp-1', faultTimeoutMs: 600_000 });
      const passive = engine({ source: `sp-${'2'.repeat(200)}`, faultTimeoutMs: 600_000 });
      active.e.activate(1);
      const ids = idsOf(1_000, 40);
      report(active.e, ids);
      report(passive.e, ids);
      // The tick at 15 000; the passive, confirmed nothing, makes it itself after its wait.
      await vi.advanceTimersByTimeAsync(20_000);
      const published = memberParts(active.out);
      expect(published.length).toBeGreaterThan(2);
      expect(passive.e.status().pendingOutputs).toBe(active.out.length);
      // The active dies having published (and confirmed) only the first part of each type.
      const first = published.filter((p) => p.data.part === 0);
      passive.e.confirm(first.map((p) => p.id));
      expect(passive.e.status().pendingOutputs).toBe(active.out.length - first.length);
      passive.e.activate(2);
      const rest = memberParts(passive.out);
      const expected = published.filter((p) => p.data.part > 0);
      expect(rest.map((p) => [p.id, p.epoch, p.data.members])).toEqual(expected.map((p) => [p.id, 2, p.data.members]));
      for (const type of MEMBER_AVERAGES) {
        const whole = receive([...first, ...rest].filter((p) => p.type === type));
        expect(whole.flatMap((p) => p.data.members.map((m) => m.memberId))).toEqual(ids);
      }
    });
  });

  it('summaries while passive wait, only the newest per stream, and go out on activate', async () => {
    const { e, summaries } = engine({ faultTimeoutMs: 600_000 });
    e.apply(batch(stat('m-1', 'requests_in_flight', 5, 1_000)));
    // Ticks at 15, 30 and 45 s, each made passiveTickWaitMs (5 s) later: no active confirmed them.
    await vi.advanceTimersByTimeAsync(50_000);
    expect(summaries()).toHaveLength(0);
    expect(e.status()).toMatchObject({ pendingOutputs: 1, outputsSuperseded: 2 });
    e.activate(9);
    expect(summaries().map((s) => [s.id, s.epoch, s.time])).toEqual([
      ['AverageRequestsInFlightEvent:php:np-1:45000', 9, 45_000],
    ]);
  });

  it('a passive over maxPendingOutputs drops the oldest, summaries first, and warns about faults only', async () => {
    const { e, logger } = engine({ faultTimeoutMs: 20_000, maxPendingOutputs: 4, passiveTickWaitMs: 0 });
    e.apply(round('m-1', 1_000));
    e.apply(round('m-2', 1_000));
    await vi.advanceTimersByTimeAsync(15_000); // 3 cluster + 2 member averages (of both members): 1 dropped
    expect(e.status()).toMatchObject({ pendingOutputs: 4, outputsDropped: 1, faultsDropped: 0 });
    expect(logger.records.some((r) => r.level === 'warn')).toBe(false);
    e.apply(round('m-3', 2_000));
    e.apply(round('m-4', 3_000));
    e.apply(round('m-5', 4_000));
    await vi.advanceTimersByTimeAsync(35_000); // faults of m-1 … m-5 at 20 000 and 35 000
    expect(e.status()).toMatchObject({ pendingOutputs: 4, faultsDropped: 1 });
    expect(logger.records.filter((r) => r.level === 'warn')).toHaveLength(1);
    e.activate(2);
  });

  it('a passive whose tick comes after the active’s confirmation of that tick neither makes nor holds it', async () => {
    const { e } = engine({ faultTimeoutMs: 600_000 });
    e.apply(round('m-1', 1_000));
    e.confirm(['AverageLoadAverageEvent:php:np-1:15000']);
    await vi.advanceTimersByTimeAsync(15_000);
    expect(e.status()).toMatchObject({ pendingOutputs: 0, summariesComputed: 0, summaryTicksLeftToActive: 1 });
    // The next one, never confirmed: made and held once the passive's wait is over.
    await vi.advanceTimersByTimeAsync(19_999);
    expect(e.status()).toMatchObject({ pendingOutputs: 0, summariesComputed: 0 });
    await vi.advanceTimersByTimeAsync(1);
    expect(e.status()).toMatchObject({ pendingOutputs: 5, summariesComputed: 5, summaryTicksLeftToActive: 1 });
  });

  describe('a passive waits for the active’s tick before it makes its own (passiveTickWaitMs)', () => {
    const tick30 = 'AverageLoadAverageEvent:php:np-1:30000';

    it('a confirmation during the wait: the windows pruned, nothing made or held', async () => {
      const { e } = engine({ faultTimeoutMs: 600_000, windowMs: 20_000 });
      e.apply(round('m-1', 1_000));
      e.apply(round('m-2', 20_000));
      await vi.advanceTimersByTimeAsync(31_000); // the 15 s tick (m-1 alone) made after its wait: none confirmed it
      expect(e.status()).toMatchObject({ summariesComputed: 5, pendingOutputs: 5 });
      expect(e.trackedMembers?.()).toBe(2);
      e.confirm([tick30]); // mid-wait of the 30 s tick
      expect(e.status()).toMatchObject({ summariesComputed: 5, summaryTicksLeftToActive: 1 });
      // Its upkeep ran: m-1's samples (1 s) are older than that tick's window (10–30 s), m-1 is gone.
      expect(e.exportState().series.map((m) => m.memberId)).toEqual(['m-2']);
      await vi.advanceTimersByTimeAsync(10_000);
      expect(e.status()).toMatchObject({ summariesComputed: 5, summaryTicksLeftToActive: 1 });
    });

    it('a takeover during the wait publishes that tick at once, and no older one it held', async () => {
      const { e, summaries } = engine({ faultTimeoutMs: 600_000 });
      e.apply(round('m-1', 1_000));
      await vi.advanceTimersByTimeAsync(32_000); // the 15 s tick held, the 30 s one waited for
      expect(e.status()).toMatchObject({ pendingOutputs: 5, summariesComputed: 5 });
      e.activate(3);
      const out = summaries();
      expect(new Set(out.map((o) => o.id.split(':').at(-1)))).toEqual(new Set(['30000']));
      expect(out).toHaveLength(5);
      expect(out.every((o) => o.epoch === 3)).toBe(true);
    });

    it('a takeover after the old active began publishing a tick makes that tick again, whole', async () => {
      const { e, summaries } = engine({ faultTimeoutMs: 600_000 });
      e.apply(round('m-1', 1_000));
      e.apply(
        batch(
          stat('j-1', 'load_average', 2, 1_000, 'java'),
          stat('j-1', 'memory_consumption', 2, 1_000, 'java'),
          stat('j-1', 'requests_in_flight', 2, 1_000, 'java'),
        ),
      );
      await vi.advanceTimersByTimeAsync(15_010);
      // The old active published php's first summary, then died (or was fenced) before the rest.
      e.confirm(['AverageLoadAverageEvent:php:np-1:15000']);
      expect(e.status()).toMatchObject({ summaryTicksLeftToActive: 1, summariesComputed: 0, pendingOutputs: 0 });
      await vi.advanceTimersByTimeAsync(500);
      e.activate(2);
      await vi.advanceTimersByTimeAsync(100);
      const ids = summaries().map((o) => o.id);
      expect(ids).toContain('AverageLoadAverageEvent:php:np-1:15000');
      expect(ids).toContain('AverageLoadAverageEvent:java:np-1:15000');
      expect(ids.filter((id) => id.startsWith('Member'))).toHaveLength(4);
      expect(summaries().every((o) => o.epoch === 2 && o.id.endsWith(':15000'))).toBe(true);
      expect(e.status()).toMatchObject({ summariesComputed: 10, summariesEmitted: 10 });
    });

    it('a tick overtaken by the next while it waits (a late timer) is dropped, not made in one block', () => {
      // A clock whose timers run only when told, and late: each sees the time it is run at.
      let t = 0;
      const timers = new Set<{ at: number; fn: () => void }>();
      const add = (fn: () => void, ms: number) => {
        const timer = { at: t + ms, fn };
        timers.add(timer);
        return timer as unknown as TimerHandle;
      };
      const remove = (h: TimerHandle | undefined) => void timers.delete(h as unknown as { at: number; fn: () => void });
      const runUntil = (to: number) => {
        t = to;
        for (;;) {
          const due = [...timers].filter((x) => x.at <= to).sort((a, b) => a.at - b.at)[0];
          if (!due) return;
          timers.delete(due);
          due.fn();
        }
      };
      const clock: Clock = {
        now: () => t,
        monotonicNow: () => t,
        setTimeout: add,
        clearTimeout: remove,
        setInterval: add,
        clearInterval: remove,
      };
      const e = createCepEngine({ source: 'sp-2', clock, faultTimeoutMs: 600_000, summaryIntervalMs: 15_000 });
      engines.push(e);
      e.apply(round('m-1', 1_000));
      runUntil(26_000); // the 15 s tick's timer runs 11 s late: its wait would end at 31 s
      expect(e.status()).toMatchObject({ summariesComputed: 0 });
      runUntil(30_000); // the 30 s tick: the waiting one is dropped
      expect(e.status()).toMatchObject({ summariesComputed: 0, pendingOutputs: 0 });
      runUntil(35_000); // the 30 s tick's own wait over, unconfirmed: made and held
      expect(e.status()).toMatchObject({ summariesComputed: 5, pendingOutputs: 5 });
      expect(e.exportState().pending.map((o) => o.seq)).toEqual([30_000, 30_000, 30_000, 30_000, 30_000]);
    });

    it('0: made at the tick, as an active does', async () => {
      const { e } = engine({ faultTimeoutMs: 600_000, passiveTickWaitMs: 0 });
      e.apply(round('m-1', 1_000));
      await vi.advanceTimersByTimeAsync(15_000);
      expect(e.status()).toMatchObject({ summariesComputed: 5, pendingOutputs: 5 });
    });

    it('is at most half the summary interval', () => {
      expect(() => createCepEngine({ summaryIntervalMs: 10_000, passiveTickWaitMs: 5_001 })).toThrow(
        /cep\.passiveTickWaitMs must be at most half of summaryIntervalMs/,
      );
      const e = createCepEngine({ summaryIntervalMs: 10_000, passiveTickWaitMs: 5_000 });
      engines.push(e);
      expect(() => createCepEngine({ passiveTickWaitMs: -1 })).toThrow(/cep\.passiveTickWaitMs/);
    });
  });

  it("exportMember is that member's part of exportState, forgotten or not", async () => {
    const { e } = engine({ faultTimeoutMs: 60_000 });
    e.apply(round('m-1', 0, 1));
    e.apply(round('m-2', 0, 2));
    await vi.advanceTimersByTimeAsync(1_000);
    e.apply(round('m-1', 1_000, 3));
    e.forget('m-2');
    const whole = e.exportState();
    const one = e.exportMember('m-1');
    expect(one.members).toEqual(whole.members.filter((m) => m.memberId === 'm-1'));
    expect(one.series).toEqual(whole.series.filter((m) => m.memberId === 'm-1'));
    expect(one.series[0]?.samples.LoadAverage).toHaveLength(2);
    expect(one.forgotten).toEqual([]);
    expect(e.exportMember('m-2')).toMatchObject({ members: [], series: [], forgotten: whole.forgotten });
    expect(e.exportMember('nobody')).toMatchObject({ members: [], series: [], forgotten: [] });
    expect(e.trackedMembers()).toBe(1);
  });

  it('export → JSON → import on another engine keeps detection and windows going', async () => {
    const a = engine({ faultTimeoutMs: 60_000, summaryIntervalMs: 15_000 });
    a.e.apply(round('m-1', 0, 1));
    a.e.apply(round('m-2', 0, 1));
    await vi.advanceTimersByTimeAsync(10_000);
    a.e.apply(round('m-1', 10_000, 3));
    a.e.apply(batch(stat('m-3', 'ports_not_open', 1, 10_000)));
    a.e.forget('m-2');
    const state = JSON.parse(JSON.stringify(a.e.exportState()));
    expect(state).toMatchObject({ version: 1, pending: [expect.objectContaining({ kind: 'fault' })] });
    a.e.close();

    const b = engine({ faultTimeoutMs: 60_000, summaryIntervalMs: 15_000, source: 'sp-2' });
    b.e.importState(state);
    expect(b.e.status()).toMatchObject({ members: 2, faulted: 1, pendingOutputs: 1 });
    b.e.apply(round('m-2', 0));
    expect(b.e.status().ignoredStats).toBe(3);
    b.e.activate(5);
    expect(b.faults().map((f) => [f.id, f.time, f.epoch])).toEqual([['MemberFaultEvent:m-3:10000', 10_000, 5]]);
    await vi.advanceTimersByTimeAsync(5_000);
    // m-1's samples moved with it: (3 − 1) / 10 s.
    const at15 = b.summaries().filter((s) => s.data.windowTo === 15_000);
    const gradients = at15.find((s) => s.id === 'MemberGradientOfLoadAverageEvent:php:np-1:0:15000');
    expect(gradients?.data).toMatchObject({ part: 0, members: [{ memberId: 'm-1', value: 0.2 }] });
    expect(at15.some((s) => 'members' in s.data && s.data.members.some((m) => m.memberId === 'm-2'))).toBe(false);
    // m-1's deadline moved with it: last stat applied at 10 000, due at 70 000.
    await vi.advanceTimersByTimeAsync(54_999);
    expect(b.faults()).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(b.faults().map((f) => [f.id, f.time])).toEqual([
      ['MemberFaultEvent:m-3:10000', 10_000],
      ['MemberFaultEvent:m-1:10000', 70_000],
    ]);
  });

  it('refuses a state that is not its own, naming the field', () => {
    const { e } = engine();
    expect(() => e.importState({ version: 2 })).toThrow(/version: expected 1, got 2/);
    expect(() => e.importState({ version: 2 })).toThrow(expect.objectContaining({ code: 'FL_ERR_STATE_INVALID' }));
    const good = e.exportState();
    expect(() => e.importState({ ...good, members: [{ memberId: 'm-1' }] })).toThrow(/members\[0\]\.clusterId: /);
    expect(() => e.importState({ ...good, pending: [{ kind: 'fault', stream: 's', seq: 1, envelope: {} }] })).toThrow(
      /pending\[0\]\.envelope/,
    );
    expect(() => e.importState(good)).not.toThrow();
  });

  it('validates its options up front with one ConfigError naming each', () => {
    const attempt = () => createCepEngine({ faultTimeoutMs: 0, windowMs: 1.5, source: '' });
    expect(attempt).toThrow(ConfigError);
    try {
      attempt();
    } catch (error) {
      expect((error as ConfigError).code).toBe('FL_ERR_CONFIG_INVALID');
      expect((error as ConfigError).issues.map((i) => i.key)).toEqual([
        'cep.source',
        'cep.faultTimeoutMs',
        'cep.windowMs',
      ]);
    }
  });

  it('a throwing listener is logged and counted; the others still receive the output', async () => {
    const { e, faults, logger } = engine({ faultTimeoutMs: 1_000 });
    const unsubscribe = e.onOutput(() => {
      throw new Error('boom');
    });
    e.activate(1);
    e.apply(round('m-1', 0));
    await vi.advanceTimersByTimeAsync(1_000);
    expect(faults()).toHaveLength(1);
    expect(e.status().listenerErrors).toBe(1);
    expect(logger.records.some((r) => r.level === 'error' && r.event === 'cep.output_listener_failed')).toBe(true);
    unsubscribe();
    e.apply(round('m-2', 0));
    await vi.advanceTimersByTimeAsync(1_000);
    expect(e.status().listenerErrors).toBe(1);
  });

  describe('re-announcing faulted members (a fault lost on any hop is delivered later)', () => {
    const faultsOf = (list: Envelope[]) =>
      list.filter((o): o is EnvelopeOf<'MemberFaultEvent'> => o.type === 'MemberFaultEvent');

    it('a fault whose first emission the listener dropped is emitted again at the next tick, same id and content', async () => {
      const e = createCepEngine({ source: 'sp-1', faultTimeoutMs: 60_000, summaryIntervalMs: 15_000 });
      engines.push(e);
      const received: Envelope[] = [];
      let dropped: Envelope | undefined;
      e.onOutput((envelope) => {
        if (envelope.type !== 'MemberFaultEvent') return;
        // The first one is lost on the way (a publish that never reached the broker).
        if (!dropped) dropped = envelope;
        else received.push(envelope);
      });
      e.activate(4);
      await vi.advanceTimersByTimeAsync(1_000);
      e.apply(round('m-1', 1_000));
      await vi.advanceTimersByTimeAsync(60_000); // the fault at 61 000, between two ticks
      expect(dropped?.id).toBe('MemberFaultEvent:m-1:1000');
      expect(received).toEqual([]);
      await vi.advanceTimersByTimeAsync(13_999);
      expect(received).toEqual([]);
      await vi.advanceTimersByTimeAsync(1); // the tick at 75 000
      expect(received).toEqual([dropped]);
      expect(e.status()).toMatchObject({ faultsDeclared: 1, faultsEmitted: 1, faultsReannounced: 1, faulted: 1 });
      // And at every tick after, as long as it stays faulted.
      await vi.advanceTimersByTimeAsync(30_000);
      expect(received).toEqual([dropped, dropped, dropped]);
    });

    it('only the active re-announces: a passive holds no repeats; a takeover publishes, then re-announces', async () => {
      const { e, all } = engine({ faultTimeoutMs: 60_000 });
      const pendingFaults = () => e.exportState().pending.filter((o) => o.kind === 'fault');
      e.apply(round('m-1', 0));
      await vi.advanceTimersByTimeAsync(120_000);
      expect(all).toEqual([]);
      expect(pendingFaults()).toHaveLength(1);
      expect(e.status()).toMatchObject({ faulted: 1, faultsReannounced: 0 });
      e.confirm(['MemberFaultEvent:m-1:0']);
      await vi.advanceTimersByTimeAsync(30_000);
      expect(pendingFaults()).toEqual([]);
      expect(e.status().faultsReannounced).toBe(0);
      e.activate(2);
      // Confirmed, so not republished at the takeover; the next tick re-announces it.
      expect(faultsOf(all)).toEqual([]);
      await vi.advanceTimersByTimeAsync(15_000);
      expect(faultsOf(all).map((o) => [o.id, o.time, o.epoch])).toEqual([['MemberFaultEvent:m-1:0', 60_000, 2]]);
      e.deactivate();
      await vi.advanceTimersByTimeAsync(30_000);
      expect(faultsOf(all)).toHaveLength(1);
      expect(pendingFaults()).toEqual([]);
      expect(e.status().faultsReannounced).toBe(1);
    });

    it('a forgotten or revived member is not re-announced', async () => {
      const { e, all } = engine({ faultTimeoutMs: 60_000 });
      e.activate(1);
      await vi.advanceTimersByTimeAsync(1_000);
      for (const id of ['gone', 'back', 'stays']) e.apply(round(id, 1_000));
      await vi.advanceTimersByTimeAsync(60_000);
      expect(faultsOf(all)).toHaveLength(3);
      e.forget('gone');
      e.apply(round('back', 61_000));
      all.length = 0;
      await vi.advanceTimersByTimeAsync(14_000);
      expect(faultsOf(all).map((o) => o.id)).toEqual(['MemberFaultEvent:stays:1000']);
    });

    it('at most maxFaultReannouncesPerTick a tick, rotating through every faulted member; 0 turns it off', async () => {
      const { e, all } = engine({ faultTimeoutMs: 60_000, maxFaultReannouncesPerTick: 2 });
      e.activate(1);
      await vi.advanceTimersByTimeAsync(1_000);
      for (const id of ['a', 'b', 'c', 'd', 'e']) e.apply(round(id, 1_000));
      await vi.advanceTimersByTimeAsync(60_000);
      all.length = 0;
      const perTick: string[][] = [];
      for (let tick = 0; tick < 5; tick++) {
        await vi.advanceTimersByTimeAsync(15_000);
        perTick.push(faultsOf(all.splice(0)).map((o) => o.data.memberId));
      }
      expect(perTick.map((ids) => ids.length)).toEqual([2, 2, 2, 2, 2]);
      const order = perTick.flat();
      // Every member within ⌈5 / 2⌉ ticks, then the same round again.
      expect(new Set(order.slice(0, 5)).size).toBe(5);
      expect(order.slice(5)).toEqual(order.slice(0, 5));
      expect(e.status().faultsReannounced).toBe(10);

      const off = engine({ faultTimeoutMs: 60_000, maxFaultReannouncesPerTick: 0 });
      off.e.activate(1);
      off.e.apply(round('a', 0));
      await vi.advanceTimersByTimeAsync(120_000);
      expect(faultsOf(off.all)).toHaveLength(1);
      expect(() => createCepEngine({ maxFaultReannouncesPerTick: -1 })).toThrow(
        /cep\.maxFaultReannouncesPerTick must be an integer ≥ 0/,
      );
    });

    it('a node that imported a faulted member re-announces the fact its peer declared', async () => {
      const a = engine({ faultTimeoutMs: 60_000 });
      a.e.activate(1);
      a.e.apply(batch(stat('m-1', 'ports_not_open', 1, 5_000)));
      const first = faultsOf(a.all)[0];
      const b = engine({ faultTimeoutMs: 60_000, source: 'sp-2' });
      b.e.importState(JSON.parse(JSON.stringify(a.e.exportState())));
      b.e.activate(2);
      await vi.advanceTimersByTimeAsync(15_000);
      expect(faultsOf(b.all).map((o) => [o.id, o.time, o.source, o.epoch, o.data])).toEqual([
        [first?.id, first?.time, 'sp-2', 2, first?.data],
      ]);
    });
  });

  it('close is idempotent, stops every timer, and refuses later batches', async () => {
    const { e, out } = engine({ faultTimeoutMs: 1_000 });
    e.activate(1);
    e.apply(round('m-1', 0));
    e.close();
    e.close();
    expect(e.role).toBe('CLOSED');
    await vi.advanceTimersByTimeAsync(60_000);
    expect(out).toHaveLength(0);
    expect(vi.getTimerCount()).toBe(0);
    expect(() => e.apply(round('m-1', 1))).toThrow(FaultlineError);
  });
});
