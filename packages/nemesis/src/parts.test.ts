import { describe, expect, it } from 'vitest';
import { actionsFromLog, actionsFromRows, contextFromLog, mergeActions, parseLogLines } from './actions.js';
import { ArgsError, parseArgs } from './args.js';
import type { ActionEvent } from './model.js';
import { parseStat, roleOf } from './procs.js';
import { clustersFor, quietBound, stackConfig, TIMINGS } from './stack-config.js';

describe('the arguments', () => {
  it('has defaults and takes every option, also as --name=value', () => {
    expect(parseArgs([])).toEqual({
      minutes: 3,
      seed: undefined,
      brokerKind: 'aedes',
      keep: false,
      clusters: 1,
      help: false,
    });
    expect(
      parseArgs(['--minutes', '0.5', '--seed=abc-1', '--broker-kind', 'mosquitto', '--clusters', '2', '--keep']),
    ).toEqual({ minutes: 0.5, seed: 'abc-1', brokerKind: 'mosquitto', keep: true, clusters: 2, help: false });
  });

  it('refuses what it does not know', () => {
    for (const bad of [
      ['--minutes', '0'],
      ['--minutes', 'x'],
      ['--minutes'],
      ['--seed', 'a b'],
      ['--broker-kind', 'rabbit'],
      ['--clusters', '3'],
      ['--frobnicate'],
    ]) {
      expect(() => parseArgs(bad), bad.join(' ')).toThrow(ArgsError);
    }
  });
});

describe('the stack configuration and the bound', () => {
  it('gives every service its own port and min = max to every cluster', () => {
    const config = stackConfig('aedes', [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], clustersFor(2)) as {
      clusters: { min: number; max: number }[];
      database: { embeddedPort: number };
      cep: { faultTimeoutMs: number };
    };
    expect(config.database.embeddedPort).toBe(1);
    expect(config.clusters.every((c) => c.min === c.max)).toBe(true);
    expect(config.cep.faultTimeoutMs).toBe(TIMINGS.faultTimeoutMs);
    expect(() => stackConfig('aedes', [1, 2], clustersFor(1))).toThrow(RangeError);
  });

  it('derives the bound from the timings, part by part', () => {
    const { totalMs, parts } = quietBound();
    expect(totalMs).toBe(parts.reduce((sum, [, ms]) => sum + ms, 0));
    const longer = quietBound({ ...TIMINGS, faultTimeoutMs: TIMINGS.faultTimeoutMs + 1_000 });
    expect(longer.totalMs - totalMs).toBe(3_000); // takeover grace, detection, the storm's re-check
    expect(quietBound({ ...TIMINGS, pendingTimeoutMs: 0 }).totalMs).toBe(totalMs - TIMINGS.pendingTimeoutMs);
  });
});

describe('the decisions, from the log and the action table', () => {
  const log = parseLogLines(
    [
      '{"action":"MemberTerminateAction","clusterId":"web","epoch":3,"event":"autoscaler.action","memberId":"web-a","message":"MemberTerminateAction","reason":"fault","service":"autoscaler","timestamp":"2026-12-01T00:00:01.000Z"}',
      '{"event":"autoscaler.member_active","memberId":"web-b","message":"member active","service":"autoscaler","timestamp":"2026-12-01T00:00:01.500Z"}',
      '{"action":"MemberRemoved","clusterId":"web","epoch":3,"event":"autoscaler.action","memberId":"web-a","message":"MemberRemoved","reason":"fault; terminated","service":"autoscaler","timestamp":"2026-12-01T00:00:01.060Z"}',
      '{"action":"MemberSpawnAct', // torn by a kill -9
    ].join('\n'),
  );

  it('reads the decisions of the log, skipping torn lines and other records', () => {
    const actions = actionsFromLog(log);
    expect(actions.map((a) => [a.action, a.memberId, a.epoch])).toEqual([
      ['MemberTerminateAction', 'web-a', 3],
      ['MemberRemoved', 'web-a', 3],
    ]);
    expect(contextFromLog('autoscaler', log).map((c) => c.text)).toEqual(['member active memberId=web-b']);
  });

  it('merges the two records: one decision once, a row the log lost added, a decision taken twice kept twice', () => {
    const t = Date.parse('2026-12-01T00:00:01.000Z');
    const rows = actionsFromRows([
      {
        at: t + 1,
        action: 'MemberTerminateAction',
        cluster_id: 'web',
        member_id: 'web-a',
        reason: 'fault',
        epoch: '3',
      },
      {
        at: t + 60,
        action: 'MemberRemoved',
        cluster_id: 'web',
        member_id: 'web-a',
        reason: 'fault; terminated',
        epoch: '3',
      },
      {
        at: t + 61,
        action: 'MemberSpawnAction',
        cluster_id: 'web',
        member_id: 'web-c',
        reason: 'minimum rule',
        epoch: null,
      },
    ]);
    const merged = mergeActions(actionsFromLog(log), rows);
    expect(merged.map((a) => [a.action, a.source])).toEqual([
      ['MemberTerminateAction', 'both'],
      ['MemberRemoved', 'both'],
      ['MemberSpawnAction', 'db'],
    ]);
    const twice: ActionEvent[] = [
      { ...(merged[0] as ActionEvent), source: 'log' },
      { ...(merged[0] as ActionEvent), at: t + 500, source: 'log' },
    ];
    const rowsTwice = [
      { ...(merged[0] as ActionEvent), source: 'db' as const },
      { ...(merged[0] as ActionEvent), at: t + 501, source: 'db' as const },
    ];
    expect(mergeActions(twice, rowsTwice).map((a) => a.source)).toEqual(['both', 'both']);
    expect(mergeActions(twice, rowsTwice.slice(0, 1))).toHaveLength(2);
  });
});

describe('the process table', () => {
  it('parses /proc/<pid>/stat, a command with spaces and parentheses included', () => {
    const fields = Array.from({ length: 20 }, (_, i) => String(i + 100));
    const text = `4242 (node (x) y) T 1 4242 4242 ${fields.slice(4).join(' ')} 777 rest`;
    expect(parseStat(text)).toMatchObject({ pid: 4242, state: 'T', ppid: 1, pgid: 4242 });
  });

  it('tells the stack’s processes apart by folder and command line', () => {
    const dir = '/tmp/s';
    const pg = '/tmp/s/.faultline/pg';
    const role = (cwd: string, cmdline: string) => roleOf({ cwd, cmdline }, dir, pg);
    expect(role(dir, 'node /r/packages/cli/dist/main.js stack up --config /tmp/s/f.yaml')).toEqual({
      kind: 'supervisor',
    });
    expect(role(dir, '/usr/bin/node /r/packages/broker/dist/main.js --name b')).toEqual({ kind: 'broker', name: 'b' });
    expect(role(dir, 'mosquitto -c /tmp/s/.faultline/run/broker-a/mosquitto.conf')).toEqual({
      kind: 'broker',
      name: 'a',
    });
    expect(role(dir, '/usr/bin/node /r/packages/stream-processor/dist/main.js --node sp-2')).toEqual({
      kind: 'sp',
      node: 'sp-2',
    });
    expect(role(dir, '/usr/bin/node /r/packages/autoscaler/dist/main.js --node autoscaler-b')).toEqual({
      kind: 'autoscaler',
      node: 'autoscaler-b',
    });
    expect(role(pg, '/r/native/bin/postgres -D /tmp/s/.faultline/pg -p 5439')).toEqual({ kind: 'postmaster' });
    expect(role(pg, 'postgres: checkpointer')).toEqual({ kind: 'postgres' });
    expect(
      role('/tmp/s/.faultline/members/member-web-x1', 'node /r/packages/cloud-controller/dist/workload-main.js'),
    ).toEqual({ kind: 'workload', memberId: 'web-x1' });
    expect(role('/tmp/s/.faultline/members/member-web-x1', 'node /r/packages/cartridge-agent/dist/main.js')).toEqual({
      kind: 'agent',
      memberId: 'web-x1',
    });
    expect(role('/elsewhere', '/usr/bin/node /r/packages/autoscaler/dist/main.js')).toEqual({ kind: 'other' });
  });
});
