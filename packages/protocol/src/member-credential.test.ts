import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  issueMemberCredential,
  MAX_CREDENTIAL_LENGTH,
  MemberCredentialVerifier,
  verifyMemberCredential,
} from './member-credential.js';
import { TEST_MEMBER_KEY as key, testMember } from './testing/index.js';

const member = testMember();
const identity = {
  memberId: member.memberId,
  clusterId: member.clusterId,
  networkPartitionId: member.networkPartitionId,
};

describe('member credential', () => {
  it('is <memberId>:<clusterId>:<networkPartitionId>:<base64url HMAC-SHA256 of the context and the ids>', () => {
    const token = issueMemberCredential(key, member);
    const mac = createHmac('sha256', key).update('faultline-member-v1\nphp-m-1\nphp\nnp-1').digest('base64url');
    expect(token).toBe(`php-m-1:php:np-1:${mac}`);
    expect(verifyMemberCredential(key, token)).toEqual({ ok: true, value: identity });
    // Bound to the three ids only: the rest of the member's identity is not in it.
    const elsewhere = { ...member, partitionId: 'p-2', clusterInstanceId: 'php-2' };
    expect(issueMemberCredential(key, elsewhere)).toBe(token);
  });

  it('refuses a missing, forged, re-targeted or malformed token', () => {
    const token = issueMemberCredential(key, member);
    const mac = token.split(':')[3] as string;
    expect(verifyMemberCredential(key, undefined)).toEqual({ ok: false, error: 'credential_missing' });
    expect(verifyMemberCredential(key, null)).toEqual({ ok: false, error: 'credential_missing' });
    expect(verifyMemberCredential(key, '')).toEqual({ ok: false, error: 'credential_missing' });
    const invalid = [
      // Another member's ids with this member's MAC.
      `php-victim:php:np-1:${mac}`,
      `php-m-1:other:np-1:${mac}`,
      `php-m-1:php:np-2:${mac}`,
      // Another key.
      issueMemberCredential(Buffer.from('another key of at least thirty-two characters'), member),
      `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`,
      `${token}:extra`,
      token.slice(0, -1),
      'php-m-1:php:np-1',
      `../x:php:np-1:${mac}`,
      'x'.repeat(MAX_CREDENTIAL_LENGTH + 1),
      42,
      { token },
    ];
    for (const bad of invalid)
      expect(verifyMemberCredential(key, bad), String(bad)).toEqual({ ok: false, error: 'credential_invalid' });
  });

  it('the verifier remembers verified tokens only, least recently used forgotten first', () => {
    const verifier = new MemberCredentialVerifier(key, { maxCached: 2 });
    const a = issueMemberCredential(key, { ...identity, memberId: 'a' });
    const b = issueMemberCredential(key, { ...identity, memberId: 'b' });
    const c = issueMemberCredential(key, { ...identity, memberId: 'c' });
    for (let i = 0; i < 100; i++) expect(verifier.verify(`x:y:z:${'A'.repeat(43)}`).ok).toBe(false);
    expect(verifier.size).toBe(0);
    expect(verifier.verify(a)).toMatchObject({ ok: true, value: { memberId: 'a' } });
    expect(verifier.verify(b)).toMatchObject({ ok: true, value: { memberId: 'b' } });
    expect(verifier.verify(a).ok).toBe(true); // a is now the most recent
    expect(verifier.verify(c).ok).toBe(true); // b goes
    expect(verifier.size).toBe(2);
    const other = new MemberCredentialVerifier(Buffer.from('another key of at least thirty-two characters'));
    expect(other.verify(a)).toEqual({ ok: false, error: 'credential_invalid' });
  });
});
