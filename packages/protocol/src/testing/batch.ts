import type { HealthStatBatch } from '../health.js';
import { issueMemberCredential } from '../member-credential.js';

/**
 * `batch` with the credential of the member its first stat names, as that
 * member's agent sends it: what every test and benchmark that talks to a real
 * SP sends. An SP accepts it only if every stat is for that member.
 */
export function signedBatch(key: Buffer, batch: HealthStatBatch): HealthStatBatch {
  const first = batch.stats[0];
  if (!first) throw new Error('signedBatch: a batch without stats names no member');
  return { ...batch, credential: issueMemberCredential(key, first) };
}
