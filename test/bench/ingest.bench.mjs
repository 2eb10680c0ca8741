// Ingest: health stats per second through the active SP node, with every batch
// synced to the passive before the agent's acknowledgement, beside a bare
// Thrift decode + validation of the same batches in this process. Both SP
// nodes are real processes on this machine, so load generator, active and
// passive share its cores. The machine's speed drifts (the bare decode alone
// ranged 0.28–0.56 M stats/s within one process), so the two are measured in
// alternating windows and each round's share is pair ÷ bare of that round.
// Authentication is on: every batch speaks for one member and carries its
// credential (README "Agents → SP (Thrift)"), as agents send them.
import { decodeBatch, encodeBatch } from '@faultline/protocol';
import { signedBatch } from '@faultline/protocol/testing';
import { startPostgres, startSpPair, testSecret } from '@faultline/test-support';
import { encodeTemplate, RawThriftLane } from './raw-thrift.mjs';

export const description = 'events/s through the active with sync to the passive vs bare Thrift decode';

const STATS_PER_BATCH = 200;
const CONNECTIONS = 4;
/** Members per connection, taken in turn (each its own agent id and sequence). */
const MEMBERS_PER_CONNECTION = 50;
const ROUNDS = 5;
const PAIR_WINDOW_MS = 2_000;
const BARE_WINDOW_MS = 1_000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A batch of `memberId`'s, signed with its credential; stamped now (the SP refuses stats far from its clock). */
const batchOf = (key, memberId, sequence) =>
  signedBatch(key, {
    agentId: memberId,
    sequence,
    stats: Array.from({ length: STATS_PER_BATCH }, (_, i) => ({
      clusterId: 'php',
      clusterInstanceId: 'php-1',
      networkPartitionId: 'np-1',
      partitionId: 'p-1',
      memberId,
      healthDescription: ['load_average', 'memory_consumption', 'requests_in_flight'][i % 3],
      value: i % 100,
      timestamp: Date.now(),
    })),
  });

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function bareDecode(key, ms) {
  const bytes = encodeBatch(batchOf(key, 'php-m-bare', 1));
  let stats = 0;
  const started = performance.now();
  while (performance.now() - started < ms) {
    const result = decodeBatch(bytes);
    if (!result.ok) throw result.error;
    stats += result.value.stats.length;
  }
  return stats / ((performance.now() - started) / 1000);
}

async function throughPair() {
  const db = await startPostgres();
  const pair = await startSpPair({ databaseUrl: db.connectionString, logLevel: 'warn' });
  try {
    let active;
    let passive;
    for (;;) {
      const s = await Promise.all(pair.map((n) => n.status()));
      const i = s.findIndex((x) => x?.role === 'ACTIVE');
      if (i >= 0 && s[1 - i]?.following?.epoch === s[i].epoch) {
        active = pair[i];
        passive = pair[1 - i];
        break;
      }
      await sleep(50);
    }
    const key = testSecret(active.security.memberKeyFile);
    const lanes = Array.from(
      { length: CONNECTIONS },
      (_, c) =>
        new RawThriftLane(
          active.thriftPort,
          Array.from({ length: MEMBERS_PER_CONNECTION }, (_, m) =>
            encodeTemplate(batchOf(key, `php-m-${c * MEMBERS_PER_CONNECTION + m}`, 1)),
          ),
        ),
    );
    await Promise.all(lanes.map((lane) => lane.ready));
    const acked = () => lanes.reduce((n, lane) => n + lane.acked, 0);
    bareDecode(key, BARE_WINDOW_MS); // warm-up of both
    for (const lane of lanes) lane.start();
    await sleep(1_000);
    const rounds = [];
    for (let r = 0; r < ROUNDS; r++) {
      for (const lane of lanes) lane.start();
      await sleep(200); // back to full flight
      const from = { acks: acked(), at: performance.now() };
      await sleep(PAIR_WINDOW_MS);
      const rate = ((acked() - from.acks) * STATS_PER_BATCH) / ((performance.now() - from.at) / 1000);
      for (const lane of lanes) lane.pause();
      while (!lanes.every((lane) => lane.idle)) await sleep(5);
      rounds.push({ rate, bare: bareDecode(key, BARE_WINDOW_MS) });
    }
    for (const lane of lanes) lane.stop();
    const acks = acked();
    const replicated = lanes.reduce((n, lane) => n + lane.replicated, 0);
    const errors = lanes.reduce((n, lane) => n + lane.errors, 0);
    const passiveStatus = await passive.status();
    return {
      rate: median(rounds.map((r) => r.rate)),
      bare: median(rounds.map((r) => r.bare)),
      share: median(rounds.map((r) => r.rate / r.bare)),
      shares: rounds.map((r) => r.rate / r.bare),
      replicatedShare: replicated / acks,
      passiveApplied: passiveStatus?.counters.syncBatchesApplied ?? 0,
      acks,
      errors,
    };
  } finally {
    await Promise.all(pair.map((n) => n.stop()));
    await db.stop();
  }
}

export async function run() {
  const pair = await throughPair();
  const fmt = (x) => Math.round(x).toLocaleString('en-US');
  const pct = (x) => `${Math.round(x * 100)} %`;
  return [
    {
      name: `stats/s through the active, synced to the passive, authenticated (${CONNECTIONS} connections × 16 in flight, ${CONNECTIONS * MEMBERS_PER_CONNECTION} members, ${STATS_PER_BATCH} stats/batch signed by its member; medians of ${ROUNDS} rounds alternating with the baseline, share of bare per round: ${pair.shares.map(pct).join(', ')})`,
      value: fmt(pair.rate),
      unit: 'stats/s',
      baseline: { name: 'bare Thrift decode + validate, one core', value: fmt(pair.bare) },
      goal: '≥ 100,000 stats/s and ≥ 50 % of bare',
      met: pair.rate >= 100_000 && pair.share >= 0.5,
    },
    {
      name: 'median share of bare (pair ÷ bare in the same round)',
      value: pct(pair.share),
      unit: '',
      goal: '≥ 50 %',
      met: pair.share >= 0.5,
    },
    {
      name: 'acknowledged batches the passive held (replicated)',
      value: `${(pair.replicatedShare * 100).toFixed(1)} %`,
      unit: `of ${fmt(pair.acks)}`,
      goal: '100 %',
      met: pair.replicatedShare === 1,
    },
  ];
}
