import os from 'node:os';
import {
  deleteMaintenance,
  MAX_MAINTENANCE_BY,
  MAX_MAINTENANCE_REASON,
  type MaintenanceEntry,
  readLiveMembers,
  readMaintenance,
  writeMaintenance,
} from '@faultline/autoscaler';
import { escapeControlChars, ID_PATTERN, ID_PATTERN_DESCRIPTION, type Logger } from '@faultline/core';
import type pg from 'pg';
import type { ControlHandler } from './control.js';
import { UsageError } from './errors.js';

/*
 * `faultline maintenance on|off CLUSTER [MEMBER]` and `faultline maintenance
 * status` (README "Maintenance mode"): the CLI checks the arguments, the
 * stack's supervisor checks them again against the configuration it runs and
 * writes the registry's maintenance table; the acting autoscaler reads that
 * table at every monitor tick. The supervisor never tells the autoscaler
 * anything: the row is the message.
 */

export const MAINTENANCE_OPS = ['on', 'off', 'status'] as const;
export type MaintenanceOp = (typeof MAINTENANCE_OPS)[number];

/** Control characters (C0, C1) and the Unicode line separators: a reason is one line of text. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
const NOT_ONE_LINE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

/** A maintenance command as the control endpoint receives it, checked once. */
export interface MaintenanceRequest {
  op: MaintenanceOp;
  /** on, off: the cluster. */
  clusterId: string | undefined;
  /** on, off: one member of it; null for the whole cluster. */
  memberId: string | null;
  /** on: why (`--reason`), possibly empty. */
  reason: string;
  /** on: who, as the command states it (`user@host`); the supervisor's own user when absent. */
  by: string | undefined;
}

/** A maintenance row as `maintenance status` and `stack status` show it: `since` as an ISO time. */
export interface MaintenanceRow extends Omit<MaintenanceEntry, 'since'> {
  since: string;
}

/** What the `maintenance` control action answers. */
export type MaintenanceAnswer =
  | { op: 'on'; entry: MaintenanceRow; message: string }
  | { op: 'off'; ended: MaintenanceRow | null; message: string }
  | { op: 'status'; entries: MaintenanceRow[] };

export function maintenanceRow(entry: MaintenanceEntry): MaintenanceRow {
  return { ...entry, since: new Date(entry.since).toISOString() };
}

function isOp(value: unknown): value is MaintenanceOp {
  return (MAINTENANCE_OPS as readonly unknown[]).includes(value);
}

const quoted = (value: unknown) => (typeof value === 'string' ? JSON.stringify(value.slice(0, 64)) : typeof value);

/** Who runs this command: `user@host`, cut to what the registry keeps. */
export function commandUser(): string {
  let user: string;
  try {
    user = os.userInfo().username;
  } catch {
    user = process.env.USER ?? `uid ${process.getuid?.() ?? '?'}`;
  }
  return `${user}@${os.hostname()}`.replace(new RegExp(NOT_ONE_LINE.source, 'g'), '?').slice(0, MAX_MAINTENANCE_BY);
}

/**
 * The `maintenance` call's JSON body (`{ op, clusterId?, memberId?, reason?,
 * by? }`) as a request. The CLI checks its arguments with it before calling
 * the supervisor (exit 2, nothing contacted), and the control endpoint checks
 * the body with it again (it does not trust its caller): a UsageError for an
 * unknown op, a cluster or member that is not an id (README "Ids"), a
 * reason that is not one line of at most 500 characters, or an argument the
 * op does not take.
 */
export function parseMaintenanceRequest(body: Record<string, unknown>): MaintenanceRequest {
  const { op, clusterId, memberId, reason, by } = body;
  if (!isOp(op))
    throw new UsageError(`unknown maintenance command ${quoted(op)}; one of: ${MAINTENANCE_OPS.join(', ')}`);
  const given = (v: unknown) => v !== undefined && v !== null;
  if (op === 'status') {
    if (given(clusterId) || given(memberId) || given(reason))
      throw new UsageError('maintenance status takes no cluster, member or --reason');
    return { op, clusterId: undefined, memberId: null, reason: '', by: undefined };
  }
  if (!given(clusterId)) throw new UsageError(`maintenance ${op} needs a cluster id; see faultline maintenance --help`);
  if (typeof clusterId !== 'string' || !ID_PATTERN.test(clusterId))
    throw new UsageError(`cluster ${quoted(clusterId)} is not an id: it ${ID_PATTERN_DESCRIPTION}`);
  if (given(memberId) && (typeof memberId !== 'string' || !ID_PATTERN.test(memberId)))
    throw new UsageError(`member ${quoted(memberId)} is not a member id: it ${ID_PATTERN_DESCRIPTION}`);
  if (op === 'off' && given(reason)) throw new UsageError('--reason is an option of maintenance on only');
  if (given(reason) && typeof reason !== 'string') throw new UsageError('--reason is not text');
  const text = typeof reason === 'string' ? reason : '';
  if (text.length > MAX_MAINTENANCE_REASON)
    throw new UsageError(`--reason is ${text.length} characters long; at most ${MAX_MAINTENANCE_REASON}`);
  if (NOT_ONE_LINE.test(text)) throw new UsageError('--reason must be one line without control characters');
  if (given(by) && (typeof by !== 'string' || by === '' || by.length > MAX_MAINTENANCE_BY || NOT_ONE_LINE.test(by)))
    throw new UsageError(`"by" must be one line of 1–${MAX_MAINTENANCE_BY} characters`);
  return {
    op,
    clusterId,
    memberId: typeof memberId === 'string' ? memberId : null,
    reason: text,
    by: typeof by === 'string' ? by : undefined,
  };
}

/** What a maintenance command acts through: the registry, and the clusters of the stack's configuration. */
export interface MaintenanceContext {
  pool: pg.Pool;
  /** `clusters[]` of the configuration the stack runs. */
  clusters: readonly { id: string }[];
}

const what = (r: { clusterId: string; memberId: string | null }) =>
  r.memberId === null ? `cluster ${r.clusterId}` : `member ${r.memberId} of cluster ${r.clusterId}`;

/**
 * Carries a checked request out against the registry. `on` needs a cluster
 * of the configuration and, for a member, one of its live members (a typo
 * would otherwise hold nothing, silently); `off` also ends the maintenance of
 * a cluster no longer configured or a member since gone (its row may
 * outlive them), and is idempotent. A refusal is a UsageError.
 */
export async function runMaintenance(
  request: MaintenanceRequest,
  context: MaintenanceContext,
): Promise<MaintenanceAnswer> {
  const { pool } = context;
  if (request.op === 'status') {
    const { entries } = await readMaintenance(pool);
    return { op: 'status', entries: entries.map(maintenanceRow) };
  }
  const clusterId = request.clusterId as string;
  const { memberId } = request;
  const configured = context.clusters.map((c) => c.id);
  if (request.op === 'on') {
    if (!configured.includes(clusterId))
      throw new UsageError(
        `no cluster ${clusterId} in the stack's configuration; configured: ${configured.join(', ') || 'none'}`,
      );
    if (memberId !== null) {
      const members = (await readLiveMembers(pool)).filter((m) => m.clusterId === clusterId);
      const member = members.find((m) => m.memberId === memberId);
      if (!member)
        throw new UsageError(
          `no live member ${memberId} in cluster ${clusterId}; its members: ${members.map((m) => m.memberId).join(', ') || 'none'}`,
        );
      // Already being stopped (a fault, a scale down, a drain): maintenance could hold none of it.
      if (member.state === 'Terminating')
        throw new UsageError(
          `member ${memberId} is already terminating${member.reason ? ` (${member.reason})` : ''}: maintenance cannot keep it`,
        );
    }
    const by = request.by ?? commandUser();
    const entry = maintenanceRow(await writeMaintenance(pool, { clusterId, memberId, reason: request.reason, by }));
    return {
      op: 'on',
      entry,
      message: `${what(entry)} in maintenance since ${entry.since}: the acting autoscaler holds its faults from its next monitor tick${memberId === null ? ', and pauses its minimum and scaling rules' : ''}`,
    };
  }
  const ended = await deleteMaintenance(pool, clusterId, memberId);
  if (!ended && !configured.includes(clusterId))
    throw new UsageError(
      `no cluster ${clusterId} in the stack's configuration, and none in maintenance; configured: ${configured.join(', ') || 'none'}`,
    );
  return ended
    ? {
        op: 'off',
        ended: maintenanceRow(ended),
        message: `${what(ended)} out of maintenance: at its next monitor tick the acting autoscaler verifies the faults it held and the rules resume`,
      }
    : { op: 'off', ended: null, message: `${what({ clusterId, memberId })} was not in maintenance` };
}

/**
 * The control endpoint's `maintenance` action: the body checked (a
 * UsageError, so a 400, for anything parseMaintenanceRequest or
 * runMaintenance refuses), then run and logged.
 */
export function maintenanceHandler(context: MaintenanceContext, logger: Logger): ControlHandler {
  return async (body) => {
    const request = parseMaintenanceRequest(body);
    const answer = await runMaintenance(request, context);
    if (answer.op === 'on') {
      const { clusterId, memberId, by, reason } = answer.entry;
      logger.warn(`maintenance on: ${what(answer.entry)}`, {
        event: 'maintenance.on',
        clusterId,
        memberId,
        by,
        reason,
      });
    } else if (answer.op === 'off' && answer.ended) {
      const { clusterId, memberId } = answer.ended;
      logger.warn(`maintenance off: ${what(answer.ended)}`, { event: 'maintenance.off', clusterId, memberId });
    }
    return answer;
  };
}

/** The answer as text; what came from the registry has its control characters escaped. */
export function formatMaintenance(answer: MaintenanceAnswer): string {
  if (answer.op !== 'status') return escapeControlChars(answer.message);
  if (answer.entries.length === 0) return 'no cluster or member is in maintenance';
  const lines = [
    `${'CLUSTER'.padEnd(16)} ${'MEMBER'.padEnd(24)} ${'SINCE (UTC)'.padEnd(19)} ${'BY'.padEnd(24)} REASON`,
  ];
  for (const e of answer.entries) {
    lines.push(
      `${e.clusterId.padEnd(16)} ${(e.memberId ?? '(whole cluster)').padEnd(24)} ${e.since.slice(0, 19).replace('T', ' ')} ${e.by.padEnd(24)} ${e.reason}`,
    );
  }
  return lines.map((line) => escapeControlChars(line)).join('\n');
}
