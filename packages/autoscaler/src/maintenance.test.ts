import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type MaintenanceEntry, maintenanceEntryOf } from './maintenance.js';
import { clusterConfig, events, flush, harness, T0, useFakeTime } from './testing/index.js';

/*
 * Maintenance mode (README "Maintenance mode"), on fake time with a fake Iaas
 * and the memory registry, whose maintenance rows a test writes and deletes
 * directly, as `faultline maintenance` (or an operator with psql) would: the
 * autoscaler learns of them only by reading the registry at its ticks.
 */
describe('maintenance mode', () => {
  beforeEach(useFakeTime);
  afterEach(() => vi.useRealTimers());

  const row = (memberId: string | null = null): MaintenanceEntry => ({
    clusterId: 'php',
    memberId,
    reason: 'kernel upgrade',
    by: 'alice@ops-1',
    since: Date.now(),
  });

  /** Three members that have served longer than one fault timeout (a fault then is no failed start). */
  const threeActive = async (options: Parameters<typeof harness>[0] = {}) => {
    const h = harness(options);
    await h.startActive();
    await h.report(61_000);
    return h;
  };

  const spawns = (actions: string[]) => actions.filter((a) => a.startsWith('MemberSpawnAction'));

  it('a member killed in cluster maintenance is held, not replaced; once it ends, verified and replaced once', async () => {
    const h = await threeActive();
    h.registry.maintenanceRows.push(row());
    await h.report(1_000);
    const before = h.actions().length;
    expect(h.actions().at(-1)).toBe('MaintenanceOn');
    expect(h.decisions().at(-1)?.fields).toMatchObject({
      clusterId: 'php',
      memberId: null,
      reason: expect.stringMatching(
        /^maintenance by alice@ops-1 since \d\d:\d\d:\d\d UTC: kernel upgrade; .*minimum rule and the scaling rule pause$/,
      ),
    });
    expect(h.registry.actions.at(-1)?.action).toBe('MaintenanceOn');
    // Gone: reconciliation finds it at the next tick, the MemberFault follows; both are held.
    h.iaas.kill('php-2');
    await h.report(2_000, { except: ['php-2'] });
    await h.core.handle(events.fault('php-2', { epoch: 2 }));
    await h.report(180_000, { except: ['php-2'] }); // three fault timeouts
    expect(h.actions().slice(before)).toEqual([]);
    expect(h.iaas.callsOf('spawn')).toHaveLength(3);
    expect(h.iaas.callsOf('terminate')).toHaveLength(0);
    const status = h.core.status().clusters[0];
    expect(status?.maintenance).toMatchObject({ reason: 'kernel upgrade', by: 'alice@ops-1' });
    const php2 = status?.members.find((m) => m.memberId === 'php-2');
    expect(php2?.heldFault).toBe(
      'its instance is not running on the infrastructure (reconciliation) (held: maintenance)',
    );
    expect(php2?.maintenance).toMatchObject({ memberId: null });
    expect(h.logger.records.filter((r) => r.event === 'autoscaler.fault_held')).toHaveLength(1);
    // Not probed while in maintenance: nothing would be done about what a probe says.
    expect(h.iaas.callsOf('probe', 'php-2')).toHaveLength(0);

    // The row deleted: the next tick ends the maintenance, verifies php-2 (gone) and refills the cluster once.
    h.registry.maintenanceRows.splice(0);
    await h.report(10_000, { except: ['php-2'] });
    expect(h.actions().slice(before)).toEqual(['MaintenanceOff', 'MemberRemoved php-2', 'MemberSpawnAction php-4']);
    expect(h.decisions().at(-3)?.fields.reason).toBe(
      'maintenance ended: 1 fault(s) held for it verified through the Iaas now; the minimum rule and the scaling rule resume',
    );
    expect(h.decisions().at(-2)?.fields.reason).toMatch(/held in maintenance and verified: its instance is gone/);
    expect(h.registry.actions.find((a) => a.action === 'MemberSpawnAction' && a.memberId === 'php-4')).toMatchObject({
      replaces: 'php-2',
    });
    await h.core.handle(events.activated('php-4'));
    await h.report(60_000);
    expect(spawns(h.actions().slice(before))).toEqual(['MemberSpawnAction php-4']);
    expect(h.core.status().clusters[0]?.maintenance).toBeNull();
    await h.core.close();
  });

  it('pauses the minimum rule of a cluster: a member removed meanwhile is replaced once it ends', async () => {
    const h = await threeActive();
    h.iaas.terminateDelayMs = 5_000;
    const before = h.actions().length;
    // Decided before the maintenance: carried out; its removal leaves the cluster at 2 of min 3.
    await h.core.handle(events.fault('php-1'));
    h.registry.maintenanceRows.push(row());
    await h.report(30_000, { stepMs: 1_000 });
    expect(h.actions().slice(before)).toEqual(['MemberTerminateAction php-1', 'MaintenanceOn', 'MemberRemoved php-1']);
    expect(h.memberIds()).toEqual(['php-2', 'php-3']);
    h.registry.maintenanceRows.splice(0);
    await h.report(5_000, { stepMs: 1_000 });
    expect(h.actions().slice(before + 3)).toEqual(['MaintenanceOff', 'MemberSpawnAction php-4']);
    expect(h.decisions().at(-1)?.fields.reason).toBe('minimum rule: 2 < min 3');
    await h.core.close();
  });

  it('pauses the scaling rule of a cluster: no scale up however high the load', async () => {
    const h = harness({ clusters: [clusterConfig({ min: 3, max: 4 })] });
    await h.startActive();
    h.registry.maintenanceRows.push(row());
    await vi.advanceTimersByTimeAsync(1_000);
    await flush();
    expect(h.actions().slice(-1)).toEqual(['MaintenanceOn']);
    for (let minute = 1; minute <= 5; minute++) {
      await h.core.handle(events.clusterStat('AverageRequestsInFlightEvent', 49, T0 + minute * 60_000, 3));
      await vi.advanceTimersByTimeAsync(1_000);
    }
    await flush();
    expect(h.actions().filter((a) => a.startsWith('ScaleUpAction'))).toEqual([]);
    h.registry.maintenanceRows.splice(0);
    await h.core.handle(events.clusterStat('AverageRequestsInFlightEvent', 49, T0 + 6 * 60_000, 3));
    await vi.advanceTimersByTimeAsync(1_000);
    await flush();
    expect(h.actions().slice(-2)).toEqual(['MaintenanceOff', 'ScaleUpAction php-4']);
    await h.core.close();
  });

  it('one member in maintenance: its fault is held, the rest of the cluster is handled as usual', async () => {
    const h = await threeActive();
    h.registry.maintenanceRows.push(row('php-1'));
    await h.report(1_000);
    const before = h.actions().length;
    expect(h.actions().at(-1)).toBe('MaintenanceOn php-1');
    h.iaas.kill('php-1');
    h.iaas.kill('php-2');
    await h.core.handle(events.fault('php-1'));
    await h.core.handle(events.fault('php-2'));
    await flush();
    await h.core.handle(events.activated('php-4'));
    await h.report(60_000, { except: ['php-1'] });
    expect(h.actions().slice(before)).toEqual(['MemberRemoved php-2', 'MemberSpawnAction php-4']);
    const members = h.core.status().clusters[0]?.members ?? [];
    expect(members.find((m) => m.memberId === 'php-1')).toMatchObject({
      state: 'Active',
      heldFault: 'MemberFault (timeout, silent 60000 ms) (held: maintenance)',
      maintenance: { memberId: 'php-1', reason: 'kernel upgrade' },
    });
    expect(members.find((m) => m.memberId === 'php-3')?.maintenance).toBeNull();
    expect(h.core.status().clusters[0]?.maintenance).toBeNull();
    // Not counted towards a fault storm: php-2's fault alone was acted upon.
    expect(h.actions()).not.toContain('FaultStormHeld');
    h.registry.maintenanceRows.splice(0);
    await h.report(5_000, { except: ['php-1'] });
    expect(h.actions().slice(before + 2)).toEqual([
      'MaintenanceOff php-1',
      'MemberRemoved php-1',
      'MemberSpawnAction php-5',
    ]);
    await h.core.close();
  });

  it('a member back by the time its maintenance ends (it answers its probe): its held fault is dropped', async () => {
    const h = await threeActive();
    h.registry.maintenanceRows.push(row('php-1'));
    await h.report(1_000);
    h.iaas.hung.add('php-1'); // stopped by hand for a look
    await h.core.handle(events.fault('php-1'));
    await h.report(30_000, { except: ['php-1'] });
    expect(h.core.status().clusters[0]?.members.find((m) => m.memberId === 'php-1')?.heldFault).toMatch(
      /held: maintenance/,
    );
    h.iaas.hung.delete('php-1'); // resumed
    const before = h.actions().length;
    h.registry.maintenanceRows.splice(0);
    await h.report(1_000, { except: ['php-1'] });
    expect(h.actions().slice(before)).toEqual(['MaintenanceOff php-1']);
    expect(h.iaas.callsOf('probe', 'php-1')).toHaveLength(1);
    expect(h.core.status().clusters[0]?.members.find((m) => m.memberId === 'php-1')?.heldFault).toBeNull();
    expect(h.logger.records.find((r) => r.event === 'autoscaler.held_fault_cleared')?.fields).toMatchObject({
      memberId: 'php-1',
      evidence: 'it answers its probe now that its maintenance has ended',
    });
    await h.core.close();
  });

  it('a registry that cannot be read: the last rows read stay in force until it answers again', async () => {
    const h = await threeActive();
    h.registry.maintenanceRows.push(row());
    await h.report(1_000);
    const before = h.actions().length;
    h.registry.down = true;
    h.registry.maintenanceRows.splice(0); // ended meanwhile: nobody can know until the registry answers
    h.iaas.kill('php-3');
    await h.core.handle(events.fault('php-3'));
    await h.report(30_000, { except: ['php-3'] });
    expect(h.actions().slice(before)).toEqual([]);
    expect(h.logger.records.filter((r) => r.event === 'autoscaler.maintenance_unread')).toHaveLength(1);
    expect(h.core.status().clusters[0]?.maintenance).not.toBeNull();
    h.registry.down = false;
    await h.report(5_000, { except: ['php-3'] });
    expect(h.actions().slice(before)).toEqual(['MaintenanceOff', 'MemberRemoved php-3', 'MemberSpawnAction php-4']);
    await h.core.close();
  });

  it('survives a restart: announced once, a member gone while away is held, then replaced once', async () => {
    const h = await threeActive();
    h.registry.maintenanceRows.push(row());
    await h.report(1_000);
    await h.core.close();
    await flush();
    // While no autoscaler runs: php-2 dies.
    h.iaas.kill('php-2');
    h.iaas.goneOnAdopt.add('php-2');
    let n = 3;
    const again = harness({ registry: h.registry, iaas: h.iaas, newMemberId: (clusterId) => `${clusterId}-${++n}` });
    await again.core.start();
    await again.report(120_000, { except: ['php-2'] });
    // Not announced again (the last life persisted what it had announced), nothing removed, nothing spawned.
    expect(again.actions()).toEqual([]);
    expect(again.logger.records.find((r) => r.event === 'autoscaler.member_kept_in_maintenance')?.fields).toMatchObject(
      {
        memberId: 'php-2',
      },
    );
    expect(again.core.status().clusters[0]?.members.find((m) => m.memberId === 'php-2')?.heldFault).toMatch(
      /held: maintenance/,
    );
    again.registry.maintenanceRows.splice(0);
    await again.report(5_000, { except: ['php-2'] });
    expect(again.actions()).toEqual(['MaintenanceOff', 'MemberRemoved php-2', 'MemberSpawnAction php-4']);
    await again.core.close();
  });

  it('a row whose time no Date can hold (PostgreSQL reaches further) is left out, not shown as a throw every tick', () => {
    const row = { cluster_id: 'php', member_id: null, reason: 'r', set_by: 'psql', set_at: 9.2e15 };
    expect(maintenanceEntryOf(row)).toBeUndefined();
    expect(maintenanceEntryOf({ ...row, set_at: T0 })).toMatchObject({ clusterId: 'php', since: T0 });
  });
});
