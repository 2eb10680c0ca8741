import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  clusterConfig,
  events,
  FakeIaas,
  flush,
  harness,
  MemoryRegistry,
  memberRow,
  T0,
  useFakeTime,
} from './testing/index.js';

describe('restart: adoption from the registry', () => {
  beforeEach(useFakeTime);
  afterEach(() => vi.useRealTimers());

  it('adopts what still runs, removes what is gone, terminates what it no longer wants, then applies min', async () => {
    const registry = new MemoryRegistry([
      memberRow('php-a', 'Active'),
      memberRow('php-b', 'Active'), // its instance died while the autoscaler was away
      memberRow('php-c', 'Created', { instance: false }), // its spawn was under way when the autoscaler died
      { ...memberRow('php-d', 'Starting'), createdAt: T0 - 30_000 },
      memberRow('old-a', 'Active', { clusterId: 'old' }), // a cluster no longer configured
      { ...memberRow('php-z', 'Terminated'), terminatedAt: T0 - 1 },
    ]);
    const iaas = new FakeIaas();
    iaas.goneOnAdopt.add('php-b');
    const h = harness({ registry, iaas });
    await h.core.start();
    await flush();
    expect(iaas.callsOf('adopt')).toHaveLength(1);
    expect(
      h.logger.records.filter((r) => r.event === 'autoscaler.member_resumed').map((r) => r.fields.memberId),
    ).toEqual(['php-a', 'old-a', 'php-d']);
    expect(h.actions()).toEqual([
      'MemberRemoved php-b',
      'MemberRemoved php-c',
      'MemberSpawnAction php-1', // php-a and php-d are kept: one more for min 3
      'ScaleDownAction old-a',
      'MemberRemoved old-a',
    ]);
    expect(h.decisions()[0]?.fields.reason).toBe('gone while the autoscaler was away: the workload exited');
    expect(h.decisions()[1]?.fields.reason).toBe(
      'gone while the autoscaler was away: its spawn was under way when the autoscaler stopped',
    );
    expect(h.decisions()[3]?.fields.reason).toBe('cluster old is no longer configured');
    expect(h.stateOf('php-a')).toBe('Active');
    expect(h.stateOf('php-d')).toBe('Starting');
    expect(registry.members.get('php-b')?.state).toBe('Terminated');
    expect(registry.members.get('old-a')?.state).toBe('Terminated');
    expect(h.messages()).toContain('topology/MemberTerminatedEvent php-b');
    // No MemberCreatedEvent was ever sent for php-c: no MemberTerminatedEvent either.
    expect(h.messages()).not.toContain('topology/MemberTerminatedEvent php-c');
    // The adopted Starting member's pending timeout still runs from its registry createdAt (T0 − 30 s).
    await vi.advanceTimersByTimeAsync(29_000);
    expect(h.actions()).not.toContain('MemberTerminateAction php-d');
    await vi.advanceTimersByTimeAsync(1_000);
    await flush();
    expect(h.actions()).toContain('MemberTerminateAction php-d');
    await h.core.close();
  });

  it('three adopted members of a min=3 cluster: no spawn at all', async () => {
    const registry = new MemoryRegistry(['php-a', 'php-b', 'php-c'].map((id) => memberRow(id, 'Active')));
    const h = harness({ registry });
    await h.core.start();
    await h.report(61_000);
    expect(h.actions()).toEqual([]);
    expect(h.iaas.callsOf('spawn')).toEqual([]);
    expect(h.memberIds()).toEqual(['php-a', 'php-b', 'php-c']);
    // And the adopted members are managed as before: a fault terminates one.
    await h.core.handle(events.fault('php-b'));
    await flush();
    expect(h.actions()).toEqual(['MemberTerminateAction php-b', 'MemberRemoved php-b', 'MemberSpawnAction php-1']);
    await h.core.close();
  });

  it('terminates members beyond max, least loaded first (newest without figures)', async () => {
    const registry = new MemoryRegistry(['php-a', 'php-b', 'php-c', 'php-d'].map((id) => memberRow(id, 'Active')));
    registry.members.forEach((r, id) => {
      r.createdAt = T0 - 60_000 + id.charCodeAt(4);
    });
    const h = harness({ registry, clusters: [clusterConfig({ min: 1, max: 2 })] });
    await h.core.start();
    await flush();
    expect(h.actions()).toEqual(['ScaleDownAction php-d', 'ScaleDownAction php-c']);
    // Active members still serve: they drain first (drain.test.ts), removed after the drain delay once idle.
    await vi.advanceTimersByTimeAsync(2_000);
    await flush();
    expect(h.actions()).toEqual([
      'ScaleDownAction php-d',
      'ScaleDownAction php-c',
      'MemberRemoved php-d',
      'MemberRemoved php-c',
    ]);
    expect(h.decisions()[0]?.fields.reason).toBe('above max: 4 members > max 2');
    await h.core.close();
  });

  it('re-terminates a member recorded as Terminating', async () => {
    const registry = new MemoryRegistry([
      { ...memberRow('php-a', 'Terminating'), reason: 'MemberFault (timeout)' },
      memberRow('php-b', 'Active'),
      memberRow('php-c', 'Active'),
    ]);
    const h = harness({ registry });
    await h.core.start();
    await flush();
    expect(h.iaas.callsOf('terminate', 'php-a')).toHaveLength(1);
    expect(h.actions()).toEqual(['MemberRemoved php-a', 'MemberSpawnAction php-1']);
    await h.core.close();
  });
});

describe('close, registry outages, status', () => {
  beforeEach(useFakeTime);
  afterEach(() => vi.useRealTimers());

  it('close terminates no member, waits for a spawn under way and records its instance', async () => {
    const h = harness();
    h.iaas.spawnDelayMs = 3_000;
    await h.core.start();
    const closed = h.core.close();
    await vi.advanceTimersByTimeAsync(3_000);
    await closed;
    expect(h.iaas.callsOf('terminate')).toEqual([]);
    expect(h.iaas.running).toEqual(['php-1', 'php-2', 'php-3']);
    expect([...h.registry.members.values()].map((r) => [r.memberId, r.instance?.memberId])).toEqual([
      ['php-1', 'php-1'],
      ['php-2', 'php-2'],
      ['php-3', 'php-3'],
    ]);
    // Nothing decides after close.
    await h.core.handle(events.fault('php-1'));
    expect(h.actions()).toHaveLength(3);
    await h.core.close(); // idempotent
  });

  it('while the registry is down nothing is done that it could not record; all of it follows once it is back', async () => {
    const h = harness();
    await h.startActive();
    await h.report(61_000);
    h.registry.down = true;
    await h.core.handle(events.fault('php-1'));
    await vi.advanceTimersByTimeAsync(3_000);
    await flush();
    // Decided, but not done: the Terminating row (the intent) could not be written, so no terminate and no spawn.
    expect(h.actions().slice(-1)).toEqual(['MemberTerminateAction php-1']);
    expect(h.iaas.callsOf('terminate', 'php-1')).toEqual([]);
    expect(h.iaas.callsOf('spawn')).toHaveLength(3);
    expect(h.stateOf('php-1')).toBe('Terminating');
    expect(h.core.counters.registryErrors).toBeGreaterThan(0);
    expect(
      h.logger.records.some(
        (r) => r.event === 'autoscaler.registry_member_write_failed' && r.fields.code === 'FL_ERR_REGISTRY_FAILED',
      ),
    ).toBe(true);
    h.registry.down = false;
    await vi.advanceTimersByTimeAsync(2_000);
    await flush();
    expect(h.actions().slice(-3)).toEqual([
      'MemberTerminateAction php-1',
      'MemberRemoved php-1',
      'MemberSpawnAction php-4',
    ]);
    expect(h.core.status().registryBacklog).toBe(0);
    expect(h.registry.members.get('php-1')?.state).toBe('Terminated');
    expect(h.registry.members.get('php-4')).toMatchObject({ state: 'Created', instance: { memberId: 'php-4' } });
    await h.core.close();
  });

  it('fails to start when the registry cannot be read', async () => {
    const registry = new MemoryRegistry();
    registry.down = true;
    const h = harness({ registry });
    await expect(h.core.start()).rejects.toMatchObject({ code: 'FL_ERR_REGISTRY_FAILED' });
  });

  it('status: clusters with members and states, the last actions (kept across a restart)', async () => {
    const h = harness({ actionHistory: 4 });
    await h.startActive();
    await h.report(61_000);
    const t = Date.now();
    await h.core.handle(events.fault('php-2', { epoch: 3 }));
    await flush();
    const status = h.core.status();
    expect(status.state).toBe('running');
    expect(status.clusters).toHaveLength(1);
    expect(status.clusters[0]).toMatchObject({
      clusterId: 'php',
      min: 3,
      max: 5,
      retired: false,
      faultStormHeldSince: null,
    });
    expect(status.clusters[0]?.members.map((m) => [m.memberId, m.state])).toEqual([
      ['php-1', 'Active'],
      ['php-3', 'Active'],
      ['php-4', 'Created'],
    ]);
    expect(status.lastActions.map((a) => `${a.action} ${a.memberId}`)).toEqual([
      'MemberSpawnAction php-3',
      'MemberTerminateAction php-2',
      'MemberRemoved php-2',
      'MemberSpawnAction php-4',
    ]);
    expect(status.lastActions[1]).toEqual({
      at: t,
      action: 'MemberTerminateAction',
      clusterId: 'php',
      memberId: 'php-2',
      reason: 'MemberFault (timeout, silent 60000 ms); instance still running',
      epoch: 3,
      fault: { kind: 'timeout', lastStatAt: T0, declaredAt: t },
      replaces: null,
    });
    await h.core.close();
    const again = harness({ registry: h.registry, iaas: h.iaas, actionHistory: 4 });
    await again.core.start();
    expect(again.core.status().lastActions.map((a) => a.action)).toEqual([
      'MemberSpawnAction',
      'MemberTerminateAction',
      'MemberRemoved',
      'MemberSpawnAction',
    ]);
    await again.core.close();
  });
});
