import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import {
  type ActionRow,
  actionsFromLog,
  actionsFromRows,
  contextFromLog,
  mergeActions,
  parseLogLines,
} from './actions.js';
import type { ActionEvent, ContextEvent, ProcessesState, Snapshot } from './model.js';
import { type Proc, roleOf, stackProcs } from './procs.js';

/** Where a stack in `dir` (a real path) keeps what the nemesis reads. */
export interface StackPaths {
  dir: string;
  logDir: string;
  pgDataDir: string;
}

export function stackPaths(dir: string): StackPaths {
  return { dir, logDir: path.join(dir, '.faultline/logs'), pgDataDir: path.join(dir, '.faultline/pg') };
}

/**
 * A pool on the stack's database (the embedded PostgreSQL's password is
 * written beside its data folder). Short timeouts: the nemesis pauses
 * PostgreSQL, and a read must then fail fast, not hang.
 */
export function openRegistry(paths: StackPaths, port: number): pg.Pool {
  const { password } = JSON.parse(readFileSync(`${paths.pgDataDir}.credentials.json`, 'utf8')) as { password: string };
  const pool = new pg.Pool({
    host: '127.0.0.1',
    port,
    user: 'postgres',
    password,
    database: 'faultline',
    max: 2,
    connectionTimeoutMillis: 2_000,
    query_timeout: 2_000,
  });
  pool.on('error', () => {}); // an idle client lost while PostgreSQL is paused or stopping
  return pool;
}

export interface LiveRow {
  memberId: string;
  clusterId: string;
  state: string;
}

/** The registry's members not Terminated. */
export async function readLive(pool: pg.Pool): Promise<LiveRow[]> {
  const { rows } = await pool.query<{ member_id: string; cluster_id: string; state: string }>(
    `SELECT member_id, cluster_id, state FROM autoscaler_member WHERE state <> 'Terminated' ORDER BY member_id`,
  );
  return rows.map((r) => ({ memberId: r.member_id, clusterId: r.cluster_id, state: r.state }));
}

/** Every row of the action table, in the order written. */
export async function readActionRows(pool: pg.Pool): Promise<ActionRow[]> {
  const { rows } = await pool.query<ActionRow>(
    `SELECT (extract(epoch FROM at) * 1000)::float8 AS at, action, cluster_id, member_id, reason, epoch
       FROM autoscaler_action ORDER BY id`,
  );
  return rows;
}

/** Member processes of the stack: the workload and the agent of each member, by its folder. */
export interface MemberProcs {
  workload?: Proc;
  agent?: Proc;
}

export function memberProcesses(procs: readonly Proc[], paths: StackPaths): Map<string | null, MemberProcs[]> {
  const out = new Map<string | null, MemberProcs[]>();
  const byMember = new Map<string, MemberProcs>();
  for (const p of procs) {
    const role = roleOf(p, paths.dir, paths.pgDataDir);
    if (role.kind !== 'workload' && role.kind !== 'agent') continue;
    if (role.memberId === null) {
      const list = out.get(null) ?? [];
      list.push({ [role.kind]: p });
      out.set(null, list);
      continue;
    }
    const entry = byMember.get(role.memberId) ?? {};
    entry[role.kind] = p;
    byMember.set(role.memberId, entry);
  }
  for (const [id, entry] of byMember) out.set(id, [entry]);
  return out;
}

const stopped = (p: Proc | undefined) => p !== undefined && (p.state === 'T' || p.state === 't');

export function processesState(m: MemberProcs | undefined): ProcessesState {
  if (!m?.workload) return 'gone';
  if (stopped(m.workload) || stopped(m.agent)) return 'stopped';
  return m.agent ? 'running' : 'partial';
}

/** The registry's live members and the member processes, now. Rejects when the registry does not answer. */
export async function takeSnapshot(pool: pg.Pool, paths: StackPaths): Promise<Snapshot> {
  const live = await readLive(pool);
  const at = Date.now();
  const procs = memberProcesses(stackProcs(paths.dir), paths);
  const members = live.map((m) => ({ ...m, processes: processesState(procs.get(m.memberId)?.[0]) }));
  const memberProcs: Snapshot['memberProcesses'] = [];
  for (const [memberId, list] of procs) {
    for (const entry of list) {
      for (const role of ['workload', 'agent'] as const) {
        const p = entry[role];
        if (p) memberProcs.push({ pid: p.pid, memberId, role, state: p.state });
      }
    }
  }
  return { at, members, memberProcesses: memberProcs };
}

export function readLog(paths: StackPaths, service: string): ReturnType<typeof parseLogLines> {
  const file = path.join(paths.logDir, `${service}.jsonl`);
  return existsSync(file) ? parseLogLines(readFileSync(file, 'utf8')) : [];
}

/** `supervisor.service_ready` of `service` logged at or after `since`: the time, if any. */
export function serviceReadySince(paths: StackPaths, service: string, since: number): number | undefined {
  for (const r of readLog(paths, 'supervisor')) {
    if (r.event !== 'supervisor.service_ready' || r.service !== service) continue;
    const at = Date.parse(String(r.timestamp));
    if (at >= since) return at;
  }
  return undefined;
}

/** The decisions (log and table merged) and the context records of the services' logs. */
export async function readHistory(
  pool: pg.Pool,
  paths: StackPaths,
  services: readonly string[],
): Promise<{ actions: ActionEvent[]; context: ContextEvent[]; tableRead: boolean }> {
  const fromLog = actionsFromLog(readLog(paths, 'autoscaler'));
  let fromDb: ActionEvent[] = [];
  let tableRead = true;
  try {
    fromDb = actionsFromRows(await readActionRows(pool));
  } catch {
    tableRead = false;
  }
  const context = services.flatMap((s) => contextFromLog(s, readLog(paths, s))).sort((x, y) => x.at - y.at);
  return { actions: mergeActions(fromLog, fromDb), context, tableRead };
}
