import { lastHealedAt } from './checker.js';
import { INVARIANTS, type InjectedFault, type Observation, type Violation } from './model.js';
import { describePlanned, type PlannedFault } from './schedule.js';

const clock = (ms: number) => new Date(ms).toISOString().slice(11, 23);
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

export function describeFault(f: InjectedFault, origin: number): string {
  const head = `${clock(f.at)} +${secs(f.at - origin).padStart(7)}  #${f.id} ${[f.kind, f.target].filter(Boolean).join(' ')}`;
  if (f.skipped !== undefined) return `${head}  skipped: ${f.skipped}`;
  const healed =
    f.healedAt === null
      ? 'NEVER HEALED'
      : f.healedAt === f.at
        ? 'at once'
        : `healed ${clock(f.healedAt)} (+${secs(f.healedAt - f.at)})`;
  return `${head} → ${f.targets.join(', ')} (pid ${f.pids.join(', ')})  ${healed}`;
}

/** The faults, decisions and notable log records around a violation, in time order. */
export function timelineAround(observation: Observation, v: Violation, beforeMs = 20_000, afterMs = 3_000): string[] {
  const from = v.at - beforeMs;
  const to = v.at + afterMs;
  const near = (at: number) => at >= from && at <= to;
  const mine = (memberId: string | null | undefined) => v.memberId !== undefined && memberId === v.memberId;
  const lines: [number, string][] = [];
  for (const f of observation.faults) {
    if (f.skipped === undefined && (near(f.at) || f.memberIds.some(mine))) {
      lines.push([f.at, `FAULT  ${describeFault(f, observation.scheduleStartedAt).slice(13)}`]);
    }
    if (f.healedAt !== null && f.healedAt !== f.at && near(f.healedAt)) {
      lines.push([f.healedAt, `HEAL   #${f.id} ${f.kind} ${f.targets.join(', ')}`]);
    }
  }
  for (const a of observation.actions) {
    if (near(a.at) || mine(a.memberId)) {
      lines.push([
        a.at,
        `ACTION ${a.action} ${a.clusterId} ${a.memberId ?? ''} "${a.reason}"${a.epoch === null ? '' : ` epoch=${a.epoch}`} [${a.source}]`,
      ]);
    }
  }
  for (const c of observation.context) {
    if (near(c.at) || (v.memberId !== undefined && c.text.includes(v.memberId))) {
      lines.push([c.at, `${c.service.padEnd(10)} ${c.text}`]);
    }
  }
  return lines.sort((x, y) => x[0] - y[0]).map(([at, text]) => `${clock(at)}  ${text}`);
}

export interface ReportInput {
  observation: Observation;
  schedule: readonly PlannedFault[];
  violations: readonly Violation[];
  header: string;
  boundParts: readonly [string, number][];
  recoveredAt: number | undefined;
}

export function formatReport({
  observation: o,
  schedule,
  violations,
  header,
  boundParts,
  recoveredAt,
}: ReportInput): string {
  const out: string[] = [header, ''];
  out.push(`SCHEDULE (seed ${o.seed}, ${schedule.length} faults)`);
  for (const f of schedule) out.push(`  ${describePlanned(f)}`);
  out.push('', 'TIMELINE OF FAULTS');
  for (const f of o.faults) out.push(`  ${describeFault(f, o.scheduleStartedAt)}`);
  const anchor = lastHealedAt(o);
  out.push('', `QUIET BOUND ${secs(o.boundMs)} after the last heal (${clock(anchor)}):`);
  for (const [what, ms] of boundParts) out.push(`  ${secs(ms).padStart(7)}  ${what}`);
  out.push(
    recoveredAt === undefined
      ? '  NOT RECOVERED within the bound'
      : `  recovered at ${clock(recoveredAt)}, ${secs(Math.max(0, recoveredAt - anchor))} after the last heal`,
  );
  const counts = new Map<string, number>();
  for (const a of o.actions) counts.set(a.action, (counts.get(a.action) ?? 0) + 1);
  out.push(
    '',
    `AUTOSCALER DECISIONS: ${o.actions.length} (${[...counts].map(([k, n]) => `${k} ${n}`).join(', ') || 'none'})`,
  );
  const harmed = o.faults.filter((f) => f.skipped === undefined && f.memberIds.length > 0).length;
  const skipped = o.faults.filter((f) => f.skipped !== undefined).length;
  out.push(`FAULTS: ${o.faults.length} injected (${skipped} skipped, ${harmed} harming a member)`);
  out.push('', violations.length === 0 ? 'VIOLATIONS: none' : `VIOLATIONS: ${violations.length}`);
  violations.forEach((v, i) => {
    out.push('', `  ${i + 1}. ${INVARIANTS[v.invariant]}`, `     at ${clock(v.at)}: ${v.message}`, '     timeline:');
    for (const line of timelineAround(o, v)) out.push(`       ${line}`);
  });
  return out.join('\n');
}
