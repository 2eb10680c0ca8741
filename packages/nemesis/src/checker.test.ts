import { describe, expect, it } from 'vitest';
import { check, harmedAt, lastHealedAt, recoveryProblems } from './checker.js';
import type { ActionEvent, InjectedFault, Observation, Snapshot } from './model.js';
import { formatReport, timelineAround } from './report.js';

/*
 * Synthetic timelines: a cluster `web` of min = max = 3 with members a, b, c
 * at the start. Times in ms from 0. A clean run is judged clean, and each
 * invariant has a timeline that breaks it and only it.
 */

const T0 = 1_700_000_000_000;
const at = (s: number) => T0 + s * 1_000;

const action = (s: number, name: string, memberId: string | null, reason = 'r'): ActionEvent => ({
  at: at(s),
  action: name,
  clusterId: 'web',
  memberId,
  reason,
  epoch: null,
  source: 'both',
});

const spawn = (s: number, id: string) => action(s, 'MemberSpawnAction', id, 'minimum rule');
const removed = (s: number, id: string, reason = 'MemberFault (timeout)') => action(s, 'MemberRemoved', id, reason);
const terminate = (s: number, id: string) =>
  action(s, 'MemberTerminateAction', id, 'MemberFault; instance still running');

function fault(
  id: number,
  s: number,
  kind: InjectedFault['kind'],
  targets: string[],
  extra: Partial<InjectedFault> = {},
) {
  const member = kind === 'kill-member' || kind === 'hang-member' || kind === 'kill-agent';
  return {
    id,
    kind,
    burst: id,
    at: at(s),
    targets,
    pids: [1000 + id],
    memberIds: member ? targets : [],
    healedAt: member ? at(s) : at(s + 3),
    ...extra,
  } satisfies InjectedFault;
}

type Member = Snapshot['members'][number];
const m = (memberId: string, state = 'Active', processes: Member['processes'] = 'running'): Member => ({
  memberId,
  clusterId: 'web',
  state,
  processes,
});
const procsOf = (...ids: string[]): Snapshot['memberProcesses'] =>
  ids.flatMap((id, i) => [
    { pid: 2000 + 2 * i, memberId: id, role: 'workload' as const, state: 'S' },
    { pid: 2001 + 2 * i, memberId: id, role: 'agent' as const, state: 'S' },
  ]);
const snapshot = (s: number, members: Member[], processes = procsOf(...members.map((x) => x.memberId))): Snapshot => ({
  at: at(s),
  members,
  memberProcesses: processes,
});

/** a is killed at 10 s, removed at 15 s, d replaces it; sp-1 is paused 12–15 s. Everything fine. */
function clean(): Observation {
  return {
    seed: 'test',
    clusters: [{ id: 'web', min: 3, max: 3 }],
    boundMs: 30_000,
    scheduleStartedAt: at(0),
    scheduleEndedAt: at(20),
    faults: [fault(1, 10, 'kill-member', ['a']), fault(2, 12, 'pause-sp', ['sp-1'])],
    actions: [
      spawn(-5, 'a'),
      spawn(-5, 'b'),
      spawn(-5, 'c'),
      removed(15, 'a', 'MemberFault (ports_not_open); instance not running'),
      spawn(15, 'd'),
    ],
    snapshots: [snapshot(21, [m('b'), m('c'), m('d')]), snapshot(26, [m('b'), m('c'), m('d')])],
    downAt: at(30),
    leftoverAfterDown: [],
    context: [],
  };
}

describe('the checker', () => {
  it('finds nothing wrong in a clean run', () => {
    expect(check(clean())).toEqual([]);
  });

  it('knows who was harmed and when the last fault healed', () => {
    const o = clean();
    expect(harmedAt(o.faults)).toEqual(new Map([['a', at(10)]]));
    expect(lastHealedAt(o)).toBe(at(20)); // the pause healed at 15 s, before the schedule's end
    o.faults.push(fault(3, 19, 'pause-postgres', ['postgres'], { healedAt: at(24) }));
    expect(lastHealedAt(o)).toBe(at(24));
    o.faults.push(fault(4, 19, 'kill-member', ['b'], { skipped: 'no healthy Active member to harm' }));
    expect(harmedAt(o.faults).has('b')).toBe(false);
  });

  describe('(i) every member that died or hung is replaced within the bound', () => {
    it('a hung member still live in the registry', () => {
      const o = clean();
      o.faults.push(fault(3, 16, 'hang-member', ['b']));
      o.snapshots = [
        snapshot(22, [m('b', 'Active', 'stopped'), m('c'), m('d')]),
        snapshot(55, [m('b', 'Active', 'stopped'), m('c'), m('d')]),
      ];
      const violations = check(o);
      expect(violations.map((v) => v.invariant)).toEqual(['replaced', 'replaced']);
      expect(violations.map((v) => v.message).join('\n')).toMatch(/harmed member b is still live/);
      expect(violations.map((v) => v.message).join('\n')).toMatch(/cluster web: 2 Active member\(s\)/);
      expect(violations[0]?.at).toBe(at(20) + 30_000);
    });

    it('a cluster back at min only after the bound', () => {
      const o = clean();
      o.snapshots = [
        snapshot(30, [m('b'), m('c')]),
        snapshot(49, [m('b'), m('c'), m('d', 'Created', 'running')]),
        snapshot(51, [m('b'), m('c'), m('d')]),
      ];
      const violations = check(o);
      expect(violations).toHaveLength(1);
      expect(violations[0]).toMatchObject({ invariant: 'replaced' });
      expect(violations[0]?.message).toMatch(/not recovered within 30000 ms/);
    });

    it('an Active row whose processes do not run does not count', () => {
      expect(
        recoveryProblems(snapshot(1, [m('b'), m('c'), m('d', 'Active', 'partial')]), clean().clusters, new Set()),
      ).toHaveLength(1);
      expect(
        recoveryProblems(snapshot(1, [m('b'), m('c'), m('d', 'Active', 'gone')]), clean().clusters, new Set()),
      ).toHaveLength(1);
    });

    it('a harmed member removed but with processes left', () => {
      const o = clean();
      o.snapshots = [snapshot(21, [m('b'), m('c'), m('d')], procsOf('a', 'b', 'c', 'd'))];
      const kinds = check(o).map((v) => v.invariant);
      expect(kinds).toContain('replaced');
      expect(check(o).find((v) => v.invariant === 'replaced')?.message).toMatch(
        /a was removed but its processes still run/,
      );
    });

    it('recovered, then below min again at the end', () => {
      const o = clean();
      o.snapshots.push(snapshot(40, [m('c'), m('d')]));
      expect(check(o).map((v) => v.invariant)).toEqual(['replaced']);
      expect(check(o)[0]?.message).toMatch(/no longer at the end/);
    });
  });

  describe('(ii) no member the nemesis never harmed is terminated', () => {
    it('a false fault of a healthy member', () => {
      const o = clean();
      o.actions.push(terminate(16, 'b'), removed(16.1, 'b'), spawn(16.1, 'e'));
      o.snapshots = [snapshot(21, [m('c'), m('d'), m('e')])];
      const violations = check(o);
      expect(violations.map((v) => v.invariant)).toEqual(['untouched']);
      expect(violations[0]).toMatchObject({ memberId: 'b', at: at(16) });
      expect(violations[0]?.message).toMatch(/never harmed.*MemberTerminateAction.*MemberRemoved/);
    });

    it('a member harmed only after it was terminated', () => {
      const o = clean();
      o.faults.push(fault(3, 17, 'kill-agent', ['b']));
      o.actions.push(terminate(16, 'b'), removed(16.1, 'b'), spawn(16.1, 'e'));
      o.snapshots = [snapshot(21, [m('c'), m('d'), m('e')])];
      const violations = check(o);
      expect(violations.map((v) => v.invariant)).toEqual(['untouched']);
      expect(violations[0]?.message).toMatch(/harmed only later/);
    });

    it('not a spawn the registry did not record: that member never ran, and the next spawn replaces it', () => {
      const o = clean();
      o.actions.push(
        spawn(16, 'e'),
        removed(16.5, 'e', 'spawn not started: the registry did not record its intent'),
        spawn(19, 'f'),
      );
      expect(check(o).filter((v) => v.invariant === 'untouched')).toEqual([]);
    });

    it('a scale-down or an orphan termination of an untouched member', () => {
      const o = clean();
      o.actions.push(action(17, 'ScaleDownAction', 'c'));
      o.actions.push(action(18, 'OrphanTerminated', 'zz'));
      expect(
        check(o)
          .filter((v) => v.invariant === 'untouched')
          .map((v) => v.memberId),
      ).toEqual(['c', 'zz']);
    });
  });

  describe('(iii) no member terminated twice, no fault replaced twice', () => {
    it('a member terminated twice', () => {
      const o = clean();
      o.faults.push(fault(3, 16, 'kill-agent', ['b']));
      o.actions.push(terminate(20, 'b'), terminate(21, 'b'), removed(21.2, 'b'), spawn(21.2, 'e'));
      o.snapshots = [snapshot(22, [m('c'), m('d'), m('e')])];
      const violations = check(o);
      expect(violations.map((v) => v.invariant)).toEqual(['once']);
      expect(violations[0]).toMatchObject({ memberId: 'b', at: at(21) });
      expect(violations[0]?.message).toMatch(/terminated 2 times/);
    });

    it('a member removed twice', () => {
      const o = clean();
      o.actions.push(removed(16, 'a', 'gone while the autoscaler was away'));
      expect(check(o).map((v) => v.invariant)).toContain('once');
      expect(check(o).find((v) => v.invariant === 'once')?.message).toMatch(/a removed 2 times/);
    });

    it('a termination the registry never recorded, redone by the next autoscaler term, is one termination', () => {
      const o = clean();
      o.actionTableRead = true;
      o.faults.push(fault(3, 16, 'kill-agent', ['b']));
      // its Terminating row was not written (the database paused): the Iaas was never asked
      const first: ActionEvent = { ...terminate(20, 'b'), source: 'log' };
      o.actions.push(first, terminate(21, 'b'), removed(21.2, 'b'), spawn(21.2, 'e'));
      o.snapshots = [snapshot(22, [m('c'), m('d'), m('e')])];
      expect(check(o)).toEqual([]);
      first.source = 'both';
      expect(check(o).map((v) => v.invariant)).toEqual(['once']);
    });

    it('a removal the registry never recorded, redone by the next autoscaler term, is one removal', () => {
      const o = clean();
      o.actionTableRead = true;
      const first = o.actions.find((a) => a.action === 'MemberRemoved' && a.memberId === 'a') as ActionEvent;
      first.source = 'log'; // logged, its write fenced when the node lost its lease
      o.actions.push(removed(16, 'a', 'gone while the autoscaler was away'));
      expect(check(o)).toEqual([]);
      // Both in the table: removed twice for real.
      first.source = 'both';
      expect(check(o).map((v) => v.invariant)).toEqual(['once']);
      // The table not read: the log alone cannot tell.
      first.source = 'log';
      o.actionTableRead = false;
      expect(check(o).map((v) => v.invariant)).toEqual(['once']);
    });

    it('one removal, two replacements', () => {
      const o = clean();
      o.actions.push(spawn(15.5, 'e'));
      o.snapshots = [snapshot(21, [m('b'), m('c'), m('d'), m('e')])];
      const violations = check(o);
      expect(violations.map((v) => v.invariant)).toEqual(['once']);
      expect(violations[0]).toMatchObject({ memberId: 'e', at: at(15.5) });
      expect(violations[0]?.message).toMatch(/spawn #5 with only 1 removal/);
    });

    it('a respawn in the millisecond of its removal is one replacement, whatever the log order', () => {
      const o = clean();
      o.actions = [spawn(-5, 'a'), spawn(-5, 'b'), spawn(-5, 'c'), spawn(15, 'd'), removed(15, 'a')];
      expect(check(o)).toEqual([]);
    });
  });

  describe('(iv) no orphan process at the end, nothing left after stack down', () => {
    it('a process of a member the registry does not have', () => {
      const o = clean();
      o.snapshots = [
        snapshot(
          21,
          [m('b'), m('c'), m('d')],
          [...procsOf('b', 'c', 'd'), { pid: 77, memberId: 'x', role: 'agent', state: 'S' }],
        ),
      ];
      const violations = check(o);
      expect(violations.map((v) => v.invariant)).toEqual(['orphans']);
      expect(violations[0]?.message).toMatch(/orphan agent pid 77 .* of x/);
    });

    it('a process left after stack down', () => {
      const o = clean();
      o.leftoverAfterDown = [{ pid: 99, cmdline: 'node packages/cloud-controller/dist/workload-main.js' }];
      const violations = check(o);
      expect(violations.map((v) => v.invariant)).toEqual(['orphans']);
      expect(violations[0]).toMatchObject({ at: at(30) });
      expect(violations[0]?.message).toMatch(/left running after stack down: pid 99/);
    });
  });

  describe('(v) every fault heals', () => {
    it('a killed service that never came back', () => {
      const o = clean();
      o.faults.push(fault(3, 18, 'kill-broker', ['broker-a'], { healedAt: null }));
      const violations = check(o);
      expect(violations.map((v) => v.invariant)).toEqual(['healed']);
      expect(violations[0]?.message).toMatch(/#3 kill-broker of broker-a never healed/);
    });
  });

  it('prints the violations with the faults, decisions and log records around them', () => {
    const o = clean();
    o.actions.push(terminate(16, 'b'), removed(16.1, 'b'), spawn(16.1, 'e'));
    o.context.push({ at: at(15.9), service: 'sp-2', text: 'member fault memberId=b reason=timeout' });
    o.snapshots = [snapshot(21, [m('c'), m('d'), m('e')])];
    const violations = check(o);
    const lines = timelineAround(o, violations[0] as (typeof violations)[number]);
    expect(lines.some((l) => l.includes('FAULT') && l.includes('kill-member'))).toBe(true);
    expect(lines.some((l) => l.includes('sp-2') && l.includes('member fault memberId=b'))).toBe(true);
    expect(lines.some((l) => l.includes('ACTION MemberTerminateAction web b'))).toBe(true);
    const report = formatReport({
      observation: o,
      schedule: [],
      violations,
      header: 'h',
      boundParts: [['x', 30_000]],
      recoveredAt: at(21),
    });
    expect(report).toMatch(/VIOLATIONS: 1/);
    expect(report).toMatch(/\(ii\) no member the nemesis never harmed is terminated/);
  });
});
