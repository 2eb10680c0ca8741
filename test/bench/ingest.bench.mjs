// Ingest: health stats per second through the active SP node, with every batch
// synced to the passive before the agent's acknowledgement, with authentication
// on (every batch speaks for one member and carries its credential, README
// "Agents → SP (Thrift)", and both nodes check it), beside two baselines of the
// same run:
//  - the same pair with the per-batch trust work skipped (unchecked-sp.mjs:
//    the same main.js, config and processes, its nodes created with
//    `unsafeSkipAdmission`, which no config key or variable can set): what
//    authentication costs is authenticated ÷ this, the goal ≥ 90 %;
//  - a bare Thrift decode + validation of the same batches in this process.
// All SP nodes are real processes on this machine, so load generator, active
// and passive share its cores. The machine's speed drifts (the bare decode
// alone has ranged from 0.28 to 2.6 M stats/s within one process, and other work on the
// machine takes cores for seconds at a time), so the three are measured in
// short alternating windows (the two pairs in turn, A B / B A, then the bare
// decode) and each ratio is taken within a round, medians over rounds. Beside
// throughput, the CPU time the two SP processes of each pair spent per stat in
// its windows (from /proc): what the checks cost, which load elsewhere on the
// machine changes far less than it changes throughput. The active's own CPU
// per stat beside the bare decode's (both in CPU time) tells how far the share
// of bare decode can go while the active is the bound: its process does that
// very decode and everything else a batch takes.
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { connectHealthStat, decodeBatch, encodeBatch, encodeCheckedBatch, toBatchWire } from '@faultline/protocol';
import { signedBatch } from '@faultline/protocol/testing';
import { startPostgres, startSpPair, testSecret } from '@faultline/test-support';
import { encodeTemplate, RawThriftLane } from './raw-thrift.mjs';

export const description =
  'events/s through the active with sync to the passive, authenticated vs the same pair unchecked vs bare Thrift decode';

const STATS_PER_BATCH = 200;
const CONNECTIONS = 4;
/** Members per connection, taken in turn (each its own agent id and sequence). */
const MEMBERS_PER_CONNECTION = 50;
const ROUNDS = 21;
/** Windows of each pair before the rounds (see measure()). */
const WARM_UP_WINDOWS = 6;
const PAIR_WINDOW_MS = 700;
const BARE_WINDOW_MS = 400;
/** Goals of the security issue: authentication keeps this share of the unchecked pair, and this rate. */
const GOAL_RATIO = 0.9;
const GOAL_RATE = 100_000;
/** Issue "Performance": the synced pair keeps this share of the same-run bare decode (median of the rounds). */
const GOAL_SHARE_OF_BARE = 0.8;
const UNCHECKED_SP = fileURLToPath(new URL('./unchecked-sp.mjs', import.meta.url));
const FLOOR_PAIR = fileURLToPath(new URL('./floor-pair.mjs', import.meta.url));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const statsOf = (memberId) =>
  Array.from({ length: STATS_PER_BATCH }, (_, i) => ({
    clusterId: 'php',
    clusterInstanceId: 'php-1',
    networkPartitionId: 'np-1',
    partitionId: 'p-1',
    memberId,
    healthDescription: ['load_average', 'memory_consumption', 'requests_in_flight'][i % 3],
    value: i % 100,
    timestamp: Date.now(),
  }));

/** A batch of `memberId`'s, signed with its credential; stamped now (the SP refuses stats far from its clock). */
const batchOf = (key, memberId, sequence) =>
  signedBatch(key, { agentId: memberId, sequence, stats: statsOf(memberId) });

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** The bare decode's stats/s over `ms` of wall time, and the CPU µs this process spent per stat meanwhile. */
function bareDecode(key, ms) {
  const bytes = encodeBatch(batchOf(key, 'php-m-bare', 1));
  let stats = 0;
  const started = performance.now();
  const cpu = process.cpuUsage();
  while (performance.now() - started < ms) {
    const result = decodeBatch(bytes);
    if (!result.ok) throw result.error;
    stats += result.value.stats.length;
  }
  const used = process.cpuUsage(cpu);
  return { rate: stats / ((performance.now() - started) / 1000), cpuPerStat: (used.user + used.system) / stats };
}

/** A pair on its own database of the same server; `unchecked`: its processes load unchecked-sp.mjs. */
async function startPair(databaseUrl, unchecked) {
  // Node's own variable, read by the pair's processes as they are spawned (startSpPair passes this
  // process's environment on); set only while this pair starts. No build reads it.
  const env = process.env;
  const before = env.NODE_OPTIONS;
  if (unchecked) env.NODE_OPTIONS = `${before ?? ''} --import=${pathToFileURL(UNCHECKED_SP).href}`.trim();
  let nodes;
  try {
    nodes = await startSpPair({ databaseUrl, logLevel: 'warn' });
  } finally {
    if (before === undefined) delete env.NODE_OPTIONS;
    else env.NODE_OPTIONS = before;
  }
  // Measured once the passive follows the active's epoch.
  for (;;) {
    const s = await Promise.all(nodes.map((n) => n.status()));
    const i = s.findIndex((x) => x?.role === 'ACTIVE');
    if (i >= 0 && s[1 - i]?.following?.epoch === s[i].epoch) {
      const active = nodes[i];
      return { nodes, active, key: testSecret(active.security.memberKeyFile) };
    }
    await sleep(50);
  }
}

/** One process of the floor pair (floor-pair.mjs), once it listens: its pid and port. */
function floorProcess(args) {
  const child = spawn(process.execPath, [FLOOR_PAIR, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`floor pair ${args[0]} exited with ${code}`)));
    child.stdout.once('data', (data) => resolve({ child, pid: child.pid, thriftPort: Number(String(data).trim()) }));
  });
}

/**
 * The floor: two processes that move each batch as the pair must (the call
 * in, its checked form's size to the passive and back, the reply out) and do
 * nothing else, driven by the same lanes. What no pair can beat on this
 * machine with this load generator.
 */
async function startFloor(key) {
  const passive = await floorProcess(['passive']);
  const forwardBytes = encodeCheckedBatch(batchOf(key, 'php-m-0', 1)).length;
  const active = await floorProcess(['active', String(passive.thriftPort), String(forwardBytes)]);
  const stop = async (p) => {
    p.child.removeAllListeners('exit');
    if (p.child.exitCode === null && p.child.signalCode === null) {
      const exited = new Promise((resolve) => p.child.once('exit', resolve));
      p.child.kill('SIGKILL');
      await exited;
    }
  };
  return {
    nodes: [
      { pid: active.pid, stop: () => stop(active) },
      { pid: passive.pid, stop: () => stop(passive) },
    ],
    active,
  };
}

/**
 * What the pair answers to one batch of member php-m-x signed with php-m-y's
 * credential: the authenticated pair must refuse it, the unchecked one take
 * it. Either way round, the comparison would be meaningless.
 */
async function forgedBatchAnswer(pair) {
  const connection = connectHealthStat('127.0.0.1', pair.active.thriftPort);
  try {
    await connection.ready;
    const credential = batchOf(pair.key, 'php-m-y', 1).credential;
    await connection.client.publish(
      toBatchWire({ agentId: 'php-m-x', sequence: 1, stats: statsOf('php-m-x'), credential }),
    );
    return 'admitted';
  } catch (error) {
    return `refused (${String(error?.message ?? error).split(':')[0]})`;
  } finally {
    connection.close();
  }
}

function lanesOf(pair) {
  return Array.from(
    { length: CONNECTIONS },
    (_, c) =>
      new RawThriftLane(
        pair.active.thriftPort,
        Array.from({ length: MEMBERS_PER_CONNECTION }, (_, m) =>
          encodeTemplate(batchOf(pair.key, `php-m-${c * MEMBERS_PER_CONNECTION + m}`, 1)),
        ),
      ),
  );
}

const acked = (lanes) => lanes.reduce((n, lane) => n + lane.acked, 0);

/** Seconds of CPU (user + system) the pair's processes have used; NaN where /proc is not there. */
const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' })) || 100;
  } catch {
    return 100;
  }
})();
function cpuSecondsOf(node) {
  try {
    const stat = readFileSync(`/proc/${node.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS; // utime, stime
  } catch {
    return Number.NaN;
  }
}
/** Seconds of CPU the pair's processes have used, and its active's alone. */
function cpuSeconds(pair) {
  return { pair: pair.nodes.reduce((n, node) => n + cpuSecondsOf(node), 0), active: cpuSecondsOf(pair.active) };
}

/**
 * One window of this pair at full flight (its lanes idle before and after):
 * the stats/s its active acknowledged, and the CPU µs its two processes (and its active alone) spent per stat.
 */
async function window(pair, lanes) {
  for (const lane of lanes) lane.start();
  await sleep(100); // up to full flight
  const from = { acks: acked(lanes), at: performance.now(), cpu: cpuSeconds(pair), own: process.cpuUsage() };
  await sleep(PAIR_WINDOW_MS);
  const stats = (acked(lanes) - from.acks) * STATS_PER_BATCH;
  const rate = stats / ((performance.now() - from.at) / 1000);
  const cpu = cpuSeconds(pair);
  const own = process.cpuUsage(from.own);
  const cpuPerStat = ((cpu.pair - from.cpu.pair) * 1e6) / stats;
  const activeCpuPerStat = ((cpu.active - from.cpu.active) * 1e6) / stats;
  // This process only drives the lanes meanwhile: the load generator's CPU per stat.
  const loadCpuPerStat = (own.user + own.system) / stats;
  for (const lane of lanes) lane.pause();
  while (!lanes.every((lane) => lane.idle)) await sleep(5);
  return { rate, cpuPerStat, activeCpuPerStat, loadCpuPerStat };
}

function totals(lanes) {
  const acks = acked(lanes);
  return {
    acks,
    replicatedShare: acks === 0 ? 0 : lanes.reduce((n, lane) => n + lane.replicated, 0) / acks,
    errors: lanes.reduce((n, lane) => n + lane.errors, 0),
  };
}

async function measure() {
  const db = await startPostgres();
  const other = await startPostgres({ databaseUrl: db.connectionString });
  const pairs = [];
  try {
    const checked = await startPair(db.connectionString, false);
    pairs.push(checked);
    const unchecked = await startPair(other.connectionString, true);
    pairs.push(unchecked);
    const forged = { checked: await forgedBatchAnswer(checked), unchecked: await forgedBatchAnswer(unchecked) };
    if (forged.checked === 'admitted' || forged.unchecked !== 'admitted')
      throw new Error(
        `ingest bench: a forged batch was ${forged.checked} by the authenticated pair, ${forged.unchecked} by the unchecked one`,
      );
    const floor = { ...(await startFloor(checked.key)), key: checked.key };
    pairs.push(floor);
    const pairOf = { checked, unchecked, floor };
    const lanes = { checked: lanesOf(checked), unchecked: lanesOf(unchecked), floor: lanesOf(floor) };
    const all = Object.values(lanes).flat();
    await Promise.all(all.map((lane) => lane.ready));
    // Warm-up of all four. A node's first seconds of load run in V8's lower tiers and with a young heap still
    // growing: its active spent 0.7–1.5 µs a stat in the first windows and 0.2 from the third to the fifth
    // on, either pair; two windows left the first rounds to that and the ratio between the pairs to which
    // of them settled first.
    bareDecode(checked.key, BARE_WINDOW_MS);
    for (let i = 0; i < WARM_UP_WINDOWS; i++)
      for (const which of Object.keys(pairOf)) await window(pairOf[which], lanes[which]);
    const rounds = [];
    for (let r = 0; r < ROUNDS; r++) {
      const round = {};
      // A B F, then F B A: no pair always runs right after the bare decode or the same other pair.
      for (const which of r % 2 === 0 ? ['checked', 'unchecked', 'floor'] : ['floor', 'unchecked', 'checked']) {
        const measured = await window(pairOf[which], lanes[which]);
        round[which] = measured.rate;
        round[`${which}Cpu`] = measured.cpuPerStat;
        round[`${which}ActiveCpu`] = measured.activeCpuPerStat;
        round[`${which}LoadCpu`] = measured.loadCpuPerStat;
      }
      const bare = bareDecode(checked.key, BARE_WINDOW_MS);
      round.bare = bare.rate;
      round.bareCpu = bare.cpuPerStat;
      rounds.push(round);
    }
    for (const lane of all) lane.stop();
    return {
      rounds,
      forged,
      checked: totals(lanes.checked),
      unchecked: totals(lanes.unchecked),
    };
  } finally {
    await Promise.all(pairs.flatMap((pair) => pair.nodes.map((n) => n.stop())));
    await other.stop();
    await db.stop();
  }
}

export async function run() {
  const { rounds, forged, checked, unchecked } = await measure();
  const fmt = (x) => Math.round(x).toLocaleString('en-US');
  const pct = (x) => `${Math.round(x * 100)} %`;
  const rate = { checked: median(rounds.map((r) => r.checked)), unchecked: median(rounds.map((r) => r.unchecked)) };
  const ratios = rounds.map((r) => r.checked / r.unchecked);
  const ratio = median(ratios);
  const shares = {
    checked: rounds.map((r) => r.checked / r.bare),
    unchecked: rounds.map((r) => r.unchecked / r.bare),
  };
  const share = { checked: median(shares.checked), unchecked: median(shares.unchecked) };
  const bare = median(rounds.map((r) => r.bare));
  const cpu = {
    checked: median(rounds.map((r) => r.checkedCpu)),
    unchecked: median(rounds.map((r) => r.uncheckedCpu)),
  };
  const cpuRatio = median(rounds.map((r) => r.checkedCpu / r.uncheckedCpu));
  // What the active's work per stat allows, read in CPU time at both ends (so neither the machine's other load
  // nor how busy the active was in its window moves it): the bare decode's CPU per stat ÷ the active's, each round's
  // own. The active's process does that decode and everything else a batch takes; both sides count their processes'
  // every thread (the collector's helpers too).
  const activeCpu = median(rounds.map((r) => r.checkedActiveCpu));
  const bareCpu = median(rounds.map((r) => r.bareCpu));
  const ceilings = rounds.map((r) => r.bareCpu / r.checkedActiveCpu);
  const us = (x) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
  // The floor: the same lanes into two processes that only move the bytes (floor-pair.mjs). Its share of the
  // bare decode is what no pair reaches on this machine with this load generator. What is left of the cores at
  // the goal's rate, once the load generator and that movement of bytes have theirs, is what the SP's own work on
  // both nodes may cost per stat (were every core busy); beside it, what it costs (the pair's CPU less the floor's).
  const floorShares = rounds.map((r) => r.floor / r.bare);
  const floorCpu = median(rounds.map((r) => r.floorCpu));
  const loadCpu = {
    checked: median(rounds.map((r) => r.checkedLoadCpu)),
    floor: median(rounds.map((r) => r.floorLoadCpu)),
  };
  const cores = availableParallelism();
  const budgets = rounds.map((r) => (cores * 1e6) / (GOAL_SHARE_OF_BARE * r.bare) - r.floorCpu - r.floorLoadCpu);
  const spWork = rounds.map((r) => r.checkedCpu - r.floorCpu);
  const load = `${CONNECTIONS} connections × 16 in flight, ${CONNECTIONS * MEMBERS_PER_CONNECTION} members, ${STATS_PER_BATCH} stats/batch signed by its member`;
  const uncheckedName = 'the same pair, per-batch trust checks skipped';
  return [
    {
      name: `stats/s through the active, synced to the passive, authenticated (${load}; medians of ${ROUNDS} rounds, each the two pairs in turn and the bare decode; a forged batch: ${forged.checked})`,
      value: fmt(rate.checked),
      unit: 'stats/s',
      baseline: { name: `${uncheckedName} (a forged batch: ${forged.unchecked})`, value: fmt(rate.unchecked) },
      goal: `≥ ${fmt(GOAL_RATE)} stats/s`,
      met: rate.checked >= GOAL_RATE,
    },
    {
      name: `authenticated ÷ ${uncheckedName}, median of the rounds' ratios (per round: ${ratios.map(pct).join(', ')})`,
      value: pct(ratio),
      unit: '',
      goal: `≥ ${pct(GOAL_RATIO)}`,
      met: ratio >= GOAL_RATIO,
      // The JSON keeps each round (stats/s and CPU µs per stat of each pair, bare stats/s); the table does not.
      rounds: rounds.map((r) => ({
        checked: Math.round(r.checked),
        unchecked: Math.round(r.unchecked),
        bare: Math.round(r.bare),
        bareCpuUs: Number(r.bareCpu.toFixed(3)),
        checkedCpuUs: Number(r.checkedCpu.toFixed(3)),
        checkedActiveCpuUs: Number(r.checkedActiveCpu.toFixed(3)),
        uncheckedCpuUs: Number(r.uncheckedCpu.toFixed(3)),
        floor: Math.round(r.floor),
        floorCpuUs: Number(r.floorCpu.toFixed(3)),
        checkedLoadCpuUs: Number(r.checkedLoadCpu.toFixed(3)),
        floorLoadCpuUs: Number(r.floorLoadCpu.toFixed(3)),
      })),
    },
    {
      name: `share of bare decode, authenticated (pair ÷ bare in the same round: ${shares.checked.map(pct).join(', ')})`,
      value: pct(share.checked),
      unit: '',
      baseline: {
        name: `${uncheckedName} (${shares.unchecked.map(pct).join(', ')})`,
        value: pct(share.unchecked),
      },
      goal: `≥ ${pct(GOAL_SHARE_OF_BARE)}`,
      met: share.checked >= GOAL_SHARE_OF_BARE,
    },
    {
      name: `CPU of the pair (active + passive processes) per stat in its windows, authenticated (authenticated ÷ unchecked, median of the rounds: ${Number.isFinite(cpuRatio) ? pct(cpuRatio) : 'n/a'})`,
      value: us(cpu.checked),
      unit: 'µs',
      baseline: { name: uncheckedName, value: us(cpu.unchecked) },
    },
    {
      name: `CPU per stat of the bare decode ÷ the active's, authenticated: what share of bare decode the active's work per stat allows, were its process given a whole core (the active ${us(activeCpu)} µs, the bare decode ${us(bareCpu)} µs, medians; per round: ${ceilings.map((x) => (Number.isFinite(x) ? pct(x) : 'n/a')).join(', ')})`,
      value: Number.isFinite(median(ceilings)) ? pct(median(ceilings)) : 'n/a',
      unit: '',
    },
    {
      name: `share of bare decode a pair reaches that only moves the bytes: the same lanes into two processes that forward each call's checked-form size to the other and answer it, nothing decoded (test/bench/floor-pair.mjs; per round: ${floorShares.map(pct).join(', ')}; its two processes ${us(floorCpu)} µs a stat)`,
      value: pct(median(floorShares)),
      unit: '',
    },
    {
      name: `the SP's own work per stat on both nodes (the authenticated pair's CPU less the floor pair's), against what ${cores} cores leave it at ${pct(GOAL_SHARE_OF_BARE)} of bare decode once the load generator and the floor have theirs (medians of the rounds; the load generator, this process, ${us(loadCpu.floor)} µs a stat into the floor, ${us(loadCpu.checked)} into the authenticated pair)`,
      value: us(median(spWork)),
      unit: 'µs',
      baseline: { name: 'what is left for it', value: us(median(budgets)) },
    },
    {
      name: 'bare Thrift decode + validate, one core (median of the rounds)',
      value: fmt(bare),
      unit: 'stats/s',
    },
    {
      name: `acknowledged batches the passive held (replicated), authenticated (agent call errors: ${checked.errors}; unchecked pair: ${(unchecked.replicatedShare * 100).toFixed(1)} % of ${fmt(unchecked.acks)})`,
      value: `${(checked.replicatedShare * 100).toFixed(1)} %`,
      unit: `of ${fmt(checked.acks)}`,
      goal: '100 %',
      met: checked.replicatedShare === 1 && checked.errors === 0,
    },
  ];
}
