import type { ActionEvent, ContextEvent } from './model.js';

/** One JSON line of a service's log, as far as the nemesis reads it. */
interface LogLine {
  timestamp?: unknown;
  event?: unknown;
  message?: unknown;
  action?: unknown;
  clusterId?: unknown;
  memberId?: unknown;
  reason?: unknown;
  epoch?: unknown;
  [key: string]: unknown;
}

/** The JSON records of a log file's text; lines that do not parse (a torn last line after kill -9) are skipped. */
export function parseLogLines(text: string): LogLine[] {
  const out: LogLine[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const value: unknown = JSON.parse(line);
      if (value && typeof value === 'object') out.push(value as LogLine);
    } catch {
      // torn line
    }
  }
  return out;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** The decisions of the autoscaler's log (records with `event: autoscaler.action`). */
export function actionsFromLog(records: readonly LogLine[]): ActionEvent[] {
  const out: ActionEvent[] = [];
  for (const r of records) {
    if (r.event !== 'autoscaler.action') continue;
    const at = Date.parse(str(r.timestamp) ?? '');
    const action = str(r.action);
    const clusterId = str(r.clusterId);
    if (!Number.isFinite(at) || action === undefined || clusterId === undefined) continue;
    out.push({
      at,
      action,
      clusterId,
      memberId: str(r.memberId) ?? null,
      reason: str(r.reason) ?? '',
      epoch: typeof r.epoch === 'number' ? r.epoch : null,
      source: 'log',
    });
  }
  return out;
}

/** A row of `autoscaler_action` as the nemesis selects it. */
export interface ActionRow {
  at: number;
  action: string;
  cluster_id: string;
  member_id: string | null;
  reason: string;
  epoch: string | number | null;
}

export function actionsFromRows(rows: readonly ActionRow[]): ActionEvent[] {
  return rows.map((r) => ({
    at: Math.round(r.at),
    action: r.action,
    clusterId: r.cluster_id,
    memberId: r.member_id,
    reason: r.reason,
    epoch: r.epoch === null ? null : Number(r.epoch),
    source: 'db' as const,
  }));
}

/**
 * One list of decisions from the two records of them: the log (lines may be
 * lost when the autoscaler is killed) and the action table (a row whose
 * write failed is dropped). A row and a log record with the same action,
 * cluster, member and reason within `toleranceMs` are one decision; each
 * matches at most one, so a decision taken twice stays twice. In time order.
 */
export function mergeActions(
  fromLog: readonly ActionEvent[],
  fromDb: readonly ActionEvent[],
  toleranceMs = 1_000,
): ActionEvent[] {
  const merged: ActionEvent[] = fromLog.map((a) => ({ ...a }));
  const used = new Set<number>();
  for (const row of fromDb) {
    let best = -1;
    for (let i = 0; i < merged.length; i += 1) {
      const a = merged[i] as ActionEvent;
      if (used.has(i) || a.source !== 'log') continue;
      if (a.action !== row.action || a.clusterId !== row.clusterId || a.memberId !== row.memberId) continue;
      if (a.reason !== row.reason || Math.abs(a.at - row.at) > toleranceMs) continue;
      if (best < 0 || Math.abs(a.at - row.at) < Math.abs((merged[best] as ActionEvent).at - row.at)) best = i;
    }
    if (best >= 0) {
      used.add(best);
      (merged[best] as ActionEvent).source = 'both';
    } else {
      merged.push({ ...row, source: 'db' });
    }
  }
  return merged
    .map((a, i) => ({ a, i }))
    .sort((x, y) => x.a.at - y.a.at || x.i - y.i)
    .map(({ a }) => a);
}

/** Log events worth showing around a violation (besides the decisions). */
const CONTEXT_EVENTS = new Set([
  'cep.member_fault',
  'cep.became_active',
  'sp.became_active',
  'sp.became_passive',
  'sp.stepping_down',
  'lease.acquired',
  'lease.lost',
  'autoscaler.started',
  'autoscaler.member_resumed',
  'autoscaler.member_active',
  'autoscaler.spawn_failed',
  'autoscaler.spawn_not_recorded',
  'autoscaler.spawned_unwanted',
  'autoscaler.pending_timeout',
  'autoscaler.orphan_found',
  'autoscaler.instance_missing',
  'autoscaler.held_member_answers',
  'autoscaler.fault_ignored',
  'autoscaler.fault_held',
  'autoscaler.held_fault_cleared',
  'autoscaler.stale_epoch_fact',
  'autoscaler.terminate_failed',
  'autoscaler.member_stuck',
  'autoscaler.registry_unreachable',
  'supervisor.service_restarting',
  'supervisor.service_ready',
  'supervisor.service_exited',
  'supervisor.service_not_back',
]);

const SHOWN_FIELDS = ['memberId', 'clusterId', 'reason', 'role', 'epoch', 'service', 'signal', 'silentForMs', 'state'];

/** The notable records of one service's log, one line each. */
export function contextFromLog(service: string, records: readonly LogLine[]): ContextEvent[] {
  const out: ContextEvent[] = [];
  for (const r of records) {
    const event = str(r.event);
    if (event === undefined || !CONTEXT_EVENTS.has(event)) continue;
    const at = Date.parse(str(r.timestamp) ?? '');
    if (!Number.isFinite(at)) continue;
    const fields = SHOWN_FIELDS.filter(
      (k) => r[k] !== undefined && r[k] !== null && !(k === 'service' && r[k] === service),
    )
      .map((k) => `${k}=${typeof r[k] === 'string' ? r[k] : JSON.stringify(r[k])}`)
      .join(' ');
    out.push({ at, service, text: `${str(r.message) ?? event} ${fields}`.trim() });
  }
  return out;
}
