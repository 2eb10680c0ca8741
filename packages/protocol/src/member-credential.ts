import { createHmac, timingSafeEqual } from 'node:crypto';
import { err, ok, RecentMap, type Result } from '@faultline/core';
import { isId, type MemberIdentity } from './identity.js';

/*
 * A member's credential (README "Agents → SP (Thrift)"): the cloud controller
 * issues it when it spawns the member, the member's cartridge agent sends it
 * with every health-stat batch, and the SP accepts a batch only for the
 * identity the credential names. It is
 *
 *   <memberId>:<clusterId>:<networkPartitionId>:<mac>
 *
 * with mac = base64url(HMAC-SHA256(key, "faultline-member-v1\n" + the three
 * ids joined by "\n")), key = the platform's member key
 * (`security.memberKeyFile`), which only the platform's services read. Ids
 * cannot hold ':' (ID_PATTERN), so the token splits one way only. A
 * credential never expires: it names one member, and a member id is never
 * reused; changing the key revokes every credential at once.
 */

/** The part of a member's identity its credential is bound to. */
export type CredentialIdentity = Pick<MemberIdentity, 'memberId' | 'clusterId' | 'networkPartitionId'>;

/** Why a credential was not accepted. */
export type CredentialRefusal = 'credential_missing' | 'credential_invalid';

const CONTEXT = 'faultline-member-v1\n';
/** base64url of 32 bytes, unpadded. */
const MAC_LENGTH = 43;
/** Longest token: three ids of 128 characters, three separators and the MAC. */
export const MAX_CREDENTIAL_LENGTH = 3 * 128 + 3 + MAC_LENGTH;

function macOf(key: Buffer, identity: CredentialIdentity): string {
  return createHmac('sha256', key)
    .update(`${CONTEXT}${identity.memberId}\n${identity.clusterId}\n${identity.networkPartitionId}`)
    .digest('base64url');
}

/**
 * The credential of `identity` under `key`. The ids must follow ID_PATTERN
 * (the driver's validateSpec checks them before it spawns); a token issued for
 * anything else would never verify.
 */
export function issueMemberCredential(key: Buffer, identity: CredentialIdentity): string {
  return `${identity.memberId}:${identity.clusterId}:${identity.networkPartitionId}:${macOf(key, identity)}`;
}

/** Checks `token` against `key` (one HMAC, compared in constant time); never throws. */
export function verifyMemberCredential(key: Buffer, token: unknown): Result<CredentialIdentity, CredentialRefusal> {
  if (token === undefined || token === null || token === '') return err('credential_missing');
  if (typeof token !== 'string' || token.length > MAX_CREDENTIAL_LENGTH) return err('credential_invalid');
  const parts = token.split(':');
  if (parts.length !== 4) return err('credential_invalid');
  const [memberId, clusterId, networkPartitionId, mac] = parts as [string, string, string, string];
  if (!isId(memberId) || !isId(clusterId) || !isId(networkPartitionId) || mac.length !== MAC_LENGTH) {
    return err('credential_invalid');
  }
  const identity = { memberId, clusterId, networkPartitionId };
  const expected = Buffer.from(macOf(key, identity), 'latin1');
  const given = Buffer.from(mac, 'latin1');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return err('credential_invalid');
  return ok(identity);
}

export interface MemberCredentialVerifierOptions {
  /**
   * Verified tokens remembered (least recently used forgotten first): above
   * the members one SP pair or broker serves (100 000), or every batch of a
   * forgotten member costs an HMAC and a forgetting. @default 200_000
   */
  maxCached?: number;
}

/**
 * verifyMemberCredential with a bounded cache of the tokens that verified
 * (least recently used forgotten first: RecentMap), keyed by the token text:
 * a steady agent costs one map lookup per batch, a new or forged token one
 * HMAC. Refused tokens are not remembered, so nobody without the key can grow
 * the cache.
 */
export class MemberCredentialVerifier {
  private readonly cache: RecentMap<string, CredentialIdentity>;

  constructor(
    private readonly key: Buffer,
    options: MemberCredentialVerifierOptions = {},
  ) {
    this.cache = new RecentMap(options.maxCached ?? 200_000);
  }

  verify(token: unknown): Result<CredentialIdentity, CredentialRefusal> {
    if (typeof token === 'string') {
      const known = this.cache.get(token);
      if (known) return ok(known);
    }
    const checked = verifyMemberCredential(this.key, token);
    if (checked.ok) this.cache.set(token as string, checked.value);
    return checked;
  }

  /** Tokens remembered. */
  get size(): number {
    return this.cache.size;
  }
}

/**
 * A member's broker account (README "Trust boundary"): user name its member
 * id, password its credential. Each member's agent therefore has its own
 * account, which the brokers bind to `instance/status/<memberId>/…`; aedes
 * checks the password with the member key, Mosquitto against a password file
 * the stack keeps in step with the registry.
 */
export function memberBrokerAccount(memberId: string, credential: string): { username: string; password: string } {
  return { username: memberId, password: credential };
}

/**
 * The member a broker login speaks for, when `password` is the credential of
 * the member named `username`; undefined for anything else. Never throws.
 */
export function verifyMemberAccount(
  verifier: Pick<MemberCredentialVerifier, 'verify'>,
  username: string | undefined,
  password: string,
): CredentialIdentity | undefined {
  if (username === undefined || !isId(username)) return undefined;
  const checked = verifier.verify(password);
  return checked.ok && checked.value.memberId === username ? checked.value : undefined;
}
