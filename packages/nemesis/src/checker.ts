import type { ActionEvent, ClusterPolicy, InjectedFault, Observation, Snapshot, Violation } from './model.js';

/** Decisions that stop a member's instance. */
export const TERMINATIONS: ReadonlySet<string> = new Set([
  'MemberTerminateAction',
  'ScaleDownAction',
  'OrphanTerminated',
]);
/** The decision that forgets a member (after a termination, or of an instance already gone). */
export const REMOVAL = 'MemberRemoved';
/** How a removal of a spawn that never started (its intent not recorded) begins its reason. */
const SPAWN_NOT_STARTED = 'spawn not started';
/** Decisions that start a member. */
export const SPAWNS: ReadonlySet<string> = new Set(['MemberSpawnAction', 'ScaleUpAction']);

/** When the nemesis first harmed each member (a member fault that was not skipped). */
export function harmedAt(faults: readonly InjectedFault[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const f of faults) {
    if (f.skipped !== undefined) continue;
    for (const id of f.memberIds) {
      const seen = out.get(id);
      if (seen === undefined || f.at < seen) out.set(id, f.at);
    }
  }
  return out;
}

/**
 * The moment the bound counts from: the last fault over (its heal, or its
 * injection for one that heals at once), and never before the schedule's end.
 */
export function lastHealedAt(observation: Pick<Observation, 'faults' | 'scheduleEndedAt'>): number {
  let last = observation.scheduleEndedAt;
  for (const f of observation.faults) {
    if (f.skipped !== undefined) continue;
    last = Math.max(last, f.at, f.healedAt ?? f.at);
  }
  return last;
}

/**
 * What keeps a snapshot from being recovered: a cluster with fewer than min
 * members Active in the registry whose processes run (not stopped, agent
 * alive), a harmed member still live in the registry, or still with a
 * process. Empty: recovered.
 */
export function recoveryProblems(
  snapshot: Snapshot,
  clusters: readonly ClusterPolicy[],
  harmed: ReadonlySet<string>,
): { memberId?: string; message: string }[] {
  const problems: { memberId?: string; message: string }[] = [];
  for (const c of clusters) {
    const members = snapshot.members.filter((m) => m.clusterId === c.id);
    const healthy = members.filter((m) => m.state === 'Active' && m.processes === 'running');
    if (healthy.length < c.min) {
      const shown = members.map((m) => `${m.memberId} ${m.state}/${m.processes}`).join(', ') || 'none';
      problems.push({
        message: `cluster ${c.id}: ${healthy.length} Active member(s) with running processes < min ${c.min} (live in the registry: ${shown})`,
      });
    }
  }
  for (const memberId of [...harmed].sort()) {
    const row = snapshot.members.find((m) => m.memberId === memberId);
    if (row) {
      problems.push({
        memberId,
        message: `harmed member ${memberId} is still live in the registry (${row.state}, processes ${row.processes}): not replaced`,
      });
    }
    const procs = snapshot.memberProcesses.filter((p) => p.memberId === memberId);
    if (procs.length > 0 && !row) {
      problems.push({
        memberId,
        message: `harmed member ${memberId} was removed but its processes still run: ${procs.map((p) => `${p.role} pid ${p.pid} (${p.state})`).join(', ')}`,
      });
    }
  }
  return problems;
}

/** The first snapshot in [from, to] with no recovery problem, if any. */
export function recoveredAt(
  snapshots: readonly Snapshot[],
  clusters: readonly ClusterPolicy[],
  harmed: ReadonlySet<string>,
  from: number,
  to: number,
): Snapshot | undefined {
  return snapshots.find((s) => s.at >= from && s.at <= to && recoveryProblems(s, clusters, harmed).length === 0);
}

/** Removals before spawns at the same millisecond: the rules may respawn in the millisecond of the removal. */
function ordered(actions: readonly ActionEvent[]): ActionEvent[] {
  const rank = (a: ActionEvent) => (a.action === REMOVAL ? 0 : SPAWNS.has(a.action) ? 2 : 1);
  return actions
    .map((a, i) => ({ a, i }))
    .sort((x, y) => x.a.at - y.a.at || rank(x.a) - rank(y.a) || x.i - y.i)
    .map(({ a }) => a);
}

const iso = (ms: number) => new Date(ms).toISOString().slice(11, 23);

/**
 * The invariants over a recorded run. Pure: every input is in the
 * observation, so a synthetic timeline can be judged as a real one.
 */
export function check(observation: Observation): Violation[] {
  const violations: Violation[] = [];
  const harmed = harmedAt(observation.faults);
  const harmedIds = new Set(harmed.keys());
  const actions = ordered(observation.actions);
  const anchor = lastHealedAt(observation);
  const deadline = anchor + observation.boundMs;

  // (i) replaced within the bound, and still so at the end.
  const recovered = recoveredAt(observation.snapshots, observation.clusters, harmedIds, anchor, deadline);
  if (!recovered) {
    const upTo = observation.snapshots.filter((s) => s.at <= deadline);
    const last = upTo[upTo.length - 1] ?? observation.snapshots[observation.snapshots.length - 1];
    if (!last) {
      violations.push({ invariant: 'replaced', at: deadline, message: 'no snapshot of the system was taken' });
    } else {
      for (const p of recoveryProblems(last, observation.clusters, harmedIds)) {
        violations.push({
          invariant: 'replaced',
          at: deadline,
          ...(p.memberId === undefined ? {} : { memberId: p.memberId }),
          message: `not recovered within ${observation.boundMs} ms of the last heal (${iso(anchor)}); at ${iso(last.at)}: ${p.message}`,
        });
      }
    }
  } else {
    const final = observation.snapshots[observation.snapshots.length - 1];
    if (final && final !== recovered) {
      for (const p of recoveryProblems(final, observation.clusters, harmedIds)) {
        violations.push({
          invariant: 'replaced',
          at: final.at,
          ...(p.memberId === undefined ? {} : { memberId: p.memberId }),
          message: `recovered at ${iso(recovered.at)}, but no longer at the end (${iso(final.at)}): ${p.message}`,
        });
      }
    }
  }

  // (ii) nothing the nemesis never harmed is terminated or removed. A spawn the registry did not record is
  // removed without ever having run (the autoscaler starts nothing it could not record): no member touched.
  const flagged = new Set<string>();
  for (const a of actions) {
    if (a.memberId === null || !(TERMINATIONS.has(a.action) || a.action === REMOVAL)) continue;
    if (a.action === REMOVAL && a.reason.startsWith(SPAWN_NOT_STARTED)) continue;
    const h = harmed.get(a.memberId);
    if (h !== undefined && h <= a.at) continue;
    if (flagged.has(a.memberId)) continue;
    flagged.add(a.memberId);
    const all = actions.filter(
      (x) => x.memberId === a.memberId && (TERMINATIONS.has(x.action) || x.action === REMOVAL),
    );
    violations.push({
      invariant: 'untouched',
      at: a.at,
      memberId: a.memberId,
      message: `${a.memberId} ${h === undefined ? 'was never harmed by the nemesis' : `was harmed only later (${iso(h)})`}, yet: ${all
        .map((x) => `${x.action} at ${iso(x.at)} ("${x.reason}")`)
        .join('; ')}`,
    });
  }

  // (iii) one termination and one removal per member; no more spawns than min + removals.
  const terminations = new Map<string, ActionEvent[]>();
  const removals = new Map<string, ActionEvent[]>();
  for (const a of actions) {
    if (a.memberId === null) continue;
    const into = TERMINATIONS.has(a.action) ? terminations : a.action === REMOVAL ? removals : undefined;
    if (!into) continue;
    const list = into.get(a.memberId) ?? [];
    list.push(a);
    into.set(a.memberId, list);
  }
  for (const [what, map] of [
    ['terminated', terminations],
    ['removed', removals],
  ] as const) {
    for (const [memberId, all] of map) {
      // A termination or removal the registry never recorded (the node lost its lease, or the database,
      // before the write; with intent before act, a terminate whose Terminating row was not written never
      // reached the Iaas) is redone by the next term, which reads the member as live: one, logged twice.
      const list = observation.actionTableRead ? all.filter((x, i) => x.source !== 'log' || i === all.length - 1) : all;
      if (list.length < 2) continue;
      violations.push({
        invariant: 'once',
        at: (list[1] as ActionEvent).at,
        memberId,
        message: `${memberId} ${what} ${list.length} times: ${list.map((x) => `${x.action} at ${iso(x.at)} ("${x.reason}")`).join('; ')}`,
      });
    }
  }
  for (const c of observation.clusters) {
    let spawned = 0;
    let removed = 0;
    for (const a of actions) {
      if (a.clusterId !== c.id) continue;
      if (a.action === REMOVAL) removed += 1;
      if (!SPAWNS.has(a.action)) continue;
      spawned += 1;
      if (spawned > c.min + removed) {
        violations.push({
          invariant: 'once',
          at: a.at,
          ...(a.memberId === null ? {} : { memberId: a.memberId }),
          message: `${a.action} of ${a.memberId ?? '(no member)'} in cluster ${c.id}: spawn #${spawned} with only ${removed} removal(s) and min ${c.min}: a removal was replaced twice ("${a.reason}")`,
        });
        spawned = c.min + removed; // judge the next spawns against the next removals
      }
    }
  }

  // (iv) every member process at the end is a live member's; nothing left after stack down.
  const final = observation.snapshots[observation.snapshots.length - 1];
  if (final) {
    const live = new Set(final.members.map((m) => m.memberId));
    for (const p of final.memberProcesses) {
      if (p.memberId !== null && live.has(p.memberId)) continue;
      violations.push({
        invariant: 'orphans',
        at: final.at,
        ...(p.memberId === null ? {} : { memberId: p.memberId }),
        message:
          `orphan ${p.role} pid ${p.pid} (state ${p.state}) of ${p.memberId ?? 'an unknown member'}: the registry has no live member ${p.memberId ?? ''}`.trim(),
      });
    }
  }
  for (const p of observation.leftoverAfterDown) {
    violations.push({
      invariant: 'orphans',
      at: observation.downAt,
      message: `left running after stack down: pid ${p.pid} ${p.cmdline}`,
    });
  }

  // (v) every fault healed.
  for (const f of observation.faults) {
    if (f.skipped !== undefined || f.healedAt !== null) continue;
    violations.push({
      invariant: 'healed',
      at: f.at,
      message: `fault #${f.id} ${f.kind} of ${f.targets.join(', ')} never healed (a killed service not back, a pause not continued)`,
    });
  }
  return violations.sort((x, y) => x.at - y.at);
}
