import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * The mutual authentication of the sync link (README "The SP pair's sync
 * link"), over the secret in `security.syncKeyFile` that both nodes hold:
 *
 *   passive → active   challenge     { nodeId: passive, nonce: N_s }
 *   active  → passive  auth          { nodeId: active, nonce: N_c, proof: HMAC(key, client facts) }
 *   passive → active   authenticated { proof: HMAC(key, server facts) }
 *
 * Each proof is HMAC-SHA256 over the JSON array
 * `["faultline-sync-v1", role, N_s, N_c, activeId, passiveId]`, role
 * `client` or `server`: each side proves the key over a nonce the other just
 * chose (no replay), the roles differ (a proof cannot be reflected back),
 * and the array form leaves no ambiguity in where one field ends. Only after
 * both proofs does the active send its `hello`.
 */
export const SYNC_PROTOCOL = 'faultline-sync-v1';

/** Random bytes in a nonce: 43 characters of base64url. */
const NONCE_BYTES = 32;
export const NONCE_PATTERN = /^[A-Za-z0-9_-]{43}$/;
/** A proof is an HMAC-SHA256: 43 characters of base64url. */
export const PROOF_PATTERN = /^[A-Za-z0-9_-]{43}$/;

export type SyncRole = 'client' | 'server';

/** What both proofs cover. */
export interface HandshakeFacts {
  /** The passive's nonce (its challenge). */
  serverNonce: string;
  /** The active's nonce (in its `auth`). */
  clientNonce: string;
  /** The active's node id, as it claims it. */
  clientNodeId: string;
  /** The passive's node id, as its challenge names it. */
  serverNodeId: string;
}

export function newNonce(): string {
  return randomBytes(NONCE_BYTES).toString('base64url');
}

export function syncProof(key: Buffer, role: SyncRole, facts: HandshakeFacts): string {
  return createHmac('sha256', key)
    .update(
      JSON.stringify([
        SYNC_PROTOCOL,
        role,
        facts.serverNonce,
        facts.clientNonce,
        facts.clientNodeId,
        facts.serverNodeId,
      ]),
    )
    .digest('base64url');
}

/** Whether `proof` is `role`'s proof of `key` over `facts`; compared in constant time. */
export function verifySyncProof(key: Buffer, role: SyncRole, facts: HandshakeFacts, proof: string): boolean {
  const expected = Buffer.from(syncProof(key, role, facts), 'utf8');
  const given = Buffer.from(proof, 'utf8');
  return given.length === expected.length && timingSafeEqual(given, expected);
}
