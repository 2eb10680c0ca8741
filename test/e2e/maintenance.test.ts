import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep, stackConfig, stackDir, stackPorts, stackProbe, startStack } from './harness.js';

/*
 * Maintenance mode on the real stack (README "Maintenance mode"): a member
 * killed while its cluster is in maintenance is not replaced until the
 * maintenance is off, then it is replaced once. Only `faultline` commands
 * act: `maintenance on|off` writes the registry through the supervisor, the
 * acting autoscaler reads it at its ticks; judged by `stack status` and by
 * what the autoscaler writes to its log.
 */

/** `stack status --json` with the fields this suite reads beyond the harness's. */
interface MaintenanceStatus {
  clusters: {
    id: string;
    maintenance: { by: string; reason: string; since: string } | null;
    members: { memberId: string; state: string; held: string | null }[];
  }[];
}

/** The fault timeout of stackConfig (cep.faultTimeoutMs). */
const FAULT_TIMEOUT_MS = 4_000;

describe('maintenance mode on the full stack', () => {
  let dir: string;
  let stack: ChildProcess;
  const probe = stackProbe(() => dir);
  const { cli, records, actions, spawns, waitFor, threeActive } = probe;
  const status = async () => JSON.parse(await cli('stack', 'status', '--json')) as MaintenanceStatus;

  beforeAll(async () => {
    dir = stackDir('faultline-e2e-maintenance-');
    ({ child: stack } = await startStack(dir, stackConfig('aedes', await stackPorts()), probe));
    await threeActive();
  });

  afterAll(async () => {
    if (stack && stack.exitCode === null) {
      stack.kill('SIGTERM');
      await new Promise((resolve) => stack.once('exit', resolve));
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('a member killed in maintenance is not replaced until maintenance is off, then replaced once', async () => {
    const said = await cli('maintenance', 'on', 'web', '--reason', 'e2e: kernel upgrade');
    expect(said).toMatch(/^cluster web in maintenance since /);
    // The acting autoscaler has read the row at a tick.
    const on = await waitFor(
      () => actions().find((a) => a.action === 'MaintenanceOn' && a.clusterId === 'web'),
      'MaintenanceOn',
      10_000,
    );
    expect(on.reason).toMatch(/kernel upgrade; .*the minimum rule and the scaling rule pause$/);

    const line = await cli('chaos', 'kill-member');
    const memberId = /member (\S+)/.exec(line)?.[1] as string;
    const killedAt = new Date().toISOString();
    const member = async () => (await status()).clusters[0]?.members.find((m) => m.memberId === memberId);
    await waitFor(async () => ((await member())?.held === 'maintenance' ? true : undefined), 'its fault held');
    // Well past the fault timeout and the absence window: the SP has declared it faulted long ago.
    await sleep(5 * FAULT_TIMEOUT_MS);
    expect(spawns().filter((a) => a.timestamp >= killedAt)).toEqual([]);
    /** Decisions on the killed member since the kill (its own spawn came long before). */
    const onIt = () => actions().filter((a) => a.memberId === memberId && a.timestamp >= killedAt);
    expect(onIt()).toEqual([]);
    const held = (await status()).clusters[0];
    expect(held?.maintenance).toMatchObject({ reason: 'e2e: kernel upgrade' });
    expect(held?.members).toHaveLength(3);
    expect(await member()).toMatchObject({ state: 'Active', held: 'maintenance' });
    const table = await cli('stack', 'status');
    expect(table).toMatch(/MAINTENANCE by \S+ since \d\d:\d\d:\d\d: e2e: kernel upgrade/);
    expect(table).toContain(`${memberId.padEnd(24)} Active  (fault held: maintenance)`);
    // The SP declared the fault meanwhile (and re-announces it): logged, held, not acted on.
    const declared = [...records('sp-1'), ...records('sp-2')];
    expect(declared.some((r) => r.event === 'cep.member_fault' && r.memberId === memberId)).toBe(true);
    expect(records('autoscaler').some((r) => r.event === 'autoscaler.fault_held' && r.memberId === memberId)).toBe(
      true,
    );
    expect(await cli('maintenance', 'status')).toMatch(/\nweb +\(whole cluster\) .* e2e: kernel upgrade$/);

    const offAt = new Date().toISOString();
    expect(await cli('maintenance', 'off', 'web')).toMatch(/^cluster web out of maintenance/);
    await waitFor(
      () => actions().find((a) => a.action === 'MaintenanceOff' && a.timestamp >= offAt),
      'MaintenanceOff',
      10_000,
    );
    const removed = await waitFor(
      () => actions().find((a) => a.memberId === memberId && a.action === 'MemberRemoved'),
      'the killed member removed',
      10_000,
    );
    expect(removed.reason).toMatch(/held in maintenance and verified: its instance is gone/);
    await waitFor(() => spawns().find((a) => a.timestamp >= offAt), 'its replacement', 10_000);
    await threeActive();
    await sleep(2 * FAULT_TIMEOUT_MS); // a second spawn or a second removal would show by now
    expect(spawns().filter((a) => a.timestamp >= killedAt)).toHaveLength(1);
    expect(onIt().map((a) => a.action)).toEqual(['MemberRemoved']);
    expect((await status()).clusters[0]?.maintenance).toBeNull();
  });
});
