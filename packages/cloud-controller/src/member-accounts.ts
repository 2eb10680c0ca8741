import {
  type Clock,
  DEFAULTS,
  type Logger,
  nullLogger,
  systemClock,
  type TimerHandle,
  withDefaults,
} from '@faultline/core';
import type { CredentialIdentity } from '@faultline/protocol';
import type { Iaas, MemberInstance, MemberSpec } from './iaas.js';

/**
 * Where members' own accounts live outside the driver: a broker that cannot
 * check a member credential itself (Mosquitto reads a password file) is told
 * the whole set of members each time it changes.
 */
export interface MemberAccounts {
  /** Makes the accounts exactly these members' (level-triggered: the whole set each time). */
  sync(members: readonly CredentialIdentity[]): Promise<void>;
}

export interface MemberAccountsOptions {
  /** @default nullLogger */
  logger?: Logger;
  /** @default systemClock */
  clock?: Clock;
  /**
   * How often the whole set is synced again although nothing changed, so a
   * failed sync (a password file not written, a broker not signalled) is
   * repaired without waiting for the next spawn or terminate.
   * @default DEFAULTS.resubscribeIntervalMs (30 s, how often an agent's publisher tries a broker again)
   */
  resyncIntervalMs?: number;
}

function identityOf(member: MemberSpec | MemberInstance): CredentialIdentity {
  return { memberId: member.memberId, clusterId: member.clusterId, networkPartitionId: member.networkPartitionId };
}

/**
 * `iaas` that keeps `accounts` equal to its members: a member's account is
 * granted before the member starts (so its agent's first login works) and
 * withdrawn once it is terminated; adopting (or discovering) members at start grants theirs.
 * Each sync is derived from the driver's list, never from a count of grants,
 * and syncs run one at a time, each reading the list anew. A sync that fails
 * is logged and does not fail the spawn; it is repaired by the next one, at
 * the latest `resyncIntervalMs` later: from the first spawn, terminate or
 * adopt on (before it the driver's list is not yet the members that run), the
 * set is synced again on that interval until close().
 */
export function withMemberAccounts(iaas: Iaas, accounts: MemberAccounts, options: MemberAccountsOptions = {}): Iaas {
  const { logger, clock, resyncIntervalMs } = withDefaults(
    { logger: nullLogger, clock: systemClock, resyncIntervalMs: DEFAULTS.resubscribeIntervalMs as number },
    options,
  );
  const log = logger.child({ component: 'member-accounts' });
  /** Members being spawned: not in the driver's list yet, but their agents are about to log in. */
  const starting = new Map<string, CredentialIdentity>();
  let running: Promise<void> = Promise.resolve();
  let resync: TimerHandle | undefined;
  let closed = false;

  const syncNow = async (): Promise<void> => {
    try {
      const members = new Map<string, CredentialIdentity>();
      for (const instance of await iaas.list()) members.set(instance.memberId, identityOf(instance));
      for (const [memberId, identity] of starting) members.set(memberId, identity);
      await accounts.sync([...members.values()]);
    } catch (error) {
      log.warn('member accounts not synced; the next sync tries again', {
        event: 'cloud.member_accounts_failed',
        error,
      });
    }
  };

  /** One at a time (syncNow never rejects), so a stale list never lands after a newer one. */
  const sync = (): Promise<void> => {
    running = running.then(syncNow);
    return running;
  };

  /** Called after the driver's list is the members that run: from then on, resynced on the interval too. */
  const synced = async (): Promise<void> => {
    await sync();
    if (resync === undefined && !closed) resync = clock.setInterval(() => void sync(), resyncIntervalMs);
  };

  return {
    name: iaas.name,
    spawn: async (spec) => {
      starting.set(spec.memberId, identityOf(spec));
      try {
        await sync();
        return await iaas.spawn(spec);
      } finally {
        starting.delete(spec.memberId);
        // A failed spawn loses its account; a started member keeps it (it is in the list now).
        await synced();
      }
    },
    terminate: async (memberId, terminateOptions) => {
      const result = await iaas.terminate(memberId, terminateOptions);
      await synced();
      return result;
    },
    isRunning: (memberId) => iaas.isRunning(memberId),
    list: () => iaas.list(),
    // Members found running become the driver's, as adopted ones do: their accounts are granted.
    discover: async () => {
      const found = await iaas.discover();
      await synced();
      return found;
    },
    probe: (memberId) => iaas.probe(memberId),
    // The member keeps its instance, so its account: its new agent logs in with the same credential.
    restartAgent: (memberId) => iaas.restartAgent(memberId),
    adopt: async (instances) => {
      const result = await iaas.adopt(instances);
      await synced();
      return result;
    },
    close: async () => {
      closed = true;
      clock.clearInterval(resync);
      await running;
      await iaas.close();
    },
  };
}
