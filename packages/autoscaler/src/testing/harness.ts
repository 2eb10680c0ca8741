/**
 * Test scaffolding for the unit tests of this package: an AutoscalerCore on
 * fake time (vitest's) with a FakeIaas, a MemoryRegistry, a memory logger and
 * a publish that keeps every envelope.
 */
import { type ClusterConfig, resolveConfig, systemClock } from '@faultline/core';
import { createMemoryLogger, type LogRecord } from '@faultline/core/testing';
import {
  type ClusterStatEventType,
  createEnvelope,
  type Envelope,
  type MemberStatEventType,
} from '@faultline/protocol';
import { vi } from 'vitest';
import { AutoscalerCore } from '../autoscaler-core.js';
import type { AutoscalerCoreOptions } from '../options.js';
import { FakeIaas } from './fake-iaas.js';
import { MemoryRegistry } from './memory-registry.js';

export const T0 = 1_700_000_000_000;

/** A parsed `clusters[]` entry: php, min 3, max 5, thresholds rif 50 / memory 90 / load 90. */
export function clusterConfig(overrides: Record<string, unknown> = {}): ClusterConfig {
  const config = resolveConfig(
    {
      clusters: [
        {
          id: 'php',
          cartridgeType: 'php',
          min: 3,
          max: 5,
          thresholds: { requestsInFlight: 50, memoryConsumption: 90, loadAverage: 90 },
          ...overrides,
        },
      ],
    },
    { env: {} },
  );
  return config.clusters[0] as ClusterConfig;
}

export function useFakeTime(): void {
  vi.useFakeTimers({ now: T0 });
}

/** Lets every promise chain (fake Iaas calls, their completions, the registry writer) run. */
export async function flush(): Promise<void> {
  for (let i = 0; i < 20; i++) await vi.advanceTimersByTimeAsync(0);
}

export function harness(options: Partial<AutoscalerCoreOptions> & { registry?: MemoryRegistry } = {}) {
  const iaas = (options.iaas as FakeIaas | undefined) ?? new FakeIaas(systemClock);
  const registry = options.registry ?? new MemoryRegistry();
  const logger = createMemoryLogger();
  const published: Envelope[] = [];
  let n = 0;
  const core = new AutoscalerCore({
    clusters: [clusterConfig()],
    monitorIntervalMs: 1_000,
    pendingTimeoutMs: 60_000,
    backoffInitialMs: 10_000,
    backoffMaxMs: 300_000,
    faultStormWindowMs: 60_000,
    newMemberId: (clusterId) => `${clusterId}-${++n}`,
    logger,
    ...options,
    iaas,
    registry,
    publish: async (envelope) => {
      published.push(envelope);
    },
  });
  const decisions = (): LogRecord[] => logger.records.filter((r) => r.event === 'autoscaler.action');
  return {
    core,
    iaas,
    registry,
    logger,
    published,
    /** Every decision as `Action memberId`, in log order. */
    actions: (): string[] =>
      decisions().map((r) => [r.fields.action, r.fields.memberId].filter((x) => x !== null).join(' ')),
    decisions,
    /** Every message as `root/Type memberId`. */
    messages: (): string[] =>
      published.map((e) => {
        const memberId = (e.data as { memberId?: string }).memberId;
        return [`${e.type.endsWith('Event') ? 'topology' : 'autoscaler'}/${e.type}`, memberId]
          .filter(Boolean)
          .join(' ');
      }),
    stateOf: (memberId: string) =>
      core
        .status()
        .clusters.flatMap((c) => c.members)
        .find((m) => m.memberId === memberId)?.state,
    memberIds: (clusterId = 'php'): string[] =>
      core
        .status()
        .clusters.find((c) => c.clusterId === clusterId)
        ?.members.map((m) => m.memberId) ?? [],
    /**
     * Advances fake time by `ms` in summary ticks of `stepMs`, a member summary
     * listing every live member at each (as a healthy SP would), so the absence
     * rule and the detector gate see a working detector.
     */
    async report(ms: number, options: { stepMs?: number; except?: readonly string[] } = {}): Promise<void> {
      const stepMs = options.stepMs ?? 15_000;
      const except = new Set(options.except ?? []);
      const end = Date.now() + ms;
      while (Date.now() < end) {
        await vi.advanceTimersByTimeAsync(Math.min(stepMs, end - Date.now()));
        const now = Date.now();
        const live = Object.fromEntries(
          core
            .status()
            .clusters.flatMap((c) => c.members)
            .filter((m) => m.state !== 'Terminating' && !except.has(m.memberId))
            .map((m) => [m.memberId, 10]),
        );
        const epoch = core.status().newestEpoch ?? 1;
        await core.handle(events.memberStats('MemberAverageLoadAverageEvent', live, now - 60_000, now, epoch));
      }
      await flush();
    },
    /** Starts, spawns min, and activates every member. */
    async startActive(): Promise<void> {
      await core.start();
      await flush();
      for (const id of iaas.running) await core.handle(events.activated(id));
      await flush();
    },
  };
}

let summarySeq = 0;
const where = { clusterId: 'php', clusterInstanceId: 'php-1', networkPartitionId: 'np-1' };

export const events = {
  fault(
    memberId: string,
    options: { epoch?: number; id?: string; lastStatAt?: number | null; reason?: 'timeout' | 'ports_not_open' } = {},
  ): Envelope {
    const lastStatAt = options.lastStatAt === undefined ? T0 : options.lastStatAt;
    return createEnvelope(
      'MemberFaultEvent',
      {
        ...where,
        partitionId: 'p-1',
        memberId,
        reason: options.reason ?? 'timeout',
        lastStatAt,
        silentForMs: 60_000,
      },
      {
        source: 'sp-1',
        id: options.id ?? `MemberFaultEvent:${memberId}:${lastStatAt}`,
        epoch: options.epoch ?? 1,
        time: Date.now(),
      },
    );
  },
  started: (memberId: string): Envelope =>
    createEnvelope('InstanceStartedEvent', { ...where, partitionId: 'p-1', memberId }, { source: `agent-${memberId}` }),
  activated: (memberId: string): Envelope =>
    createEnvelope(
      'InstanceActivatedEvent',
      { ...where, partitionId: 'p-1', memberId },
      { source: `agent-${memberId}` },
    ),
  /** A readiness event of the member's agent, life `life`, `seq` within it (README "Probes"). */
  service: (
    type: 'InstanceOutOfServiceEvent' | 'InstanceInServiceEvent',
    memberId: string,
    life: number,
    seq: number,
  ): Envelope =>
    createEnvelope(
      type,
      {
        ...where,
        partitionId: 'p-1',
        memberId,
        life,
        seq,
        ...(type === 'InstanceOutOfServiceEvent' ? { reason: 'GET /ready answered 503' } : {}),
      },
      { source: `agent-${memberId}`, id: `${type}:${memberId}:${life}:${seq}` },
    ),
  clusterStat: (type: ClusterStatEventType, value: number, windowTo: number, epoch = 1): Envelope =>
    createEnvelope(
      type,
      { ...where, value, windowFrom: windowTo - 60_000, windowTo },
      { source: 'sp-1', epoch, id: `${type}:php:np-1:${windowTo}` },
    ),
  /** One member summary as the SP sends it: the figures of several members of one tick. */
  memberStats: (
    type: MemberStatEventType,
    members: Record<string, number>,
    windowFrom: number,
    windowTo: number,
    epoch = 1,
  ): Envelope =>
    createEnvelope(
      type,
      {
        ...where,
        windowFrom,
        windowTo,
        part: 0,
        members: Object.entries(members).map(([memberId, value]) => ({ memberId, value })),
      },
      { source: 'sp-1', epoch, id: `${type}:php:np-1:0:${windowTo}:${++summarySeq}` },
    ),
};
