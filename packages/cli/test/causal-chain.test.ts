import { type ActionRecord, type MemberRecord, PgRegistry, readActionsAfter } from '@faultline/autoscaler';
import { createPgPool, migrate, systemClock } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import { startPostgres, type TestPostgres } from '@faultline/test-support';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ActionFeed } from '../src/action-feed.js';
import { causalChain, formatChain } from '../src/causal-chain.js';

const T = Date.UTC(2026, 11, 1, 12, 0, 0);

const member = (memberId: string, extra: Partial<MemberRecord>): MemberRecord => ({
  memberId,
  clusterId: 'php',
  clusterInstanceId: 'php-1',
  networkPartitionId: 'np-1',
  partitionId: 'p-1',
  cartridgeType: 'php',
  state: 'Active',
  instance: null,
  reason: null,
  createdAt: T,
  activatedAt: T + 2_000,
  terminatedAt: null,
  ...extra,
});

const action = (a: Partial<ActionRecord> & Pick<ActionRecord, 'action' | 'at'>): ActionRecord => ({
  clusterId: 'php',
  memberId: null,
  reason: 'r',
  epoch: null,
  fault: null,
  replaces: null,
  ...a,
});

describe("a member's causal chain, from the registry in PostgreSQL", () => {
  let postgres: TestPostgres;
  let pool: pg.Pool;
  let registry: PgRegistry;
  beforeAll(async () => {
    postgres = await startPostgres();
    pool = createPgPool({ connectionString: postgres.connectionString });
    await migrate(pool);
    registry = new PgRegistry(pool);
  });
  afterAll(async () => {
    await pool?.end();
    await postgres?.stop();
  });

  it('joins the fault the autoscaler recorded, the termination, the spawn that replaced it and its activation', async () => {
    // Two members fault together; the minimum rule refills the cluster in the order it emptied.
    for (const id of ['php-aaaaaa', 'php-bbbbbb']) await registry.saveMember(member(id, {}));
    const fault = (lastStatAt: number) => ({ kind: 'timeout' as const, lastStatAt, declaredAt: lastStatAt + 3_000 });
    await registry.recordAction(
      action({
        action: 'MemberTerminateAction',
        at: T + 10_100,
        memberId: 'php-aaaaaa',
        fault: fault(T + 7_000),
        epoch: 2,
      }),
    );
    await registry.recordAction(
      action({
        action: 'MemberTerminateAction',
        at: T + 10_200,
        memberId: 'php-bbbbbb',
        fault: fault(T + 7_100),
        epoch: 2,
      }),
    );
    await registry.recordAction(action({ action: 'MemberRemoved', at: T + 11_000, memberId: 'php-aaaaaa' }));
    await registry.recordAction(action({ action: 'MemberRemoved', at: T + 11_100, memberId: 'php-bbbbbb' }));
    // The first spawn does not say whom it replaces (an autoscaler that restarted in between): paired in order.
    await registry.recordAction(action({ action: 'MemberSpawnAction', at: T + 11_500, memberId: 'php-cccccc' }));
    // The second names its member.
    await registry.recordAction(
      action({ action: 'MemberSpawnAction', at: T + 11_600, memberId: 'php-dddddd', replaces: 'php-bbbbbb' }),
    );
    await registry.saveMember(member('php-aaaaaa', { state: 'Terminated', reason: 'x', terminatedAt: T + 11_000 }));
    await registry.saveMember(member('php-bbbbbb', { state: 'Terminated', reason: 'x', terminatedAt: T + 11_100 }));
    await registry.saveMember(member('php-cccccc', { createdAt: T + 11_500, activatedAt: T + 14_000 }));
    await registry.saveMember(member('php-dddddd', { state: 'Starting', createdAt: T + 11_600, activatedAt: null }));

    const a = await causalChain(pool, 'php-aaaaaa');
    expect(a?.steps.map((s) => [s.step, s.at - T, s.memberId])).toEqual([
      ['lastStat', 7_000, 'php-aaaaaa'],
      ['fault', 10_000, 'php-aaaaaa'],
      ['decision', 10_100, 'php-aaaaaa'],
      ['terminated', 11_000, 'php-aaaaaa'],
      ['spawn', 11_500, 'php-cccccc'],
      ['active', 14_000, 'php-cccccc'],
    ]);
    expect(formatChain(a ?? ({} as never))).toContain('MemberTerminateAction: r');
    // The second member's replacement is not active yet: its chain ends at the spawn.
    const b = await causalChain(pool, 'php-bbbbbb');
    expect(b?.replacedBy).toBe('php-dddddd');
    expect(b?.steps.at(-1)?.step).toBe('spawn');
    expect(await causalChain(pool, 'php-zzzzzz')).toBeUndefined();
  });

  it('feeds the timeline from the action table: each action once, with its fault', async () => {
    const logger = createMemoryLogger();
    const feed = new ActionFeed({
      readAfter: (afterId, limit) => readActionsAfter(pool, afterId, limit),
      readLatest: async (limit) => (await readActionsAfter(pool, 0, 10_000)).reverse().slice(0, limit),
      clock: systemClock,
      logger,
    });
    const got: string[] = [];
    feed.subscribe((event) => {
      if (event.type === 'actions')
        got.push(...event.actions.map((x) => `${x.action} ${x.memberId} ${x.fault?.kind ?? '-'}`));
    });
    await feed.poll();
    got.length = 0; // the history
    const history = feed.since();
    expect(history.length).toBeGreaterThan(0);
    await registry.recordAction(
      action({
        action: 'MemberRemoved',
        at: T + 20_000,
        memberId: 'php-eeeeee',
        fault: { kind: 'ports_not_open', lastStatAt: null, declaredAt: T + 19_000 },
      }),
    );
    await feed.poll();
    await feed.poll();
    expect(got).toEqual(['MemberRemoved php-eeeeee ports_not_open']);
    await feed.close();
  });
});
