import { HEALTH_DESCRIPTIONS, type HealthStatBatch } from '../health.js';

/** A deterministic PRNG (mulberry32), so a failure replays. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const ID_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789-_.';

/**
 * A valid batch of 0–19 stats, mostly one member's (its ids repeat), now and
 * then another member's; with `oneMember`, 1–20 stats all of one member (an
 * agent's batch).
 */
export function randomBatch(random: () => number, { oneMember = false } = {}): HealthStatBatch {
  const char = (chars: string) => chars[Math.floor(random() * chars.length)] as string;
  // An id starts with a letter or digit.
  const id = (n: number) =>
    char(ID_CHARS.slice(0, 36)) + Array.from({ length: Math.floor(random() * n) }, () => char(ID_CHARS)).join('');
  const member = {
    clusterId: id(12),
    clusterInstanceId: id(12),
    networkPartitionId: id(8),
    partitionId: id(8),
    memberId: id(30),
  };
  const count = oneMember ? 1 + Math.floor(random() * 20) : Math.floor(random() * 20);
  const stats = Array.from({ length: count }, () => ({
    // Mostly one member's stats (the ids repeat), now and then another's.
    ...(oneMember || random() < 0.9 ? member : { ...member, memberId: id(30) }),
    healthDescription: HEALTH_DESCRIPTIONS[
      Math.floor(random() * HEALTH_DESCRIPTIONS.length)
    ] as (typeof HEALTH_DESCRIPTIONS)[number],
    value: Math.round(random() * 1e6) / 100,
    timestamp: Math.floor(random() * 2 ** 50),
  }));
  const batch: HealthStatBatch = {
    agentId: `${member.memberId}:${Math.floor(random() * 1e6)}`,
    sequence: 1 + Math.floor(random() * 2 ** 40),
    stats,
  };
  if (random() < 0.7) batch.credential = id(60);
  return batch;
}
