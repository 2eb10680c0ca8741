// Codec throughput: the floor under every ingest and messaging figure.
// Thrift batch decode (+ validation) is the "bare decode" baseline that the
// SP ingest benchmark compares itself with; envelope decode bounds what one
// MQTT subscriber can validate per second.
import { randomBytes } from 'node:crypto';
import {
  createEnvelope,
  decodeBatch,
  decodeEnvelope,
  encodeBatch,
  encodeEnvelope,
  MemberCredentialVerifier,
  verifyMemberCredential,
} from '@faultline/protocol';
import { signedBatch, testStat } from '@faultline/protocol/testing';

export const description = 'Thrift batch and MQTT envelope codecs, single core';

function timeLoop(seconds, fn) {
  let n = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  while (performance.now() < end) {
    fn();
    n += 1;
  }
  return n / ((performance.now() - start) / 1000);
}

export async function run() {
  const stat = (i) => testStat({ value: i % 97, timestamp: 1_700_000_000_000 + i });
  // A batch speaks for one member and carries its credential, as agents send them.
  const key = randomBytes(32);
  const batch = signedBatch(key, {
    agentId: 'php-m-1:1700000000000',
    sequence: 1,
    stats: Array.from({ length: 100 }, (_, i) => stat(i)),
  });
  const bytes = encodeBatch(batch);
  const batchesPerSec = timeLoop(2, () => {
    const r = decodeBatch(bytes);
    if (!r.ok) throw r.error;
  });
  // The SP verifies one credential per batch: a fresh token costs one HMAC, a known one a cache lookup.
  const hmacPerSec = timeLoop(1, () => {
    if (!verifyMemberCredential(key, batch.credential).ok) throw new Error('credential does not verify');
  });
  const verifier = new MemberCredentialVerifier(key);
  const cachedPerSec = timeLoop(1, () => {
    if (!verifier.verify(batch.credential).ok) throw new Error('credential does not verify');
  });
  const fault = encodeEnvelope(
    createEnvelope(
      'MemberFaultEvent',
      { ...stat(1), reason: 'timeout', lastStatAt: 1, silentForMs: 60_000 },
      { source: 'sp-1', epoch: 1, id: 'x' },
    ),
  );
  const envelopesPerSec = timeLoop(2, () => {
    const r = decodeEnvelope(fault);
    if (!r.ok) throw r.error;
  });
  const round = (x) => Math.round(x).toLocaleString('en-US');
  return [
    { name: 'thrift batch decode + validate (100 stats/batch)', value: round(batchesPerSec * 100), unit: 'stats/s' },
    { name: 'envelope decode + validate (MemberFaultEvent)', value: round(envelopesPerSec), unit: 'msgs/s' },
    { name: 'member credential verify, one HMAC-SHA256 (a new token)', value: round(hmacPerSec), unit: 'batches/s' },
    { name: 'member credential verify, cached (a steady agent)', value: round(cachedPerSec), unit: 'batches/s' },
  ];
}
