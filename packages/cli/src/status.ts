import { escapeControlChars, type FaultlineConfig } from '@faultline/core';
import type pg from 'pg';
import { type ActionRow, clusterStates, lastActions, liveMembers, maintenanceRows } from './cluster-view.js';
import { type MaintenanceRow, maintenanceRow } from './maintenance.js';
import { portAnswers, spStatus } from './probes.js';
import type { ServiceView } from './supervisor.js';

export interface StackStatus {
  /** The supervisor's view of each platform service (PostgreSQL first when embedded): pid (null when not running), state, restarts. */
  services: { name: string; pid: number | null; state: string; restarts: number }[];
  sp: {
    node: string;
    role: string;
    epoch: number | null;
    passiveLink: string | null;
    /** The active's replication lag to its passive (batches not yet acknowledged, and their age); null on another role. */
    lag: { batches: number; ms: number } | null;
    thriftPort: number;
  }[];
  /** Each of `brokers.nodes`, whoever runs it (external ones too): whether its port accepts a connection; `url` as configured. */
  brokers: { name: string; port: number; up: boolean; url?: string }[];
  clusters: {
    id: string;
    min: number;
    max: number;
    /** ISO time the cluster's fault-storm hold began, or null. */
    faultStormHeldSince: string | null;
    /** Network partitions the fault detector is silent about: fault-driven actions there are held. */
    detectorSilent: { networkPartitionId: string; since: string }[];
    /**
     * The whole cluster's maintenance (`faultline maintenance on CLUSTER`), or null: its faults are
     * held, its minimum and scaling rules paused. Intended, so not degraded.
     */
    maintenance: MaintenanceRow | null;
    /**
     * `held` names why a fault of the member is held (`storm`, `silent` or `maintenance`), else null;
     * `maintenance` is the member's own (`faultline maintenance on CLUSTER MEMBER`), else null. Times ISO.
     */
    members: {
      memberId: string;
      state: string;
      held: string | null;
      maintenance: MaintenanceRow | null;
      createdAt: string;
      activatedAt: string | null;
      /** `host:port` of its workload, once spawned: where a load balancer sends its requests. */
      address: string | null;
      /**
       * Draining (README "Autoscaler → Graceful drain"): when its drain ends at the latest (ISO), else
       * null. A load balancer sends requests only to Active members that are not draining.
       */
      drainingUntil: string | null;
      /**
       * Its readiness probe fails (README "Probes"): out of service since (ISO), and why; else null.
       * Not a fault: it is not replaced for it. A load balancer sends it no requests meanwhile.
       */
      outOfService: { since: string; reason: string | null } | null;
    }[];
  }[];
  actions: ActionRow[];
}

export async function stackStatus(
  config: FaultlineConfig,
  pool: pg.Pool,
  services: readonly ServiceView[] = [],
): Promise<StackStatus> {
  const sp = await Promise.all(
    config.streamProcessor.nodes.map(async (node) => {
      // The node's own status type; undefined fields (epoch while passive) are absent from the JSON.
      const s = await spStatus(node);
      if (!s)
        return { node: node.id, role: 'DOWN', epoch: null, passiveLink: null, lag: null, thriftPort: node.thriftPort };
      const active = s.role === 'ACTIVE';
      return {
        node: node.id,
        role: s.role,
        epoch: s.epoch ?? null,
        passiveLink: active ? s.passive.link : null,
        lag: active ? { batches: s.passive.lagBatches, ms: s.passive.lagMs } : null,
        thriftPort: node.thriftPort,
      };
    }),
  );
  const brokers = await Promise.all(
    config.brokers.nodes.map(async (b) => ({
      name: b.name,
      port: b.port,
      up: await portAnswers(b.host, b.port),
      ...(b.url === undefined ? {} : { url: b.url }),
    })),
  );
  const members = await liveMembers(pool).catch(() => []);
  const states = await clusterStates(pool).catch(() => new Map<string, never>());
  const maintenance = await maintenanceRows(pool).catch(() => []);
  const iso = (ms: number) => new Date(ms).toISOString();
  const clusters = config.clusters.map((c) => {
    const state = states.get(c.id);
    const held = new Map((state?.faults.held ?? []).map((h) => [h.memberId, h.cause]));
    const outOfService = new Map((state?.service ?? []).filter((s) => s.out).map((s) => [s.memberId, s]));
    const rows = maintenance.filter((m) => m.clusterId === c.id);
    const whole = rows.find((m) => m.memberId === null);
    const own = (memberId: string) => {
      const row = rows.find((m) => m.memberId === memberId);
      return row ? maintenanceRow(row) : null;
    };
    return {
      id: c.id,
      min: c.min,
      max: c.max,
      faultStormHeldSince: state?.faults.stormHeldSince == null ? null : iso(state.faults.stormHeldSince),
      maintenance: whole ? maintenanceRow(whole) : null,
      detectorSilent: (state?.detectorSilent ?? []).map((d) => ({
        networkPartitionId: d.networkPartitionId,
        since: iso(d.since),
      })),
      members: members
        .filter((m) => m.clusterId === c.id)
        .map((m) => ({
          memberId: m.memberId,
          state: m.state,
          held: held.get(m.memberId) ?? null,
          maintenance: own(m.memberId),
          createdAt: iso(m.createdAt),
          activatedAt: m.activatedAt === null ? null : iso(m.activatedAt),
          address: m.instance ? `${m.instance.address.host}:${m.instance.address.port}` : null,
          drainingUntil: m.state === 'Terminating' && m.drainUntil != null ? iso(m.drainUntil) : null,
          outOfService: serviceOf(outOfService.get(m.memberId)),
        })),
    };
  });
  return {
    services: services.map((v) => ({ name: v.name, pid: v.pid ?? null, state: v.state, restarts: v.restarts })),
    sp,
    brokers,
    clusters,
    actions: await lastActions(pool).catch(() => []),
  };
}

/**
 * Why the stack runs degraded, or nothing: a platform service not up, not
 * exactly one SP node active, an SP node not answering, a broker down, or a
 * cluster holding faults (a storm, a silent detector). `stack status` exits
 * non-zero then, so a script or a probe can tell. Maintenance is not among
 * them: an operator asked for it, and its held faults are what it is for.
 */
export function degraded(status: StackStatus): string[] {
  const reasons: string[] = [];
  for (const s of status.services) if (s.state !== 'up') reasons.push(`service ${s.name} ${s.state}`);
  const actives = status.sp.filter((s) => s.role === 'ACTIVE').length;
  if (actives !== 1) reasons.push(`${actives} active SP nodes`);
  for (const s of status.sp) if (s.role === 'DOWN') reasons.push(`SP node ${s.node} not answering`);
  for (const b of status.brokers) if (!b.up) reasons.push(`broker ${b.name} down`);
  for (const c of status.clusters) {
    if (c.faultStormHeldSince !== null) reasons.push(`cluster ${c.id} holds its faults in a fault storm`);
    if (c.detectorSilent.length > 0) reasons.push(`cluster ${c.id}: the fault detector is silent`);
  }
  return reasons;
}

/** A member's out-of-service state as the status shows it (an ISO time). */
function serviceOf(s: { since: number; reason: string | null } | undefined) {
  return s ? { since: new Date(s.since).toISOString(), reason: s.reason } : null;
}

const HELD: Record<string, string> = { storm: 'fault storm', silent: 'detector silent', maintenance: 'maintenance' };

/** `by alice@host since 10:02:11: why` */
function maintenanceText(m: MaintenanceRow): string {
  return `by ${m.by} since ${m.since.slice(11, 19)}${m.reason ? `: ${m.reason}` : ''}`;
}

/** The status as a readable block of tables; what came from the registry (a reason) has its control characters escaped. */
export function formatStatus(status: StackStatus): string {
  const lines: string[] = [];
  if (status.services.length > 0) {
    lines.push('SERVICES');
    for (const v of status.services) {
      const restarts = v.restarts === 1 ? '1 restart' : `${v.restarts} restarts`;
      lines.push(`  ${v.name.padEnd(14)} ${v.state.padEnd(11)} pid ${String(v.pid ?? '-').padEnd(8)} ${restarts}`);
    }
  }
  lines.push('STREAM PROCESSOR');
  for (const s of status.sp) {
    const extra = s.role === 'ACTIVE' ? `  passive link: ${s.passiveLink ?? 'none'}` : '';
    lines.push(
      `  ${s.node.padEnd(8)} ${s.role.padEnd(14)} epoch ${String(s.epoch ?? '-').padEnd(5)} thrift :${s.thriftPort}${extra}`,
    );
  }
  lines.push('BROKERS');
  for (const b of status.brokers)
    lines.push(`  ${b.name.padEnd(8)} ${b.url ?? `:${String(b.port).padEnd(6)}`} ${b.up ? 'up' : 'DOWN'}`);
  lines.push('CLUSTERS');
  for (const c of status.clusters) {
    lines.push(`  ${c.id} (min ${c.min}, max ${c.max}): ${c.members.length} member(s)`);
    for (const d of c.detectorSilent)
      lines.push(
        `    DETECTOR SILENT about ${d.networkPartitionId} since ${d.since.slice(11, 19)}: fault-driven actions held, held members verified`,
      );
    if (c.faultStormHeldSince) lines.push(`    FAULT STORM held since ${c.faultStormHeldSince.slice(11, 19)}`);
    // Older supervisors' JSON has no maintenance fields.
    if (c.maintenance)
      lines.push(`    MAINTENANCE ${maintenanceText(c.maintenance)}: faults held, minimum and scaling rules paused`);
    for (const m of c.members)
      lines.push(
        `    ${m.memberId.padEnd(24)} ${m.state}${m.drainingUntil ? `  (draining until ${m.drainingUntil.slice(11, 19)})` : ''}${m.outOfService ? `  (out of service since ${m.outOfService.since.slice(11, 19)}${m.outOfService.reason ? `: ${m.outOfService.reason}` : ''})` : ''}${m.maintenance ? `  (maintenance ${maintenanceText(m.maintenance)})` : ''}${m.held ? `  (fault held: ${HELD[m.held] ?? m.held})` : ''}`,
      );
  }
  lines.push('LAST AUTOSCALER ACTIONS');
  if (status.actions.length === 0) lines.push('  (none yet)');
  for (const a of status.actions) {
    lines.push(
      `  ${a.at.slice(11, 19)} ${a.action.padEnd(22)} ${a.clusterId.padEnd(10)} ${(a.memberId ?? '').padEnd(24)} ${a.reason}`,
    );
  }
  return lines.map((line) => escapeControlChars(line)).join('\n');
}
