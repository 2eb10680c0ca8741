import type { ClusterPolicy } from './model.js';

/** The timings of the nemesis' stack: short, and proportionate to each other. */
export interface Timings {
  faultTimeoutMs: number;
  summaryIntervalMs: number;
  windowMs: number;
  statIntervalMs: number;
  monitorIntervalMs: number;
  pendingTimeoutMs: number;
  backoffInitialMs: number;
  backoffMaxMs: number;
  backoffResetMs: number;
  stormMaxHoldMs: number;
  orphanGraceMs: number;
  heartbeatIntervalMs: number;
  heartbeatMaxRetry: number;
  pingIntervalMs: number;
  resubscribeIntervalMs: number;
  republishIntervalMs: number;
}

export const TIMINGS: Timings = {
  faultTimeoutMs: 4_000,
  // As the defaults are to each other (60 s, 15 s, 60 s): a held member's new life shows in a
  // window that starts after its faulted life, which a window longer than the fault timeout
  // cannot show before the held fault is carried out.
  summaryIntervalMs: 1_000,
  windowMs: 4_000,
  statIntervalMs: 500,
  monitorIntervalMs: 1_000,
  pendingTimeoutMs: 12_000,
  backoffInitialMs: 500,
  backoffMaxMs: 4_000,
  backoffResetMs: 30_000,
  stormMaxHoldMs: 30_000,
  orphanGraceMs: 10_000,
  heartbeatIntervalMs: 1_000,
  heartbeatMaxRetry: 2,
  pingIntervalMs: 500,
  resubscribeIntervalMs: 2_000,
  republishIntervalMs: 3_000,
};

/** One cluster of 3 (the storm guard applies), or that and one of 2 (the detector-silence gate's size). */
export function clustersFor(count: 1 | 2): ClusterPolicy[] {
  const web = { id: 'web', min: 3, max: 3 };
  return count === 1 ? [web] : [web, { id: 'api', min: 2, max: 2 }];
}

/** The stack's ports: PostgreSQL, brokers a and b, thrift, sync and status of sp-1 and of sp-2, the health ports of autoscaler-a and -b. */
export const PORT_COUNT = 11;

/**
 * The faultline.yaml of a nemesis stack (JSON is YAML): its own ports,
 * min = max for every cluster (nothing scales behind the checker's back),
 * the timings above.
 */
export function stackConfig(
  kind: 'aedes' | 'mosquitto',
  ports: readonly number[],
  clusters: readonly ClusterPolicy[],
  t: Timings = TIMINGS,
): Record<string, unknown> {
  if (ports.length !== PORT_COUNT) throw new RangeError(`stackConfig needs ${PORT_COUNT} ports, got ${ports.length}`);
  const p = (i: number) => ports[i] as number;
  return {
    database: { embeddedPort: p(0) },
    brokers: {
      kind,
      nodes: [
        { name: 'a', port: p(1) },
        { name: 'b', port: p(2) },
      ],
    },
    messaging: {
      pingIntervalMs: t.pingIntervalMs,
      resubscribeIntervalMs: t.resubscribeIntervalMs,
      republishIntervalMs: t.republishIntervalMs,
    },
    streamProcessor: {
      heartbeatIntervalMs: t.heartbeatIntervalMs,
      heartbeatMaxRetry: t.heartbeatMaxRetry,
      nodes: [
        { id: 'sp-1', thriftPort: p(3), syncPort: p(4), statusPort: p(5) },
        { id: 'sp-2', thriftPort: p(6), syncPort: p(7), statusPort: p(8) },
      ],
    },
    cep: { faultTimeoutMs: t.faultTimeoutMs, windowMs: t.windowMs, summaryIntervalMs: t.summaryIntervalMs },
    agent: { statIntervalMs: t.statIntervalMs },
    autoscaler: {
      monitorIntervalMs: t.monitorIntervalMs,
      pendingTimeoutMs: t.pendingTimeoutMs,
      backoffInitialMs: t.backoffInitialMs,
      backoffMaxMs: t.backoffMaxMs,
      backoffResetMs: t.backoffResetMs,
      stormMaxHoldMs: t.stormMaxHoldMs,
      orphanGraceMs: t.orphanGraceMs,
      heartbeatIntervalMs: t.heartbeatIntervalMs,
      heartbeatMaxRetry: t.heartbeatMaxRetry,
      nodes: [
        { id: 'autoscaler-a', healthPort: p(9) },
        { id: 'autoscaler-b', healthPort: p(10) },
      ],
    },
    // A service killed again and again comes back within the allowance (the backoff is capped there).
    supervisor: { restartMaxMs: ALLOWANCES.supervisorRestartDelayMs },
    clusters: clusters.map((c) => ({ id: c.id, cartridgeType: 'php', min: c.min, max: c.max })),
  };
}

/** What the bound allows for what the configuration does not state. */
export const ALLOWANCES = {
  /** The supervisor restarts a dead service within this (its backoff capped here: `supervisor.restartMaxMs`). */
  supervisorRestartDelayMs: 2_000,
  /** A restarted service (its migrations, its lease, its adoption) is ready within this. */
  serviceReadyMs: 8_000,
  /** The autoscaler's probe of a held member (Iaas.probe, 2 s). */
  probeTimeoutMs: 2_000,
  /** The local driver's SIGTERM → SIGKILL grace (defaultGraceMs, 5 s). */
  terminateGraceMs: 5_000,
} as const;

/**
 * The quiet period's bound: after the last fault healed, every cluster is
 * back at min Active members and every harmed member is gone within this.
 * The sum of the longest path the documented rules allow:
 *
 *   a killed service back        supervisor restart delay + service ready
 *   an SP takeover               lease (heartbeat × retries) + graceAfterTakeover (= fault timeout)
 *   detection                    fault timeout + summary interval (the absence rule's extra interval)
 *   a fault-storm hold           summary interval (release) + fault timeout (the held fault carried out)
 *   terminate                    probe timeout (held members are verified) + terminate grace
 *   replacement                  backoff max + pending timeout (a replacement has until its
 *                                pending timeout to activate; spawning and activating are in it)
 *   the monitor's ticks          3 × monitor interval
 */
export function quietBound(t: Timings = TIMINGS): { totalMs: number; parts: [string, number][] } {
  const a = ALLOWANCES;
  const parts: [string, number][] = [
    ['killed service back (restart delay + ready)', a.supervisorRestartDelayMs + a.serviceReadyMs],
    ['SP takeover (lease + grace after takeover)', t.heartbeatIntervalMs * t.heartbeatMaxRetry + t.faultTimeoutMs],
    ['autoscaler takeover (lease; the other node adopts)', t.heartbeatIntervalMs * t.heartbeatMaxRetry],
    ['detection (fault timeout + summary interval)', t.faultTimeoutMs + t.summaryIntervalMs],
    ['fault-storm release (summary interval + fault timeout)', t.summaryIntervalMs + t.faultTimeoutMs],
    ['terminate (probe + grace)', a.probeTimeoutMs + a.terminateGraceMs],
    ['replacement (backoff max + pending timeout)', t.backoffMaxMs + t.pendingTimeoutMs],
    ['monitor ticks (3 × interval)', 3 * t.monitorIntervalMs],
  ];
  return { totalMs: parts.reduce((sum, [, ms]) => sum + ms, 0), parts };
}
