import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import type { Subscriber } from '@faultline/messaging';
import { watchAsAutoscaler } from '@faultline/messaging/testing';
import {
  type BatchAck,
  connectHealthStat,
  type Envelope,
  fromAckWire,
  type HealthStat,
  type HealthStatBatch,
  type HealthStatConnection,
  issueMemberCredential,
  thrift,
  thriftGenerated,
  toBatchWire,
} from '@faultline/protocol';
import { signedBatch } from '@faultline/protocol/testing';
import {
  brokerEndpoints,
  type SpStatusJson,
  startBrokerPair,
  startPostgres,
  startSpPair,
  TEST_CREDENTIALS,
  type TestBroker,
  type TestPostgres,
  type TestSpNode,
  testSecret,
  waitFor,
} from '@faultline/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/*
 * Issue 12, "Thrift ingest has no authentication and any agent id may report
 * for any member", "Bad input is amplified", "Unknown member ids grow state
 * without limit": attacks on the active's Thrift port of a real SP pair (two
 * node processes, real PostgreSQL, the CEP engine publishing to a real broker
 * pair with the autoscaler's subscriber present), made as a hostile peer
 * would make them. Each asserts: refused, counted in the node's /status,
 * nothing acted on (no MemberFault published, no member tracked), the node
 * still ACTIVE.
 */

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const FAULT_TIMEOUT_MS = 3_000;

const statOf = (
  memberId: string,
  healthDescription: HealthStat['healthDescription'] = 'load_average',
  value = 10,
): HealthStat => ({
  clusterId: 'php',
  clusterInstanceId: 'php-1',
  networkPartitionId: 'np-1',
  partitionId: 'p-1',
  memberId,
  healthDescription,
  value,
  timestamp: Date.now(),
});

/** How many more batches `after` refused for `reason` than `before`. */
const refused = (after: SpStatusJson, before: SpStatusJson, reason: string) =>
  (after.refusals[reason] ?? 0) - (before.refusals[reason] ?? 0);
/** How much counter `name` grew from `before` to `after`. */
const counted = (after: SpStatusJson, before: SpStatusJson, name: string) =>
  (after.counters[name] ?? 0) - (before.counters[name] ?? 0);

/** One Thrift connection to the active, as an agent or an attacker opens it. */
class Peer {
  private constructor(readonly connection: HealthStatConnection) {}

  static async open(port: number): Promise<Peer> {
    const connection = connectHealthStat('127.0.0.1', port, { connectTimeoutMs: 2_000 });
    await connection.ready;
    return new Peer(connection);
  }

  /** The ack, or the InvalidBatch message the SP refused the batch with. */
  async send(batch: HealthStatBatch): Promise<BatchAck | string> {
    try {
      return fromAckWire(await this.connection.client.publish(toBatchWire(batch)));
    } catch (error) {
      if (error instanceof thriftGenerated.InvalidBatch) return error.message;
      throw error;
    }
  }

  close(): void {
    this.connection.close();
  }
}

/** The bytes of one framed `publish` call whose batch `writeBatch` writes, however malformed. */
function rawCall(writeBatch: (p: InstanceType<typeof thrift.TBinaryProtocol>) => void): Buffer {
  let frame = Buffer.alloc(0);
  const transport = new thrift.TFramedTransport(undefined, (buf?: Buffer) => {
    if (buf) frame = Buffer.from(buf);
  });
  const p = new thrift.TBinaryProtocol(transport as never);
  p.writeMessageBegin('publish', thrift.Thrift.MessageType.CALL, 1);
  p.writeStructBegin('publish_args');
  p.writeFieldBegin('batch', thrift.Thrift.Type.STRUCT, 1);
  writeBatch(p);
  p.writeFieldEnd();
  p.writeFieldStop();
  p.writeStructEnd();
  p.writeMessageEnd();
  transport.flush();
  return frame;
}

/** A batch of `count` empty HealthStat structs: ~10 KB that once made zod build 80 000 issues. */
const emptyStructs = (count: number) =>
  rawCall((p) => {
    p.writeStructBegin('HealthStatBatch');
    p.writeFieldBegin('stats', thrift.Thrift.Type.LIST, 3);
    p.writeListBegin(thrift.Thrift.Type.STRUCT, count);
    for (let i = 0; i < count; i++) {
      p.writeStructBegin('HealthStat');
      p.writeFieldStop();
      p.writeStructEnd();
    }
    p.writeListEnd();
    p.writeFieldEnd();
    p.writeFieldStop();
    p.writeStructEnd();
  });

/** Writes raw frames on one socket and collects the replies' bytes. */
async function blast(port: number, frames: Buffer[], settleMs = 1_000) {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  const replies: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => void replies.push(chunk));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.write(Buffer.concat(frames));
  await Promise.race([closed, sleep(settleMs)]);
  socket.destroy();
  const bytes = Buffer.concat(replies);
  // Replies are frames: count them and find the largest.
  const sizes: number[] = [];
  for (let at = 0; at + 4 <= bytes.length; at += 4 + (sizes.at(-1) as number)) sizes.push(bytes.readInt32BE(at));
  return { bytes: bytes.length, sizes, text: bytes.toString('latin1') };
}

describe('Thrift ingest of a real SP pair under attack', () => {
  let db: TestPostgres;
  let brokers: [TestBroker, TestBroker];
  let pair: [TestSpNode, TestSpNode];
  let subscriber: Subscriber;
  let active: TestSpNode;
  let key: Buffer;
  const received: Envelope[] = [];
  const faultsOf = (memberId: string) =>
    received.filter((e) => e.type === 'MemberFaultEvent' && e.data.memberId === memberId);

  const status = async (): Promise<SpStatusJson> => {
    const s = await active.status();
    if (!s) throw new Error('the active does not answer');
    return s;
  };
  const stillActive = async () => expect((await status()).role).toBe('ACTIVE');

  beforeAll(async () => {
    db = await startPostgres();
    brokers = await startBrokerPair('aedes');
    const endpoints = brokerEndpoints(brokers);
    subscriber = watchAsAutoscaler({
      brokers: endpoints,
      credentials: TEST_CREDENTIALS.autoscaler,
      topics: ['summarized-health-stats/MemberFaultEvent'],
      onEnvelope: (envelope) => void received.push(envelope),
    });
    pair = await startSpPair({
      databaseUrl: db.connectionString,
      engine: 'cep',
      brokers: endpoints,
      cep: { faultTimeoutMs: FAULT_TIMEOUT_MS, summaryIntervalMs: 1_000, windowMs: 10_000 },
      messaging: { pingIntervalMs: 200, resubscribeIntervalMs: 500, republishIntervalMs: 1_000 },
    });
    active = await waitFor(async () => {
      const s = await Promise.all(pair.map((n) => n.status()));
      const i = s.findIndex((x) => x?.role === 'ACTIVE');
      return i >= 0 && s[1 - i]?.following?.epoch === s[i]?.epoch ? (pair[i] as TestSpNode) : undefined;
    }, 'a steady pair');
    key = testSecret(active.security.memberKeyFile);
    // The engine's grace after its takeover (faultTimeoutMs): faults are possible from here on.
    await sleep(FAULT_TIMEOUT_MS);
  }, 90_000);

  afterAll(async () => {
    await subscriber?.close();
    await Promise.all((pair ?? []).map((n) => n.stop()));
    await Promise.all((brokers ?? []).map((b) => b.stop()));
    await db?.stop();
  });

  it('a forged ports_not_open for another member is refused, counted, and faults nobody', async () => {
    const victim = await Peer.open(active.thriftPort);
    const attacker = await Peer.open(active.thriftPort);
    // The victim reports, signed with its own credential.
    expect(
      await victim.send(signedBatch(key, { agentId: 'victim-1', sequence: 1, stats: [statOf('victim-1')] })),
    ).toMatchObject({ duplicate: false });
    const before = await status();
    const forged = [statOf('victim-1', 'ports_not_open', 1)];
    const attempts = await Promise.all([
      // No credential at all (what any peer could do before).
      attacker.send({ agentId: 'victim-1', sequence: 2, stats: forged }),
      // The attacker's own, valid credential, with the victim's stats.
      attacker.send({
        ...signedBatch(key, { agentId: 'mallory', sequence: 1, stats: [statOf('mallory')] }),
        stats: forged,
      }),
      // The attacker's credential under the victim's agent id (its dedupe state).
      attacker.send({
        agentId: 'victim-1',
        sequence: 3,
        stats: [statOf('mallory')],
        credential: issueMemberCredential(key, statOf('mallory')),
      }),
      // A credential for the victim, forged without the key.
      attacker.send({
        agentId: 'victim-1',
        sequence: 4,
        stats: forged,
        credential: issueMemberCredential(randomBytes(32), statOf('victim-1')),
      }),
    ]);
    expect(attempts).toEqual([
      expect.stringMatching(/^credential_missing: /),
      expect.stringMatching(/^member_mismatch: /),
      expect.stringMatching(/^agent_mismatch: /),
      expect.stringMatching(/^credential_invalid: /),
    ]);
    await sleep(1_500); // ports_not_open would fault at once
    expect(faultsOf('victim-1')).toEqual([]);
    const after = await status();
    expect(refused(after, before, 'credential_missing')).toBe(1);
    expect(refused(after, before, 'member_mismatch')).toBe(1);
    expect(refused(after, before, 'agent_mismatch')).toBe(1);
    expect(refused(after, before, 'credential_invalid')).toBe(1);
    expect(counted(after, before, 'invalidBatches')).toBe(4);
    expect((after.engine as { faulted: number }).faulted).toBe((before.engine as { faulted: number }).faulted);
    // The victim's own next batch is new (its dedupe state untouched) and the node still ACTIVE.
    expect(
      await victim.send(signedBatch(key, { agentId: 'victim-1', sequence: 2, stats: [statOf('victim-1')] })),
    ).toMatchObject({ duplicate: false });
    await stillActive();
    victim.close();
    attacker.close();
  });

  it('forged stats cannot keep a dead member alive: it faults one timeout after its own last stat', async () => {
    const member = await Peer.open(active.thriftPort);
    const forger = await Peer.open(active.thriftPort);
    expect(
      await member.send(signedBatch(key, { agentId: 'dying-1', sequence: 1, stats: [statOf('dying-1')] })),
    ).toMatchObject({ duplicate: false });
    const lastOwnStat = Date.now();
    member.close(); // the member dies
    const before = await status();
    let forging = true;
    let sequence = 1;
    const forged: (BatchAck | string)[] = [];
    const forgery = (async () => {
      while (forging) {
        sequence += 1;
        forged.push(await forger.send({ agentId: 'dying-1', sequence, stats: [statOf('dying-1')] }));
        forged.push(
          await forger.send({
            ...signedBatch(key, { agentId: 'forger', sequence, stats: [statOf('forger')] }),
            stats: [statOf('dying-1')],
          }),
        );
        await sleep(300);
      }
    })();
    await waitFor(() => faultsOf('dying-1').length > 0 || undefined, 'the MemberFault of dying-1', 15_000);
    const faultedAfter = Date.now() - lastOwnStat;
    forging = false;
    await forgery;
    forger.close();
    // Faulted on its own silence (the timeout plus a summary tick and delivery), not 6 s after the forger stopped.
    expect(faultedAfter).toBeLessThan(FAULT_TIMEOUT_MS + 2_500);
    expect(forged.length).toBeGreaterThan(4);
    expect(forged.every((r) => typeof r === 'string' && /^(credential_missing|member_mismatch): /.test(r))).toBe(true);
    const after = await status();
    expect(counted(after, before, 'invalidBatches')).toBe(forged.length);
    await stillActive();
  });

  it('values of 1e300, out-of-range percentages and flags, and timestamps of MAX_SAFE_INTEGER are refused', async () => {
    const member = await Peer.open(active.thriftPort);
    const before = await status();
    const own = (sequence: number, stat: HealthStat) =>
      member.send(signedBatch(key, { agentId: 'bounds-1', sequence, stats: [stat] }));
    const answers = [
      await own(1, statOf('bounds-1', 'load_average', 1e300)),
      await own(2, statOf('bounds-1', 'requests_in_flight', 1e300)),
      await own(3, statOf('bounds-1', 'memory_consumption', 150)),
      await own(4, statOf('bounds-1', 'memory_consumption', -1)),
      await own(5, statOf('bounds-1', 'ports_not_open', 0.5)),
      await own(6, { ...statOf('bounds-1'), timestamp: Number.MAX_SAFE_INTEGER }),
      await own(7, { ...statOf('bounds-1'), timestamp: 0 }),
      await own(8, { ...statOf('bounds-1'), timestamp: Date.now() - 3_600_000 }),
    ];
    expect(answers.slice(0, 5).every((a) => typeof a === 'string' && a.startsWith('value_out_of_range: '))).toBe(true);
    expect(answers.slice(5).every((a) => typeof a === 'string' && a.startsWith('timestamp_out_of_window: '))).toBe(
      true,
    );
    const after = await status();
    expect(refused(after, before, 'value_out_of_range')).toBe(5);
    expect(refused(after, before, 'timestamp_out_of_window')).toBe(3);
    // Nothing acted on: the member is not tracked, no stat applied.
    const engine = (s: SpStatusJson) => s.engine as { members: number; statsApplied: number };
    expect(engine(after).members).toBe(engine(before).members);
    expect(engine(after).statsApplied).toBe(engine(before).statsApplied);
    // A sane batch from the same member is taken.
    expect(await own(9, statOf('bounds-1', 'memory_consumption', 55))).toMatchObject({ duplicate: false });
    member.close();
    await stillActive();
  });

  it('1 025 batches at sequences ≥ 1e15 under a real agent id leave its next real batch new', async () => {
    const agent = await Peer.open(active.thriftPort);
    const attacker = await Peer.open(active.thriftPort);
    const agentId = 'seq-1:1700000000000';
    for (let sequence = 1; sequence <= 3; sequence++) {
      expect(await agent.send(signedBatch(key, { agentId, sequence, stats: [statOf('seq-1')] }))).toMatchObject({
        duplicate: false,
      });
    }
    const before = await status();
    // Without the member's credential: refused before the dedupe is looked at.
    const forged = await Promise.all(
      Array.from({ length: 1_025 }, (_, i) => attacker.send({ agentId, sequence: 1e15 + i, stats: [statOf('seq-1')] })),
    );
    expect(forged.every((r) => typeof r === 'string' && r.startsWith('credential_missing: '))).toBe(true);
    // Even with it (a leaked credential), a sequence that far ahead moves nothing.
    expect(await attacker.send(signedBatch(key, { agentId, sequence: 1e15, stats: [statOf('seq-1')] }))).toMatch(
      /^sequence_out_of_window: /,
    );
    expect(await agent.send(signedBatch(key, { agentId, sequence: 4, stats: [statOf('seq-1')] }))).toMatchObject({
      duplicate: false,
    });
    const after = await status();
    expect(refused(after, before, 'credential_missing')).toBe(1_025);
    expect(refused(after, before, 'sequence_out_of_window')).toBe(1);
    agent.close();
    attacker.close();
    await stillActive();
  });

  it('10 000 unknown member ids are refused: no member tracked, no fault, memory flat', async () => {
    const before = await status();
    const rssBefore = rssMb(active.pid);
    const refusedLogs = () =>
      active.logs().filter((r) => r.event === 'sp.batch_refused' && String(r.reason).startsWith('credential')).length;
    const loggedBefore = refusedLogs();
    const lanes = await Promise.all(Array.from({ length: 4 }, () => Peer.open(active.thriftPort)));
    const answers: (BatchAck | string)[] = [];
    for (let at = 0; at < 10_000; at += 400) {
      const chunk = await Promise.all(
        Array.from({ length: 400 }, (_, i) => {
          const memberId = `ghost-${at + i}`;
          const lane = lanes[i % lanes.length] as Peer;
          // Half without a credential, half with one forged without the key.
          const credential = i % 2 === 0 ? undefined : issueMemberCredential(randomBytes(32), statOf(memberId));
          return lane.send({ agentId: memberId, sequence: 1, stats: [statOf(memberId)], credential });
        }),
      );
      answers.push(...chunk);
    }
    for (const lane of lanes) lane.close();
    expect(answers.every((a) => typeof a === 'string' && /^credential_(missing|invalid): /.test(a))).toBe(true);
    const after = await status();
    expect(refused(after, before, 'credential_missing') + refused(after, before, 'credential_invalid')).toBe(10_000);
    const members = (s: SpStatusJson) => (s.engine as { members: number }).members;
    expect(members(after)).toBe(members(before));
    // Each used to yield a MemberFault one timeout later.
    await sleep(FAULT_TIMEOUT_MS + 1_500);
    expect(received.filter((e) => e.type === 'MemberFaultEvent' && e.data.memberId.startsWith('ghost-'))).toEqual([]);
    // 10 000 fake members once cost ~10 MiB of heap and 7.6 MiB of snapshot; refused ones cost nothing kept.
    expect(rssMb(active.pid) - rssBefore).toBeLessThan(40);
    // One record per peer and reason per 10 s (two reasons, the test may straddle a boundary), not 10 000.
    expect(refusedLogs() - loggedBefore).toBeLessThanOrEqual(4);
    await stillActive();
  });

  it('20 pipelined frames of 10 000 empty stats: small replies, event-loop lag under 100 ms, still ACTIVE', async () => {
    const frame = emptyStructs(10_000);
    expect(frame.length).toBeGreaterThan(10_000);
    /** The 20 frames once the node's lag window is quiet (start-up and earlier tests aged out of it). */
    const attack = async () => {
      await waitFor(async () => ((await status()).eventLoop.maxDelayMs < 50 ? true : undefined), 'a quiet event loop');
      const before = await status();
      const { sizes } = await blast(
        active.thriftPort,
        Array.from({ length: 20 }, () => frame),
      );
      const after = await status();
      expect(sizes).toHaveLength(20);
      // Each reply an InvalidBatch naming at most a few issues (once 31.6 MB for five such frames).
      expect(Math.max(...sizes)).toBeLessThan(1_200);
      expect(refused(after, before, 'invalid')).toBe(20);
      console.log(`20 hostile frames: the active's event-loop lag peaked at ${after.eventLoop.maxDelayMs} ms`);
      return after;
    };
    // The lag window holds whatever stalled the process meanwhile: on a loaded machine a hiccup of its own
    // (a CI run read 105.6 ms where the same test alone reads ~25) is told from the frames by a second
    // attack; frames that stall the loop (they once took seconds) do it every time.
    let after = await attack();
    if (after.eventLoop.maxDelayMs >= 100) after = await attack();
    expect(after.eventLoop.maxDelayMs).toBeLessThan(100);
    // The log: at most one record for this peer and reason, its reason at most 1 KB.
    const logged = active
      .logs()
      .filter((r) => r.event === 'sp.batch_refused' && r.reason === 'invalid')
      .map((r) => String(r.detail));
    expect(logged.length).toBeLessThanOrEqual(2);
    for (const detail of logged) expect(detail.length).toBeLessThanOrEqual(1_024);
    // A frame announcing a million of them is dropped before one is built.
    const huge = emptyStructs(1_000_000);
    const dropped = await blast(active.thriftPort, [huge]);
    expect(dropped.bytes).toBe(0);
    const last = await status();
    expect(counted(last, after, 'badFrames')).toBeGreaterThan(0);
    expect(last.eventLoop.maxDelayMs).toBeLessThan(100);
    expect(last.role).toBe('ACTIVE');
  });
});

function rssMb(pid: number | undefined): number {
  if (pid === undefined) throw new Error('the node is not running');
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024;
}

describe('Thrift connection caps and idle timeout of a real SP pair', () => {
  let db: TestPostgres;
  let pair: [TestSpNode, TestSpNode];
  let active: TestSpNode;

  beforeAll(async () => {
    db = await startPostgres();
    pair = await startSpPair({
      databaseUrl: db.connectionString,
      thrift: { thriftMaxConnections: 8, thriftMaxConnectionsPerPeer: 5, thriftIdleTimeoutMs: 1_000 },
    });
    active = await waitFor(async () => {
      const s = await Promise.all(pair.map((n) => n.status()));
      const i = s.findIndex((x) => x?.role === 'ACTIVE');
      return i >= 0 && s[1 - i]?.following?.epoch === s[i]?.epoch ? (pair[i] as TestSpNode) : undefined;
    }, 'a steady pair');
  }, 60_000);

  afterAll(async () => {
    await Promise.all((pair ?? []).map((n) => n.stop()));
    await db?.stop();
  });

  /** A raw connection from `localAddress`; resolves with it and whether the server closed it within `ms`. */
  const open = async (localAddress = '127.0.0.1') => {
    const socket = net.connect({ port: active.thriftPort, host: '127.0.0.1', localAddress });
    socket.on('error', () => {});
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    await new Promise((resolve) => socket.once('connect', resolve));
    return {
      socket,
      closedWithin: (ms: number) => Promise.race([closed.then(() => true), sleep(ms).then(() => false)]),
    };
  };

  it('more than the per-peer or total cap is closed at once and counted; an idle one after the timeout', async () => {
    const before = (await active.status()) as SpStatusJson;
    const fromOne = await Promise.all(Array.from({ length: 5 }, () => open('127.0.0.1')));
    const sixth = await open('127.0.0.1');
    expect(await sixth.closedWithin(500)).toBe(true);
    const fromTwo = await Promise.all(Array.from({ length: 3 }, () => open('127.0.0.2')));
    const ninth = await open('127.0.0.3');
    expect(await ninth.closedWithin(500)).toBe(true);
    const capped = (await active.status()) as SpStatusJson;
    expect(counted(capped, before, 'connectionsRefused')).toBe(2);
    // Idle for the timeout (1 s, checked every 0.5 s): all eight are closed and counted.
    const idle = await Promise.all([...fromOne, ...fromTwo].map((c) => c.closedWithin(3_000)));
    expect(idle.every(Boolean)).toBe(true);
    const after = (await active.status()) as SpStatusJson;
    expect(counted(after, before, 'idleConnectionsClosed')).toBe(8);
    // A real agent connects and is served; still ACTIVE.
    const key = testSecret(active.security.memberKeyFile);
    const agent = await Peer.open(active.thriftPort);
    const ack = await agent.send(signedBatch(key, { agentId: 'm-1', sequence: 1, stats: [statOf('m-1')] }));
    expect(ack).toMatchObject({ duplicate: false });
    agent.close();
    expect(after.role).toBe('ACTIVE');
  });
});
