// Scale: CPU and memory of the active SP node (CEP engine, default timings)
// watching 10 000 members that each report their three stats every 15 s
// (the Stratos agent's interval), the outputs going through its durable
// publisher to a real broker pair with the autoscaler's subscriber present.
import { readFileSync } from 'node:fs';
import { createSubscriber } from '@faultline/messaging';
import { connectHealthStat, toBatchWire } from '@faultline/protocol';
import { signedBatch } from '@faultline/protocol/testing';
import {
  brokerEndpoints,
  startBrokerPair,
  startPostgres,
  startSpPair,
  TEST_CREDENTIALS,
  testSecret,
} from '@faultline/test-support';

export const description = 'CPU and RSS of one SP node watching 10 000 members at a 15 s stat interval';

const MEMBERS = 10_000;
const AGENTS = 100; // connections, each carrying the batches of 100 members (one signed batch per member)
const INTERVAL_MS = 15_000;
const MEASURE_MS = 45_000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const ticks = () => 100; // USER_HZ on Linux
const cpuSeconds = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / ticks();
};
const rssMb = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;

export async function run() {
  const db = await startPostgres();
  const brokers = await startBrokerPair('aedes');
  const endpoints = brokerEndpoints(brokers);
  let received = 0;
  const subscriber = createSubscriber({
    brokers: endpoints,
    credentials: TEST_CREDENTIALS.autoscaler,
    role: 'autoscaler',
    clientId: 'autoscaler',
    topics: ['summarized-health-stats/#'],
    onEnvelope: () => {
      received += 1;
    },
  });
  subscriber.start();
  const pair = await startSpPair({
    databaseUrl: db.connectionString,
    engine: 'cep',
    brokers: endpoints,
    logLevel: 'warn',
  });
  let running = true;
  try {
    let active;
    while (!active) {
      const s = await Promise.all(pair.map((n) => n.status()));
      const i = s.findIndex((x) => x?.role === 'ACTIVE');
      if (i >= 0 && s[1 - i]?.following?.epoch === s[i].epoch) active = pair[i];
      else await sleep(100);
    }
    const startEpoch = (await active.status()).epoch;
    let agentErrors = 0;
    const memberKey = testSecret(active.security.memberKeyFile);
    const agents = Array.from({ length: AGENTS }, async (_, a) => {
      await sleep((a / AGENTS) * INTERVAL_MS); // staggered like real agents
      let connection;
      let sequence = 0;
      while (running) {
        const now = Date.now();
        sequence += 1;
        // Each member's three stats in a batch of its own, signed with its credential, as its agent sends them.
        const batches = [];
        for (let m = a; m < MEMBERS; m += AGENTS) {
          const stats = [
            ['load_average', 20 + (m % 30)],
            ['memory_consumption', 40 + (m % 20)],
            ['requests_in_flight', m % 10],
          ].map(([healthDescription, value]) => ({
            clusterId: `c-${m % 10}`,
            clusterInstanceId: `c-${m % 10}-1`,
            networkPartitionId: 'np-1',
            partitionId: 'p-1',
            memberId: `m-${m}`,
            healthDescription,
            value,
            timestamp: now,
          }));
          batches.push(signedBatch(memberKey, { agentId: `m-${m}`, sequence, stats }));
        }
        try {
          if (!connection) {
            connection = connectHealthStat('127.0.0.1', active.thriftPort, { connectTimeoutMs: 5_000 });
            await connection.ready;
          }
          await Promise.all(batches.map((batch) => connection.client.publish(toBatchWire(batch))));
        } catch (error) {
          agentErrors += 1;
          if (agentErrors <= 3) console.error(`  agent ${a}: ${error?.message ?? error}`);
          connection?.close();
          connection = undefined;
        }
        await sleep(INTERVAL_MS);
      }
      connection?.close();
    });
    await sleep(INTERVAL_MS + 5_000); // every member seen once, windows filling
    const pid = active.pid;
    const cpu0 = cpuSeconds(pid);
    const t0 = performance.now();
    let peakRss = 0;
    let died = false;
    while (performance.now() - t0 < MEASURE_MS) {
      try {
        peakRss = Math.max(peakRss, rssMb(pid));
      } catch {
        died = true; // the process is gone: report it rather than a figure
        break;
      }
      await sleep(1_000);
    }
    const cpu = died ? Number.NaN : (cpuSeconds(pid) - cpu0) / ((performance.now() - t0) / 1000);
    const status = await active.status();
    const tracked = status ? status.engine.members : died ? 'process died' : 'status did not answer';
    // The run counts only if the node stayed active and its passive stayed linked throughout.
    const passiveStatus = await pair.find((n) => n !== active).status();
    const stable =
      status?.role === 'ACTIVE' && status.epoch === startEpoch && passiveStatus?.following?.epoch === startEpoch;
    const warnings = pair.flatMap((n) => n.logs()).filter((r) => r.level === 'warn' || r.level === 'error');
    for (const r of warnings.slice(0, 5)) console.error(`  ${r.service}: ${r.message}`);
    running = false;
    await Promise.race([Promise.all(agents), sleep(INTERVAL_MS + 2_000)]);
    return [
      {
        name: `active SP CPU, ${MEMBERS.toLocaleString('en-US')} members × 3 stats / 15 s (${tracked} tracked, ${received.toLocaleString('en-US')} outputs delivered)`,
        value: `${(cpu * 100).toFixed(1)} %`,
        unit: 'of a core',
        goal: '< 50 %',
        met: cpu < 0.5 && status !== undefined,
      },
      {
        name: `the same active and linked passive throughout (epoch ${startEpoch} → ${status?.epoch ?? '?'}; warnings logged by the pair: ${warnings.length})`,
        value: stable ? 'yes' : 'no',
        unit: '',
        goal: 'yes',
        met: stable && agentErrors === 0,
      },
      {
        name: `active SP peak RSS (agent call errors: ${agentErrors})`,
        value: Math.round(peakRss),
        unit: 'MB',
        goal: '< 300 MB',
        met: peakRss < 300,
      },
    ];
  } finally {
    running = false;
    await subscriber.close();
    await Promise.all(pair.map((n) => n.stop()));
    await Promise.all(brokers.map((b) => b.stop()));
    await db.stop();
  }
}
