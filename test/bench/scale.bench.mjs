// Scale: one SP pair (CEP engine, default timings) watching N members (100 000
// by default, `--members N`) that each report their three stats every 15 s
// (the Stratos agent's interval), the outputs going through its durable
// publisher to a real broker pair with the autoscaler's subscriber present (its own
// process at nice 10, output-subscriber.mjs: on a deployment it has a machine of its own).
// The load comes from a child process of its own (member-load.mjs: frames
// encoded and signed once per member, patched per send), so its CPU is
// measured apart. In turn:
//  1. steady state: CPU, peak RSS and event-loop delay of the active, the
//     passive following throughout under the same epoch;
//  2. relink: kill -9 of the passive and its restart: the active's longest
//     event-loop stall meanwhile (the snapshot it sends), and the time until
//     the passive follows with the snapshot applied;
//  3. kill -9 of the active: time until the other node acknowledges a probe
//     agent's batch, and whether every stat acknowledged across the kill is in
//     the new active's state; then the killed node rejoins (a second relink).
// Every figure is measured on this machine with the pair, both brokers,
// PostgreSQL, the load and the benchmark sharing its cores.
import { fork } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { DEFAULTS } from '@faultline/core';
import {
  brokerEndpoints,
  startBrokerPair,
  startPostgres,
  startSpPair,
  TEST_CREDENTIALS,
  testSecret,
} from '@faultline/test-support';
import { probeAgent } from './probe-agent.mjs';

export const description =
  'one SP pair watching N members (default 100 000) at a 15 s stat interval: CPU, RSS, event-loop lag, relink, kill -9';

const DEFAULT_MEMBERS = 100_000;
const AGENTS = 100; // connections, each carrying the batches of N ÷ 100 members (one signed batch per member)
const INTERVAL_MS = DEFAULTS.statIntervalMs;
/**
 * The steady state is measured once every member's window is full (windowMs of samples: 4 per metric at 15 s), as a
 * pair that has run for a while holds them: before that, a summary tick, the state and its snapshot are smaller.
 */
const WARMUP_MS = DEFAULTS.windowMs + 5_000;
/**
 * A minute and a window: the active's event-loop p99 is read over its last 12 whole 5 s windows
 * (`minuteP99DelayMs`), every one of them inside the measurement.
 */
const MEASURE_MS = 65_000;
const SAMPLE_MS = 1_000;
const RELINK_POLL_MS = 200;
/** The relink is watched this much longer after the passive follows. */
const RELINK_TAIL_MS = 1_000;
/** The active's answers are timed this long before the kill too: the same measure without a relink. */
const RELINK_BASELINE_MS = 2_000;
const RELINK_TIMEOUT_MS = 90_000;
/** How long a phase waits for the pair to be steady (one active, the other following it, the link ready). */
const SETTLE_MS = 60_000;
const LEASE_MS = DEFAULTS.heartbeatIntervalMs * DEFAULTS.heartbeatMaxRetry;
const GOALS = {
  cpu: 0.6,
  rssMb: 1024,
  loopP99Ms: 20,
  relinkStallMs: 100,
  relinkMs: 10_000,
  takeoverMs: LEASE_MS + 500,
  delivered: 0.99,
};
const LOAD_MAIN = new URL('./member-load.mjs', import.meta.url);
const SUBSCRIBER_MAIN = new URL('./output-subscriber.mjs', import.meta.url);
/** The autoscaler's subscriber runs at this nice value: on a deployment it has a machine of its own. */
const SUBSCRIBER_NICE = 10;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const int = (x) => Math.round(x).toLocaleString('en-US');
const ticks = () => 100; // USER_HZ on Linux
/** A process's /proc stat: its name and the fields after it (field 3, the state, at index 0). */
const procStat = (pid) => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const close = stat.lastIndexOf(') '); // the name may hold ") " itself
  return { name: stat.slice(stat.indexOf('(') + 1, close), fields: stat.slice(close + 2).split(' ') };
};
/** User + system CPU seconds from `procStat` fields. */
const cpuOf = (fields) => (Number(fields[11]) + Number(fields[12])) / ticks();
const cpuSeconds = (pid) => cpuOf(procStat(pid).fields);
/** Major page faults of a process so far: each a wait for the disk (a page of code or data read back). */
const majorFaults = (pid) => Number(procStat(pid).fields[9]);
const rssMb = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;
/**
 * How long a process's event-loop thread (its main thread) has run and waited on a run queue, ready while another
 * thread had every core (ms, /proc schedstat); undefined when unreadable.
 */
const schedMs = (pid) =>
  tryOr(() => {
    const [run, wait] = readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').split(' ').map(Number);
    return { run: run / 1e6, wait: wait / 1e6 };
  }, undefined);
/** Per second of `wallS`: how long the thread ran and waited between two `schedMs` reads. */
const schedRate = (a, b, wallS) =>
  a && b ? { run: (b.run - a.run) / wallS, wait: (b.wait - a.wait) / wallS } : undefined;
/** CPU seconds of each of the kernel's own threads (a process with no command line), by pid: `{ name, s }`. */
const kernelThreads = () => {
  const threads = new Map();
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    tryOr(() => {
      if (readFileSync(`/proc/${pid}/cmdline`).length > 0) return;
      const { name, fields } = procStat(pid);
      threads.set(pid, {
        name: name.replace(/[/:].*$/, ''),
        s: cpuOf(fields),
      });
    }, undefined);
  }
  return threads;
};
/** The kernel's threads' CPU between two `kernelThreads` reads, per second of `wallS`: in all, and the busiest name's. */
const kernelCpu = (a, b, wallS) => {
  const byName = new Map();
  for (const [pid, t] of b) byName.set(t.name, (byName.get(t.name) ?? 0) + (t.s - (a.get(pid)?.s ?? t.s)) / wallS);
  const [top, topShare] = [...byName].sort((x, y) => y[1] - x[1])[0] ?? ['–', 0];
  return { all: [...byName.values()].reduce((x, y) => x + y, 0), top, topShare };
};
/** Busy and total jiffies of the whole machine (every core), from /proc/stat. */
const machineJiffies = () => {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - f[3] - (f[4] ?? 0), total };
};
const tryOr = (f, fallback) => {
  try {
    return f();
  } catch {
    return fallback;
  }
};
const reasonOf = (error) =>
  String(error?.message ?? error)
    .split('\n')[0]
    .slice(0, 200);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
/** A figure that could not be measured: says why, and misses its goal. */
const notMeasured = (name, unit, goal, reason) => ({
  name: `${name}: not measured (${reason})`,
  value: '–',
  unit,
  goal,
  met: false,
});

/** The load generator's child process; `report()` asks it for its counters. */
/**
 * A child process of the benchmark that answers IPC messages `{ t }` with `{ t: answer }` (or
 * `{ t: 'error', message }`): `ask(t, answer)`, `stop()`, its `pid`. `start` is the first message,
 * answered with `started`.
 */
async function forkWorker(main, label, start) {
  const child = fork(main, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const waiting = new Map();
  let failure;
  child.on('message', (message) => {
    if (message.t === 'error') failure = message.message;
    const resolve = waiting.get(message.t);
    waiting.delete(message.t);
    resolve?.(message);
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const ask = (t, answer, timeoutMs = 10_000) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${label}: no ${answer} within ${timeoutMs} ms`)), timeoutMs);
      waiting.set(answer, (message) => {
        clearTimeout(timer);
        resolve(message);
      });
      waiting.set('error', (message) => {
        clearTimeout(timer);
        reject(new Error(`${label}: ${message.message}`));
      });
      if (child.connected) child.send({ t });
      else reject(new Error(`${label} exited (${failure ?? 'no error reported'})`));
    });
  const started = new Promise((resolve, reject) => {
    waiting.set('started', resolve);
    waiting.set('error', (message) => reject(new Error(`${label}: ${message.message}`)));
    void exited.then(() => reject(new Error(`${label} exited before it started`)));
  });
  child.send({ t: 'start', ...start });
  const first = await started;
  return {
    pid: child.pid,
    first,
    ask,
    stop: async () => {
      if (!child.connected) return undefined;
      const final = await ask('stop', 'stopped').catch(() => undefined);
      await Promise.race([exited, sleep(2_000)]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      return final;
    },
  };
}

async function startLoad({ ports, activeIndex, members, key }) {
  const worker = await forkWorker(LOAD_MAIN, 'load generator', {
    ports,
    activeIndex,
    members,
    connections: AGENTS,
    intervalMs: INTERVAL_MS,
    key,
  });
  return {
    pid: worker.pid,
    encodeMs: worker.first.encodeMs,
    report: async () => (await worker.ask('report', 'report')).report,
    stop: async () => (await worker.stop())?.report,
  };
}

/** The autoscaler's subscriber (output-subscriber.mjs) at nice 10: what it received, its pid. */
async function startOutputSubscriber(brokers) {
  const worker = await forkWorker(SUBSCRIBER_MAIN, 'output subscriber', {
    brokers,
    credentials: TEST_CREDENTIALS.autoscaler,
  });
  os.setPriority(worker.pid, SUBSCRIBER_NICE);
  return {
    pid: worker.pid,
    received: async () => (await worker.ask('report', 'report')).received,
    stop: worker.stop,
  };
}

/** Waits until one node is active, the other follows it under its epoch and the link is ready; undefined on timeout. */
async function steady(pair, timeoutMs) {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    const s = await Promise.all(pair.map((n) => n.status()));
    const i = s.findIndex((x) => x?.role === 'ACTIVE');
    if (i >= 0 && s[1 - i]?.following?.epoch === s[i].epoch && s[i].passive.link === 'ready') {
      return { active: pair[i], passive: pair[1 - i], epoch: s[i].epoch };
    }
    await sleep(100);
  }
  return undefined;
}

const warningsOf = (node, since = 0) =>
  node.logs().filter((r) => (r.level === 'warn' || r.level === 'error') && Date.parse(r.timestamp) >= since);
const snapshotsApplied = (node) => node.logs().filter((r) => r.event === 'sp.snapshot_applied');

/** What is wrong with the pair, judged from one read of both statuses; undefined when nothing is. */
function breakOf(sa, sp, epoch) {
  if (sa && (sa.role !== 'ACTIVE' || sa.epoch !== epoch)) return `the active is ${sa.role} under epoch ${sa.epoch}`;
  if (sp && sp.following?.epoch !== epoch) {
    return `the passive follows ${sp.following ? `epoch ${sp.following.epoch}` : 'nothing'}${sp.role === 'ACTIVE' ? ' (it is active)' : ''}`;
  }
  if (sa && sa.passive.link !== 'ready') return `the active's link to the passive is ${sa.passive.link}`;
  return undefined;
}

/** Reads both statuses every second for `ms` (the warm-up): the breaks seen, with when. */
async function watch({ active, passive, epoch, ms, since, trace }) {
  const breaks = [];
  const end = performance.now() + ms;
  while (performance.now() < end) {
    const [sa, sp] = await Promise.all([active.status(), passive.status()]);
    trace.push(sa ? `${Math.round(sa.eventLoop.maxDelayMs)}/${Math.round(sa.eventLoop.p99DelayMs)}` : '?');
    const why = breakOf(sa, sp, epoch);
    if (why) breaks.push({ at: performance.now() - since, why });
    await sleep(SAMPLE_MS);
  }
  return breaks;
}

/** The pair's warnings and errors in time order, relative to `since` (wall ms): for the console and the report. */
function printTimeline(pair, since) {
  const records = pair
    .flatMap((node) => tryOr(() => warningsOf(node), []))
    .map((r) => ({ ...r, at: Date.parse(r.timestamp) - since }))
    .sort((a, b) => a.at - b.at);
  if (records.length === 0) return;
  const counts = new Map();
  for (const r of records) {
    const key = `${r.service} ${r.event ?? r.message}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  console.log(
    `  scale: the pair's warnings and errors (seconds since the load started): ${[...counts].map(([k, c]) => `${k} ×${c}`).join(', ')}`,
  );
  for (const r of records.slice(0, 40)) {
    const detail = r.reason ?? r.detail ?? r.error ?? (r.stalledMs !== undefined ? `stalled ${r.stalledMs} ms` : '');
    console.log(
      `    +${(r.at / 1000).toFixed(1)} s ${r.service} ${r.level} ${r.event ?? ''}: ${r.message}${detail ? ` (${String(typeof detail === 'object' ? JSON.stringify(detail) : detail).slice(0, 160)})` : ''}`,
    );
  }
  if (records.length > 40) console.log(`    … ${records.length - 40} more`);
}

/** Phase 1: the pair at N members, measured over MEASURE_MS after the warm-up. */
/** Seconds of each window of the scrape cost: without scrapes, then with them back to back. */
const SCRAPE_WINDOW_S = 4;

/**
 * What one Prometheus scrape (`GET /metrics`) costs the active under the load:
 * its CPU over a window of scrapes back to back, less its CPU over a window
 * just before without any (the same-run baseline), per scrape.
 */
async function scrapeCost(active, n) {
  const name = `active SP CPU per /metrics scrape, ${n} members, under the load`;
  const pid = active.pid;
  if (pid === undefined) return { name: `${name}: not measured (the active is not running)`, value: '–', unit: 'ms' };
  const url = `http://127.0.0.1:${active.statusPort}/metrics`;
  const before = cpuSeconds(pid);
  await sleep(SCRAPE_WINDOW_S * 1000);
  const quiet = cpuSeconds(pid) - before;
  const start = cpuSeconds(pid);
  const until = performance.now() + SCRAPE_WINDOW_S * 1000;
  let scrapes = 0;
  let bytes = 0;
  let series = 0;
  while (performance.now() < until) {
    const text = await (await fetch(url)).text();
    scrapes += 1;
    bytes = text.length;
    series = text.split('\n').filter((line) => line !== '' && !line.startsWith('#')).length;
  }
  const busy = cpuSeconds(pid) - start;
  const perScrapeMs = ((busy - quiet) * 1000) / scrapes;
  return {
    name: `${name} (${scrapes} scrapes back to back in ${SCRAPE_WINDOW_S} s, ${int(bytes)} bytes and ${series} series each; baseline: the active's CPU over the ${SCRAPE_WINDOW_S} s before, no scrape: ${(quiet * 1000).toFixed(0)} ms)`,
    value: Math.max(0, perScrapeMs).toFixed(2),
    unit: 'ms',
  };
}

async function measureSteadyState({
  members,
  pair,
  active,
  passive,
  epoch,
  load,
  subscriber,
  warmupBreaks,
  since,
  trace,
}) {
  const wallStart = Date.now();
  const pids = { active: active.pid, passive: passive.pid, load: load.pid, subscriber: subscriber.pid };
  const cpu0 = Object.fromEntries(
    Object.entries(pids).map(([k, pid]) => [k, tryOr(() => cpuSeconds(pid), Number.NaN)]),
  );
  const bench0 = process.cpuUsage();
  const machine0 = machineJiffies();
  const sched0 = schedMs(pids.active);
  const faults0 = tryOr(() => majorFaults(pids.active), Number.NaN);
  const kernel0 = kernelThreads();
  const loadavg = os.loadavg()[0];
  const status0 = await active.status();
  const load0 = await load.report();
  const received0 = await subscriber.received();
  const t0 = performance.now();
  let peakRss = 0;
  let peakPassiveRss = 0;
  let died;
  let unanswered = 0;
  const breaks = [...warmupBreaks];
  const loop = [];
  while (performance.now() - t0 < MEASURE_MS) {
    const [sa, sp] = await Promise.all([active.status(), passive.status()]);
    try {
      peakRss = Math.max(peakRss, rssMb(pids.active));
    } catch {
      died = `the active (pid ${pids.active}) died`;
      break;
    }
    peakPassiveRss = Math.max(
      peakPassiveRss,
      tryOr(() => rssMb(pids.passive), 0),
    );
    if (!sa || !sp) unanswered += 1;
    if (sa) loop.push(sa.eventLoop);
    trace.push(sa ? `${Math.round(sa.eventLoop.maxDelayMs)}/${Math.round(sa.eventLoop.p99DelayMs)}` : '?');
    const why = breakOf(sa, sp, epoch);
    if (why) breaks.push({ at: performance.now() - since, why });
    await sleep(SAMPLE_MS - ((performance.now() - t0) % SAMPLE_MS));
  }
  const wallS = (performance.now() - t0) / 1000;
  const cpu = Object.fromEntries(
    Object.entries(pids).map(([k, pid]) => [k, tryOr(() => (cpuSeconds(pid) - cpu0[k]) / wallS, Number.NaN)]),
  );
  const benchCpu = process.cpuUsage(bench0);
  const machine1 = machineJiffies();
  const sched = schedRate(sched0, schedMs(pids.active), wallS);
  const kernel = kernelCpu(kernel0, kernelThreads(), wallS);
  const faults = tryOr(() => majorFaults(pids.active), Number.NaN) - faults0;
  const machineBusy = (machine1.busy - machine0.busy) / (machine1.total - machine0.total); // share of all cores
  const status1 = await active.status();
  const load1 = await load.report();
  const received1 = await subscriber.received();
  const sp = await passive.status();
  const lastBreak = breakOf(status1, sp, epoch);
  if (lastBreak) breaks.push({ at: performance.now() - since, why: lastBreak });
  const stable = breaks.length === 0;
  const firstOf = new Map();
  for (const b of breaks) if (!firstOf.has(b.why)) firstOf.set(b.why, b);
  const firstBreaks = [...firstOf.values()].slice(0, 3).map((b) => `${b.why} at +${(b.at / 1000).toFixed(0)} s`);
  const delta = (k) => (status1?.counters[k] ?? Number.NaN) - (status0?.counters[k] ?? Number.NaN);
  const acked = load1.acked - load0.acked;
  const due = (members * wallS * 1000) / INTERVAL_MS;
  const loadErrors =
    load1.notActive + load1.invalid + load1.applicationErrors + load1.disconnects + load1.connectFailures;
  const warnings = pair.flatMap((n) => warningsOf(n, wallStart));
  for (const r of warnings.slice(0, 5)) console.error(`  scale: ${r.service}: ${r.level} ${r.message} (${r.event})`);
  const unreplicated = delta('unreplicatedAcks'); // NaN when the active did not answer
  const p99s = loop.map((l) => l.p99DelayMs);
  const ms = (x) => (Number.isFinite(x) ? x.toFixed(1) : '–');
  const worstP99 = p99s.length > 0 ? Math.max(...p99s) : Number.NaN;
  // Every delay sample of the last minute of the load: the p99 "under the load". The worst 5 s window's p99 (a
  // maximum over windows, one of which may hold a full collection) is printed beside it.
  const minuteP99 = status1?.eventLoop?.minuteP99DelayMs ?? Number.NaN;
  const maxDelay = loop.length > 0 ? Math.max(...loop.map((l) => l.maxDelayMs)) : Number.NaN;
  const n = int(members);
  const pct = (x) => `${(x * 100).toFixed(1)} %`;
  const tracked = status1?.engine?.members ?? '?';
  const machineNote = `machine: ${pct(machineBusy)} of ${os.cpus().length} cores busy over the window, load average ${loadavg.toFixed(2)} at its start`;
  console.log(
    `  scale: ${n} members; active ${pct(cpu.active)}, passive ${pct(cpu.passive)}, load ${pct(cpu.load)}, autoscaler's subscriber (nice ${SUBSCRIBER_NICE}) ${pct(cpu.subscriber)}, ` +
      `benchmark ${pct((benchCpu.user + benchCpu.system) / 1e6 / wallS)}, the kernel's own threads ${pct(kernel.all)} (${kernel.top} ${pct(kernel.topShare)}) of a core; ${machineNote}`,
  );
  const figures = [
    {
      name: `active SP CPU, ${n} members × 3 stats / 15 s (${tracked} tracked, ${Number.isNaN(delta('batchesAccepted')) ? '?' : int(delta('batchesAccepted') / wallS)} batches/s, ${int(received1 - received0)} outputs delivered; ${machineNote})`,
      value: died ? '–' : (cpu.active * 100).toFixed(1),
      unit: '% of a core',
      goal: `< ${GOALS.cpu * 100} %`,
      met: !died && cpu.active < GOALS.cpu,
    },
    {
      name: `passive SP CPU, ${n} members (applies every batch it is forwarded)`,
      value: Number.isFinite(cpu.passive) ? (cpu.passive * 100).toFixed(1) : '–',
      unit: '% of a core',
    },
    {
      name: `the same active and linked passive throughout, ${n} members from the load's start (epoch ${epoch} → ${status1?.epoch ?? '?'}${firstBreaks.length > 0 ? `; first seen: ${firstBreaks.join(', ')}` : ''}; unreplicated acks in the window: ${Number.isNaN(unreplicated) ? '?' : unreplicated}; status polls unanswered: ${unanswered}; warnings logged by the pair: ${warnings.length}${died ? `; ${died}` : ''})`,
      value: stable && !died ? 'yes' : 'no',
      unit: '',
      goal: 'yes',
      met: stable && !died && unreplicated === 0,
    },
    {
      name: `active SP event-loop delay p99 under the load, ${n} members (every delay sample of the last minute of the measurement: its last 12 whole 5 s windows)`,
      value: ms(minuteP99),
      unit: 'ms',
      goal: `≤ ${GOALS.loopP99Ms} ms`,
      met: minuteP99 <= GOALS.loopP99Ms,
    },
    {
      name: `active SP event-loop delay p99 of its worst 5 s window under the load, ${n} members (worst of ${loop.length} reads, a read a second, of the p99 of its last whole 5 s window; median read ${ms(median(p99s))} ms)`,
      value: ms(worstP99),
      unit: 'ms',
    },
    {
      name: `active SP event-loop thread's wait for a core under the load, ${n} members (ready to run while other threads held both: its run-queue time over the window, from /proc schedstat; it ran ${sched ? int(sched.run) : '–'} ms a second; the active's major page faults: ${Number.isNaN(faults) ? '–' : int(faults)}; the kernel's own threads meanwhile ${pct(kernel.all)} of a core, ${kernel.top} ${pct(kernel.topShare)})`,
      value: sched ? int(sched.wait) : '–',
      unit: 'ms a second',
    },
    {
      name: `active SP event-loop delay max under the load, ${n} members`,
      value: ms(maxDelay),
      unit: 'ms',
    },
    {
      name: `load delivered: batches acknowledged in the window ÷ the members' due batches (${int(acked)} of ${int(due)}; load errors since it started: ${loadErrors}, overdue batches: ${load1.overdue - load0.overdue}${load1.firstInvalid ? `; first refusal: ${load1.firstInvalid}` : ''})`,
      value: (100 * (acked / due)).toFixed(1),
      unit: '%',
      goal: `≥ ${GOALS.delivered * 100} %`,
      met: acked / due >= GOALS.delivered && loadErrors === 0,
    },
    {
      name: `load generator CPU, ${AGENTS} connections (its own process; frames encoded and signed once in ${int(load.encodeMs)} ms; its timer ran up to ${int(load1.maxTickLagMs)} ms late)`,
      value: Number.isFinite(cpu.load) ? (cpu.load * 100).toFixed(1) : '–',
      unit: '% of a core',
    },
  ];
  return { figures, peakRss, peakPassiveRss, maxDelay, minuteP99, stable: stable && !died };
}

/**
 * Polls a node's GET /status back to back (20 ms apart) and keeps each answer's latency: the node answers from its
 * event loop, so a stall holds up the answer in flight, as it holds up every agent's acknowledgement. Unlike the
 * node's own delay histogram (5–10 s windows), this says when.
 */
function latencyProbe(node) {
  const polls = [];
  let running = true;
  const done = (async () => {
    while (running) {
      const sentWall = Date.now();
      const t = performance.now();
      let ok = true;
      try {
        const response = await fetch(`http://127.0.0.1:${node.statusPort}/status`, {
          signal: AbortSignal.timeout(30_000),
        });
        await response.arrayBuffer();
      } catch {
        ok = false;
      }
      polls.push({ sentWall, ms: performance.now() - t, ok });
      await sleep(20);
    }
  })();
  return {
    polls,
    stop: async () => {
      running = false;
      await done;
    },
  };
}

/** Summary ticks fall on multiples of the summary interval of the wall clock (cep engine.ts). */
const ticksIn = (fromWall, toWall) => {
  const ticks = [];
  for (let t = Math.ceil(fromWall / INTERVAL_MS) * INTERVAL_MS; t <= toWall; t += INTERVAL_MS) ticks.push(t);
  return ticks;
};
/** A poll in flight at a summary tick (or within TICK_SPAN_MS after it) measures the tick, not the relink. */
const TICK_SPAN_MS = 1_000;
const overTick = (poll) => ticksIn(poll.sentWall - TICK_SPAN_MS, poll.sentWall + poll.ms).length > 0;

/**
 * Waits for the next summary tick to pass and its work to end (three quick answers in a row): the relink then has
 * the most of the interval to itself, as every figure at N members stalls at a tick.
 */
async function afterSummaryTick(node) {
  await sleep(Math.ceil(Date.now() / INTERVAL_MS) * INTERVAL_MS - Date.now() + 50);
  const deadline = performance.now() + 10_000;
  for (let quick = 0; quick < 3 && performance.now() < deadline; ) {
    const t = performance.now();
    const s = await node.status();
    quick = s && performance.now() - t < 50 ? quick + 1 : 0;
    await sleep(100);
  }
}

/**
 * Phase 2 (and after the failover): `passive` is restarted (kill -9 first when it runs) and links again, right
 * after a summary tick. The active's longest stall from the kill until the passive follows (from `latencyProbe`,
 * summary ticks left out) beside the same probe over RELINK_BASELINE_MS before the kill; the time until the
 * passive follows with the snapshot applied; the active's peak RSS meanwhile.
 */
async function relink({ active, passive, epoch }) {
  await afterSummaryTick(active);
  const probe = latencyProbe(active);
  // The probe's answers wait for this process's event loop too: how late it ran is printed beside.
  const benchLoop = monitorEventLoopDelay({ resolution: 10 });
  await sleep(RELINK_BASELINE_MS);
  const appliedBefore = snapshotsApplied(passive).length;
  const t0 = performance.now();
  const wall0 = Date.now();
  const sched0 = schedMs(active.pid);
  benchLoop.enable();
  let ownMax = 0;
  let peakRss = 0;
  let unanswered = 0;
  let activeBreak;
  const poll = async () => {
    const s = await active.status();
    if (s) ownMax = Math.max(ownMax, s.eventLoop.maxDelayMs);
    else unanswered += 1;
    if (s && !activeBreak && (s.role !== 'ACTIVE' || s.epoch !== epoch)) {
      activeBreak = `the active became ${s.role} under epoch ${s.epoch} at +${((performance.now() - t0) / 1000).toFixed(1)} s`;
    }
    peakRss = Math.max(
      peakRss,
      tryOr(() => rssMb(active.pid), 0),
    );
    return s;
  };
  let listeningMs;
  let followingMs;
  let criterion;
  let error;
  try {
    await passive.restart(); // kill -9 (when running), then start: resolves once its status port listens
    listeningMs = performance.now() - t0;
    let linkedMs; // following, with batches applied on the link (between the snapshot's chunks: printed, not the measure)
    while (performance.now() - t0 < RELINK_TIMEOUT_MS) {
      const [, sp] = await Promise.all([poll(), passive.status()]);
      if (sp?.following?.epoch === epoch) {
        // The passive logs sp.snapshot_applied once its engine holds the active's state; its timestamp is when.
        const record = snapshotsApplied(passive)[appliedBefore];
        if (record) {
          followingMs = Date.parse(record.timestamp) - wall0;
          // A streamed snapshot's record says in how many chunks and how long the passive took.
          const parts = [
            record.chunks === undefined ? undefined : `${record.chunks} chunks`,
            record.ms === undefined ? undefined : `${int(record.ms)} ms on the passive`,
          ].filter(Boolean);
          criterion = `its sp.snapshot_applied record${parts.length > 0 ? `: ${parts.join(', ')}` : ''}`;
          break;
        }
        if (linkedMs === undefined && sp.counters.syncBatchesApplied > 0) linkedMs = performance.now() - t0;
      }
      await sleep(RELINK_POLL_MS);
    }
    // Batches on the link alone are no measure: a passive takes them between the snapshot's chunks, long
    // before it holds the state (taking them as one read a relink of 12 s or more as 2.6 s).
    if (followingMs === undefined)
      criterion = `no sp.snapshot_applied record in ${RELINK_TIMEOUT_MS / 1000} s${linkedMs === undefined ? '' : ` (batches applied on the link from ${int(linkedMs)} ms)`}`;
    await sleep(RELINK_TAIL_MS);
    await poll();
  } catch (e) {
    error = `restart failed: ${reasonOf(e)}`;
  } finally {
    await probe.stop();
    benchLoop.disable();
  }
  const waited = schedRate(sched0, schedMs(active.pid), (performance.now() - t0) / 1000);
  const endWall = wall0 + (followingMs ?? performance.now() - t0) + RELINK_TAIL_MS;
  const before = probe.polls.filter((p) => p.sentWall < wall0);
  const during = probe.polls.filter((p) => p.sentWall + p.ms >= wall0 && p.sentWall <= endWall);
  const maxOf = (polls) => polls.reduce((m, p) => Math.max(m, p.ms), 0);
  const ticks = ticksIn(wall0, endWall);
  const sa = await active.status();
  const linkReady = sa?.passive.link === 'ready' && sa.role === 'ACTIVE' && sa.epoch === epoch;
  // What the pair complained about meanwhile: the first thing to read when the passive did not follow in time.
  const counts = new Map();
  for (const r of [active, passive].flatMap((node) => tryOr(() => warningsOf(node, wall0), []))) {
    const key = r.event ?? r.message;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const warnings = [...counts]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 4)
    .map(([k, c]) => `${k} ×${c}`)
    .join(', ');
  return {
    stall: maxOf(during.filter((p) => !overTick(p))),
    stallAtTicks: ticks.length > 0 ? maxOf(during.filter(overTick)) : undefined,
    ticks: ticks.length,
    baseline: maxOf(before),
    failedPolls: during.filter((p) => !p.ok).length,
    ownMax,
    benchLoopMax: benchLoop.max / 1e6,
    waited,
    followingMs,
    listeningMs,
    criterion,
    peakRss,
    unanswered,
    linkReady,
    activeBreak,
    warnings,
    error,
  };
}

const relinkFigures = (members, runs, whyNone) => {
  const n = int(members);
  const stallName = `active's longest stall during a relink, ${n} members: GET /status answered back to back from the kill until ${RELINK_TAIL_MS / 1000} s after the passive follows, summary ticks left out`;
  const relinkName = `kill -9 + restart of the passive → following with the snapshot applied, ${n} members`;
  if (runs.length === 0) {
    return [
      notMeasured(stallName, 'ms', `≤ ${GOALS.relinkStallMs} ms`, whyNone),
      notMeasured(relinkName, 'ms', `≤ ${int(GOALS.relinkMs)} ms`, whyNone),
    ];
  }
  const list = (f) => runs.map((r) => `${r.label}: ${f(r)}`).join('; ');
  const stall = Math.max(...runs.map((r) => r.stall));
  const figures = [
    {
      name: `${stallName} (${list(
        (r) =>
          `${int(r.stall)} ms` +
          (r.ticks > 0 ? `, ${r.ticks} summary tick(s) fell within: ${int(r.stallAtTicks)} ms across them` : '') +
          (r.failedPolls > 0 ? `, ${r.failedPolls} polls failed` : '') +
          `, its own delay histogram's max meanwhile ${int(r.ownMax)} ms (5–10 s windows: may hold the tick before)` +
          `, this benchmark's own event-loop delay max meanwhile ${int(r.benchLoopMax)} ms (the round trip holds it too)` +
          (r.waited ? `, its event-loop thread waiting for a core ${int(r.waited.wait)} ms a second` : ''),
      )})`,
      value: int(stall),
      unit: 'ms',
      goal: `≤ ${GOALS.relinkStallMs} ms`,
      met: stall <= GOALS.relinkStallMs,
      baseline: {
        name: `the same ${RELINK_BASELINE_MS / 1000} s before each kill, same run`,
        value: int(Math.max(...runs.map((r) => r.baseline))),
      },
    },
  ];
  if (runs.some((r) => r.followingMs === undefined)) {
    const missing = runs
      .filter((r) => r.followingMs === undefined)
      .map(
        (r) =>
          `${r.label}: ${r.error ?? r.criterion ?? `not following within ${int(RELINK_TIMEOUT_MS)} ms`}` +
          `${r.activeBreak ? `; ${r.activeBreak}` : ''}${r.warnings ? `; the pair logged ${r.warnings}` : ''}`,
      );
    figures.push(notMeasured(relinkName, 'ms', `≤ ${int(GOALS.relinkMs)} ms`, missing.join('; ')));
  } else {
    const worst = Math.max(...runs.map((r) => r.followingMs));
    figures.push({
      name: `${relinkName} (${list((r) => `${int(r.followingMs)} ms, process listening after ${int(r.listeningMs)} ms, by ${r.criterion}${r.linkReady ? '' : ', link not ready at the end'}${r.activeBreak ? `, ${r.activeBreak}` : ''}`)})`,
      value: int(worst),
      unit: 'ms',
      goal: `≤ ${int(GOALS.relinkMs)} ms`,
      met: worst <= GOALS.relinkMs && runs.every((r) => r.linkReady),
    });
  }
  return figures;
};

/**
 * Phase 3: kill -9 of the active while a probe agent streams beside the load: time until the other node
 * acknowledges the probe, and the probe's acknowledged stats missing from the new active's state.
 */
async function killActive({ members, active, passive, load }) {
  const n = int(members);
  const takeoverName = `kill -9 active → other node acknowledging, ${n} members (lease ${int(DEFAULTS.heartbeatIntervalMs)} ms × ${DEFAULTS.heartbeatMaxRetry})`;
  const takeoverGoal = `≤ ${int(GOALS.takeoverMs)} ms`;
  const lostName = `stats lost across the kill, ${n} members`;
  const probe = probeAgent([active.thriftPort, passive.thriftPort], testSecret(active.security.memberKeyFile), {
    prefix: 'probe',
    clusterId: 'probe',
  });
  let gap;
  let loadBackMs;
  try {
    await sleep(2_000 + Math.random() * 1_000); // the probe flowing, anywhere in the heartbeat cycle
    const killedAt = performance.now();
    await active.kill('SIGKILL');
    const deadline = killedAt + 30_000;
    while (performance.now() < deadline) {
      const next = probe.acks.find((a) => a.at > killedAt && a.port === passive.thriftPort);
      if (next) {
        gap = next.at - killedAt;
        break;
      }
      await sleep(5);
    }
    // The load's connections find the new active too.
    while (performance.now() < deadline) {
      const report = await load.report();
      if ((report.connectedByPort[passive.thriftPort] ?? 0) === AGENTS) {
        loadBackMs = performance.now() - killedAt;
        break;
      }
      await sleep(50);
    }
    await sleep(1_000); // a few more acknowledgements from the new active
  } finally {
    probe.stop = true;
    await probe.done;
  }
  const figures = [];
  const loadNote = loadBackMs === undefined ? 'not all back' : `all back after ${int(loadBackMs)} ms`;
  figures.push(
    gap === undefined
      ? notMeasured(takeoverName, 'ms', takeoverGoal, 'no acknowledgement from the other node within 30 s')
      : {
          name: `${takeoverName} (the load's ${AGENTS} connections: ${loadNote})`,
          value: int(gap),
          unit: 'ms',
          goal: takeoverGoal,
          met: gap <= GOALS.takeoverMs,
        },
  );
  // Every stat the probe got an acknowledgement for must be in the new active's window samples. The window keeps
  // the last windowMs: a stat older than that (with a margin) is not looked for.
  try {
    // One member's part each: the whole state of 100 000 members is not served (it stalled the node ~2.6 s).
    const windowMs = DEFAULTS.windowMs;
    const samples = new Map();
    let exportedAt;
    for (const memberId of new Set(probe.acks.map((a) => a.memberId))) {
      const state = await passive.engine({ member: memberId, timeoutMs: 10_000 });
      if (!Array.isArray(state.series)) throw new Error('the engine state has no series to look the stats up in');
      exportedAt ??= state.exportedAt;
      // Whatever the metric's key in the state (the probe sends load_average only): every sample's timestamp.
      for (const s of state.series)
        samples.set(s.memberId, new Set(Object.values(s.samples ?? {}).flatMap((xs) => xs.map(([t]) => t))));
    }
    const since = (exportedAt ?? Date.now()) - windowMs + 2_000;
    const checked = probe.acks.filter((a) => a.timestamp > since);
    const missing = checked.filter((a) => !samples.get(a.memberId)?.has(a.timestamp)).length;
    figures.push({
      name: `${lostName} (of ${int(checked.length)} the probe agent had acknowledged, looked up in the new active's window samples${checked.length < probe.acks.length ? `; ${probe.acks.length - checked.length} older than its window not looked up` : ''})`,
      value: missing,
      unit: 'stats',
      goal: '0',
      met: missing === 0 && checked.length > 0,
    });
  } catch (error) {
    figures.push(notMeasured(lostName, 'stats', '0', `the new active's state: ${reasonOf(error)}`));
  }
  return { figures, killed: gap !== undefined };
}

export async function run(options = {}) {
  const members = options.members ?? DEFAULT_MEMBERS;
  const n = int(members);
  const figures = [];
  let db;
  let brokers;
  let subscriber;
  let pair;
  let load;
  let loadStartWall;
  const trace = [];
  try {
    db = await startPostgres();
    brokers = await startBrokerPair('aedes');
    const endpoints = brokerEndpoints(brokers);
    subscriber = await startOutputSubscriber(endpoints);
    // info: the passive's sp.snapshot_applied record times the relink; nothing is logged per batch at info.
    pair = await startSpPair({ databaseUrl: db.connectionString, engine: 'cep', brokers: endpoints, logLevel: 'info' });
    const start = await steady(pair, 60_000);
    if (!start) throw new Error('the pair did not settle (one active, the other following) within 60 s');
    const { active, passive, epoch } = start;
    load = await startLoad({
      ports: pair.map((node) => node.thriftPort),
      activeIndex: pair.indexOf(active),
      members,
      key: testSecret(active.security.memberKeyFile).toString('hex'),
    });
    // Its frames encoded, the load sends from now on.
    const loadStart = performance.now();
    loadStartWall = Date.now();
    const warmupBreaks = await watch({ active, passive, epoch, ms: WARMUP_MS, since: loadStart, trace });

    // 1. Steady state.
    const s = await measureSteadyState({
      members,
      pair,
      active,
      passive,
      epoch,
      load,
      subscriber,
      warmupBreaks,
      since: loadStart,
      trace,
    });
    figures.push(...s.figures);
    console.log(
      `  scale: the active's event-loop max (ms, its last 5–10 s) / p99 (its last whole 5 s window) read every second from the load's start: ${trace.join(' ')}; p99 of the measurement's last minute: ${s.minuteP99} ms`,
    );

    figures.push(await scrapeCost(active, n));

    // 2. Relink: kill -9 of the passive, restarted; whichever node is the passive by now.
    const runs = [];
    let peakRss = s.peakRss;
    const beforeRelink = await steady(pair, SETTLE_MS);
    let first;
    if (beforeRelink) {
      first = await relink(beforeRelink);
      runs.push({ label: 'passive killed', ...first });
      peakRss = Math.max(peakRss, first.peakRss);
    }
    figures.push({
      name: `active SP peak RSS, ${n} members, steady state${first ? ' and the first relink' : ''} (steady state ${int(s.peakRss)} MB; passive ${int(s.peakPassiveRss)} MB)`,
      value: int(peakRss),
      unit: 'MB',
      goal: `< ${int(GOALS.rssMb)} MB`,
      met: peakRss > 0 && peakRss < GOALS.rssMb,
    });
    const unsettled = `the pair was not steady (one active, the other following it) within ${SETTLE_MS / 1000} s`;

    // 3. kill -9 of the active, once the passive follows again; then the killed node rejoins: a second relink.
    const again = beforeRelink ? await steady(pair, SETTLE_MS) : undefined;
    if (!again) {
      figures.push(...relinkFigures(members, runs, unsettled));
      figures.push(
        notMeasured(
          `kill -9 active → other node acknowledging, ${n} members`,
          'ms',
          `≤ ${int(GOALS.takeoverMs)} ms`,
          unsettled,
        ),
        notMeasured(`stats lost across the kill, ${n} members`, 'stats', '0', unsettled),
      );
    } else {
      const kill = await killActive({ members, active: again.active, passive: again.passive, load });
      if (kill.killed) {
        const status = await again.passive.status();
        if (status?.role === 'ACTIVE') {
          const second = await relink({ active: again.passive, passive: again.active, epoch: status.epoch });
          runs.push({ label: 'old active restarted after the failover', ...second });
        } else {
          console.error(`  scale: the node that took over is ${status?.role ?? 'not answering'}: no second relink`);
        }
      }
      figures.push(...relinkFigures(members, runs, unsettled), ...kill.figures);
    }
    const report = await load.report();
    console.log(
      `  scale: over the whole run the load sent ${int(report.sent)} batches (${int(report.resent)} again after a reconnect), ` +
        `${int(report.acked)} acknowledged (${int(report.replicated)} replicated, ${int(report.duplicates)} duplicates), ` +
        `NotActive ${report.notActive}, refused ${report.invalid}, overdue ${report.overdue}, ` +
        `connects ${report.connects} (failed ${report.connectFailures}), disconnects ${report.disconnects}`,
    );
  } catch (error) {
    console.error(`  scale: ${error?.stack ?? error}`);
    figures.push({
      name: `scale benchmark at ${n} members: failed (${reasonOf(error)})`,
      value: '–',
      unit: '',
      goal: 'runs',
      met: false,
    });
  } finally {
    if (pair && loadStartWall !== undefined) printTimeline(pair, loadStartWall);
    await load?.stop().catch(() => {});
    await subscriber?.stop().catch(() => {});
    await Promise.all((pair ?? []).map((node) => node.stop().catch(() => {})));
    await Promise.all((brokers ?? []).map((b) => b.stop().catch(() => {})));
    await db?.stop().catch(() => {});
  }
  return figures;
}
