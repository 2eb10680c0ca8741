import type { BackoffState } from './backoff.js';
import type { HeldFault } from './cluster-faults.js';
import type { MemberService, MonitorState } from './cluster-monitor.js';
import type { StabilizationState } from './scaling-rule.js';
import { parseAgentRestarts } from './second-witness.js';

/** Held faults restored per cluster at most: a larger stored list is cut (the rest are re-found by the absence rule). */
const MAX_HELD = 100_000;
const MAX_TEXT = 2_048;
const FAULT_KINDS = ['timeout', 'ports_not_open', 'absent', 'gone'] as const;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const finiteOrNull = (v: unknown): v is number | null => v === null || (typeof v === 'number' && Number.isFinite(v));
const text = (v: unknown): v is string => typeof v === 'string' && v.length <= MAX_TEXT;

function backoffOf(v: unknown): BackoffState | string {
  if (!isObject(v)) return 'backoff is not an object';
  const { failures, notBefore, lastFailureAt } = v;
  if (typeof failures !== 'number' || !Number.isSafeInteger(failures) || failures < 0)
    return 'backoff.failures is not a count';
  if (!finiteOrNull(notBefore) || !finiteOrNull(lastFailureAt)) return 'backoff times are not numbers';
  return { failures, notBefore, lastFailureAt };
}

function heldOf(v: unknown): HeldFault | undefined {
  if (!isObject(v)) return undefined;
  const { memberId, cause, reason, lastStatAt, epoch, heldAt, recheckUntil, lastProbe } = v;
  if (!text(memberId) || (cause !== 'storm' && cause !== 'silent' && cause !== 'maintenance') || !text(reason))
    return undefined;
  if (!finiteOrNull(lastStatAt) || !finiteOrNull(epoch) || !finiteOrNull(recheckUntil)) return undefined;
  if (typeof heldAt !== 'number' || !Number.isFinite(heldAt)) return undefined;
  const probe = lastProbe === 'answering' || lastProbe === 'failing' || lastProbe === 'gone' ? lastProbe : null;
  // The fault's kind and time (for its causal chain) are optional: a state stored before them still restores.
  const kind = FAULT_KINDS.find((k) => k === v.kind);
  const declaredAt = typeof v.declaredAt === 'number' && Number.isFinite(v.declaredAt) ? v.declaredAt : undefined;
  return {
    memberId,
    cause,
    reason,
    lastStatAt,
    ...(kind !== undefined && declaredAt !== undefined ? { kind, declaredAt } : {}),
    epoch,
    heldAt,
    recheckUntil,
    lastProbe: probe,
  };
}

/** Recommendations of the scale-down window restored at most (a valid state holds at most max − min + 1). */
const MAX_RECOMMENDATIONS = 10_000;
const SCALE_ACTIONS = ['ScaleUpAction', 'ScaleDownAction'] as const;
const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
/** A time a Date can hold (±8.64e15 ms): what readers turn into an ISO string must not throw. */
const time = (v: unknown): v is number => finite(v) && Math.abs(v) <= 8.64e15;
const timeOrNull = (v: unknown): v is number | null => v === null || time(v);
const count = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/**
 * Scale stabilization (optional: a state stored before it restores without
 * it). A part that does not parse is dropped, not the whole state: without it
 * the cluster only scales as it did before stabilization existed.
 */
function scalingOf(v: unknown): StabilizationState | undefined {
  if (!isObject(v)) return undefined;
  const last: Record<string, unknown> = isObject(v.lastScale) ? v.lastScale : {};
  const { at, members } = last;
  const action = SCALE_ACTIONS.find((a) => a === last.action);
  const lastScale = action !== undefined && time(at) && count(members) ? { action, at, members } : null;
  const recommendations = Array.isArray(v.recommendations)
    ? v.recommendations
        .slice(0, MAX_RECOMMENDATIONS)
        .filter((r): r is { at: number; members: number } => isObject(r) && finite(r.at) && count(r.members))
        .map((r) => ({ at: r.at, members: r.members }))
    : [];
  return { lastScale, cooldownUntil: time(v.cooldownUntil) ? v.cooldownUntil : null, recommendations };
}

/** One member's last readiness event, or undefined when it does not parse (that member is then shown in service). */
function serviceOf(v: unknown): MemberService | undefined {
  if (!isObject(v)) return undefined;
  const { memberId, life, seq, out, reason, since } = v;
  if (!text(memberId) || !count(life) || !count(seq) || typeof out !== 'boolean' || !time(since)) return undefined;
  if (reason !== null && !text(reason)) return undefined;
  return { memberId, life, seq, out, reason, since };
}

/**
 * A cluster's persisted monitor state (autoscaler_cluster.state), checked
 * field by field: the registry is the autoscaler's own, but a row written by
 * another version or edited by hand must not stop a start. Returns the state,
 * or the reason it was refused (the monitor then starts fresh).
 */
export function parseMonitorState(value: unknown): MonitorState | string {
  if (!isObject(value)) return 'not an object';
  const backoff = backoffOf(value.backoff);
  if (typeof backoff === 'string') return backoff;
  const faults = value.faults;
  if (!isObject(faults)) return 'faults is not an object';
  if (!timeOrNull(faults.stormHeldSince)) return 'faults.stormHeldSince is not a time';
  if (!Array.isArray(faults.held)) return 'faults.held is not a list';
  const held: HeldFault[] = [];
  for (const entry of faults.held.slice(0, MAX_HELD)) {
    const parsed = heldOf(entry);
    if (parsed) held.push(parsed);
  }
  const detectorSilent = Array.isArray(value.detectorSilent)
    ? value.detectorSilent
        .slice(0, MAX_HELD)
        .filter(
          (d): d is { networkPartitionId: string; since: number } =>
            isObject(d) && text(d.networkPartitionId) && time(d.since),
        )
        .map((d) => ({ networkPartitionId: d.networkPartitionId, since: d.since }))
    : [];
  // What maintenance the last life had seen (so a takeover does not announce it again); absent before it existed.
  const seen = isObject(value.maintenance) ? value.maintenance : undefined;
  const maintenance = seen
    ? {
        cluster: seen.cluster === true,
        members: Array.isArray(seen.members) ? seen.members.slice(0, MAX_HELD).filter(text) : [],
      }
    : undefined;
  const scaling = scalingOf(value.scaling);
  // The second witness' restarts (absent before it existed).
  const agentRestarts = parseAgentRestarts(value.agentRestarts);
  // Readiness (absent before it was persisted).
  const service = Array.isArray(value.service)
    ? value.service
        .slice(0, MAX_HELD)
        .map(serviceOf)
        .filter((s) => s !== undefined)
    : [];
  return {
    backoff,
    faults: { stormHeldSince: faults.stormHeldSince, held },
    detectorSilent,
    ...(scaling ? { scaling } : {}),
    ...(maintenance ? { maintenance } : {}),
    ...(agentRestarts.length > 0 ? { agentRestarts } : {}),
    ...(service.length > 0 ? { service } : {}),
  };
}
