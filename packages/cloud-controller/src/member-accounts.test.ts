import type { CredentialIdentity } from '@faultline/protocol';
import { testMember } from '@faultline/protocol/testing';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Iaas, MemberInstance, MemberSpec } from './iaas.js';
import { type MemberAccounts, withMemberAccounts } from './member-accounts.js';

/** An Iaas that keeps members in a map; `failNext` makes the next spawn reject. */
function mapIaas() {
  const members = new Map<string, MemberInstance>();
  /** Running instances of an earlier life that discover() finds. */
  const strays: MemberInstance[] = [];
  const state = { failNext: false };
  const iaas: Iaas = {
    name: 'map',
    spawn: async (spec: MemberSpec) => {
      if (state.failNext) {
        state.failNext = false;
        throw new Error('no capacity');
      }
      const instance = {
        ...spec,
        driver: 'map',
        spawnedAt: 0,
        address: { host: '127.0.0.1', port: 1 },
        handle: {},
      } as MemberInstance;
      members.set(spec.memberId, instance);
      return instance;
    },
    terminate: async (memberId) => {
      members.delete(memberId);
      return { memberId, outcome: 'terminated' } as never;
    },
    isRunning: async (memberId) => members.has(memberId),
    list: async () => [...members.values()],
    adopt: async (instances) => {
      for (const instance of instances as MemberInstance[]) members.set(instance.memberId, instance);
      return { adopted: instances as MemberInstance[], gone: [], invalid: [] };
    },
    discover: async () => {
      for (const instance of strays.splice(0)) members.set(instance.memberId, instance);
      return [...members.values()];
    },
    probe: async (memberId) => (members.has(memberId) ? 'answering' : 'gone'),
    restartAgent: async () => ({ outcome: 'failed', reason: 'not in this test' }),
    close: async () => {},
  };
  return { iaas, state, strays };
}

/** Records every set of members it is told. */
function recordingAccounts(): MemberAccounts & { sets: string[][] } {
  const sets: string[][] = [];
  return {
    sets,
    sync: async (members: readonly CredentialIdentity[]) => {
      sets.push(members.map((m) => m.memberId).sort());
    },
  };
}

const spec = (memberId: string): MemberSpec => ({ ...testMember(memberId), cartridgeType: 'php' });

describe('withMemberAccounts', () => {
  it("grants a member's account before it starts, keeps it while it runs, withdraws it once terminated", async () => {
    const { iaas } = mapIaas();
    const accounts = recordingAccounts();
    const wrapped = withMemberAccounts(iaas, accounts);
    await wrapped.spawn(spec('m-1'));
    // Granted before the driver's spawn (m-1 is not in its list yet), still there after.
    expect(accounts.sets).toEqual([['m-1'], ['m-1']]);
    await wrapped.spawn(spec('m-2'));
    await wrapped.terminate('m-1');
    expect(accounts.sets.at(-1)).toEqual(['m-2']);
    await wrapped.close();
  });

  it('takes the account back from a member whose spawn failed', async () => {
    const { iaas, state } = mapIaas();
    const accounts = recordingAccounts();
    const wrapped = withMemberAccounts(iaas, accounts);
    state.failNext = true;
    await expect(wrapped.spawn(spec('m-1'))).rejects.toThrow('no capacity');
    expect(accounts.sets).toEqual([['m-1'], []]);
    await wrapped.close();
  });

  it('grants adopted members their accounts (an autoscaler restart), derived from the driver each time', async () => {
    const { iaas } = mapIaas();
    const accounts = recordingAccounts();
    const wrapped = withMemberAccounts(iaas, accounts);
    const old = await iaas.spawn(spec('m-7'));
    await wrapped.adopt([old]);
    expect(accounts.sets).toEqual([['m-7']]);
    await wrapped.close();
  });

  it('passes discover and probe through; members discovered running get their accounts', async () => {
    const { iaas, strays } = mapIaas();
    const accounts = recordingAccounts();
    const wrapped = withMemberAccounts(iaas, accounts);
    await wrapped.spawn(spec('m-1'));
    strays.push({ ...spec('stray'), driver: 'map', spawnedAt: 0, address: { host: '127.0.0.1', port: 2 }, handle: {} });
    expect((await wrapped.discover()).map((m) => m.memberId)).toEqual(['m-1', 'stray']);
    expect(accounts.sets.at(-1)).toEqual(['m-1', 'stray']);
    expect(await wrapped.probe('stray')).toBe('answering');
    expect(await wrapped.probe('nobody')).toBe('gone');
    await wrapped.close();
  });

  it('logs a failed sync and still spawns; the next change syncs the whole set again', async () => {
    const { iaas } = mapIaas();
    let fail = true;
    const sets: string[][] = [];
    const wrapped = withMemberAccounts(iaas, {
      sync: async (members) => {
        if (fail) throw new Error('disk full');
        sets.push(members.map((m) => m.memberId).sort());
      },
    });
    await wrapped.spawn(spec('m-1'));
    fail = false;
    await wrapped.spawn(spec('m-2'));
    expect(sets.at(-1)).toEqual(['m-1', 'm-2']);
    await wrapped.close();
  });

  describe('resync on the injected clock', () => {
    afterEach(() => {
      vi.useRealTimers();
    });

    it('repairs a failed sync with no spawn or terminate in between, and stops at close()', async () => {
      vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
      const { iaas } = mapIaas();
      let fail = true;
      const sets: string[][] = [];
      const wrapped = withMemberAccounts(
        iaas,
        {
          sync: async (members) => {
            if (fail) throw new Error('passwd not written');
            sets.push(members.map((m) => m.memberId).sort());
          },
        },
        { resyncIntervalMs: 30_000 },
      );
      await wrapped.spawn(spec('m-1'));
      expect(sets).toEqual([]);
      fail = false;
      await vi.advanceTimersByTimeAsync(29_999);
      expect(sets).toEqual([]);
      await vi.advanceTimersByTimeAsync(1);
      expect(sets).toEqual([['m-1']]);
      await vi.advanceTimersByTimeAsync(30_000);
      expect(sets).toEqual([['m-1'], ['m-1']]);
      await wrapped.close();
      await vi.advanceTimersByTimeAsync(120_000);
      expect(sets).toHaveLength(2);
    });

    it('waits for the first spawn, terminate or adopt: before it the driver does not list the members that run', async () => {
      vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
      const { iaas } = mapIaas();
      const accounts = recordingAccounts();
      const wrapped = withMemberAccounts(iaas, accounts, { resyncIntervalMs: 1_000 });
      await vi.advanceTimersByTimeAsync(10_000);
      expect(accounts.sets).toEqual([]);
      await wrapped.adopt([]);
      await vi.advanceTimersByTimeAsync(2_000);
      expect(accounts.sets).toEqual([[], [], []]);
      await wrapped.close();
    });
  });

  it('runs one sync at a time, each reading the driver list anew', async () => {
    const { iaas } = mapIaas();
    let active = 0;
    let most = 0;
    const sets: string[][] = [];
    const wrapped = withMemberAccounts(iaas, {
      sync: async (members) => {
        active += 1;
        most = Math.max(most, active);
        await new Promise((resolve) => setImmediate(resolve));
        sets.push(members.map((m) => m.memberId).sort());
        active -= 1;
      },
    });
    await Promise.all([wrapped.spawn(spec('m-1')), wrapped.spawn(spec('m-2')), wrapped.adopt([])]);
    expect(most).toBe(1);
    expect(sets.at(-1)).toEqual(['m-1', 'm-2']);
    await wrapped.close();
  });
});
