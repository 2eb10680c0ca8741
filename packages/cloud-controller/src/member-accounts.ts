import { type Logger, nullLogger } from '@faultline/core';
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

function identityOf(member: MemberSpec | MemberInstance): CredentialIdentity {
  return { memberId: member.memberId, clusterId: member.clusterId, networkPartitionId: member.networkPartitionId };
}

/**
 * `iaas` that keeps `accounts` equal to its members: a member's account is
 * granted before the member starts (so its agent's first login works) and
 * withdrawn once it is terminated; adopting members at start grants theirs.
 * Each sync is derived from the driver's list, never from a count of grants,
 * so a failed sync is repaired by the next one. A sync that fails is logged
 * and does not fail the spawn: the member then cannot publish its status on
 * that broker, and the autoscaler replaces a member that never activates.
 */
export function withMemberAccounts(iaas: Iaas, accounts: MemberAccounts, logger: Logger = nullLogger): Iaas {
  const log = logger.child({ component: 'member-accounts' });
  /** Members being spawned: not in the driver's list yet, but their agents are about to log in. */
  const starting = new Map<string, CredentialIdentity>();

  const sync = async (): Promise<void> => {
    try {
      const members = new Map<string, CredentialIdentity>();
      for (const instance of await iaas.list()) members.set(instance.memberId, identityOf(instance));
      for (const [memberId, identity] of starting) members.set(memberId, identity);
      await accounts.sync([...members.values()]);
    } catch (error) {
      log.warn('member accounts not synced; the next change tries again', {
        event: 'cloud.member_accounts_failed',
        error,
      });
    }
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
        await sync();
      }
    },
    terminate: async (memberId, options) => {
      const result = await iaas.terminate(memberId, options);
      await sync();
      return result;
    },
    isRunning: (memberId) => iaas.isRunning(memberId),
    list: () => iaas.list(),
    adopt: async (instances) => {
      const result = await iaas.adopt(instances);
      await sync();
      return result;
    },
    close: () => iaas.close(),
  };
}
