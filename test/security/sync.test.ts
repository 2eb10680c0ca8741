import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { createCepEngine } from '@faultline/cep';
import type { Subscriber } from '@faultline/messaging';
import { watchAsAutoscaler } from '@faultline/messaging/testing';
import { type Envelope, HealthStatService, thrift, toBatchWire } from '@faultline/protocol';
import { signedBatch } from '@faultline/protocol/testing';
import { encodeFrame, FrameReader } from '@faultline/stream-processor';
import {
  brokerEndpoints,
  type SpStatusJson,
  startBrokerPair,
  TEST_CREDENTIALS,
  type TestBroker,
  type TestSpNode,
  testSecret,
} from '@faultline/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FailoverClient,
  memberKeyOf,
  pairSuite,
  stat,
  steady,
  waitFor,
} from '../../packages/stream-processor/test/client.js';

/*
 * Issue 12, "The SP sync port has no authentication": attacks on the
 * passive's sync port of a real SP pair (two node processes, real
 * PostgreSQL), made as a hostile peer would make them. Each asserts: refused,
 * counted in the node's /status, nothing acted on (no link taken, no state
 * imported, no fault published), the passive still following the real
 * active, the active still ACTIVE, the process alive.
 */

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The handshake as README "The SP pair's sync link" documents it, computed here independently. */
const PROTOCOL = 'faultline-sync-v1';
const proof = (key: Buffer, role: 'client' | 'server', facts: string[]) =>
  createHmac('sha256', key)
    .update(JSON.stringify([PROTOCOL, role, ...facts]))
    .digest('base64url');

/** A peer on a sync port that speaks the framing by hand. */
class Peer {
  readonly messages: Record<string, unknown>[] = [];
  closed = false;
  private readonly socket: net.Socket;
  private readonly reader: FrameReader;
  private readonly whenClosed: Promise<void>;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    this.reader = new FrameReader(
      1024 * 1024,
      (m) => void this.messages.push(m as Record<string, unknown>),
      () => socket.destroy(),
    );
    socket.on('data', (chunk: Buffer) => this.reader.push(chunk));
    socket.on('error', () => {});
    this.whenClosed = new Promise((resolve) =>
      socket.once('close', () => {
        this.closed = true;
        resolve();
      }),
    );
  }

  static async connect(port: number): Promise<Peer> {
    const socket = net.connect(port, '127.0.0.1');
    const peer = new Peer(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('error', reject);
    });
    return peer;
  }

  send(message: unknown): void {
    if (!this.closed) this.socket.write(encodeFrame(message));
  }

  write(bytes: Buffer): boolean {
    return this.closed ? false : this.socket.write(bytes);
  }

  /** Resolves once the socket drained (or closed). */
  drained(): Promise<void> {
    if (this.closed || !this.socket.writableNeedDrain) return Promise.resolve();
    return Promise.race([new Promise<void>((resolve) => this.socket.once('drain', () => resolve())), this.whenClosed]);
  }

  /** The first message of type `t`, or undefined if none came within `timeoutMs` (or the link closed first). */
  async next(t: string, timeoutMs = 3_000): Promise<Record<string, unknown> | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages.find((m) => m.t === t);
      if (found) return found;
      if (this.closed || Date.now() > deadline) return undefined;
      await sleep(10);
    }
  }

  /** Whether the other end closed the connection within `timeoutMs`. */
  async closedWithin(timeoutMs: number): Promise<boolean> {
    await Promise.race([this.whenClosed, sleep(timeoutMs)]);
    return this.closed;
  }

  /**
   * The client half of the handshake with `key`, claiming `nodeId`; resolves
   * whether the server proved the same key.
   */
  async authenticate(key: Buffer, nodeId: string): Promise<boolean> {
    const challenge = await this.next('challenge');
    if (!challenge) throw new Error('the sync port sent no challenge');
    const nonce = randomBytes(32).toString('base64url');
    const facts = [String(challenge.nonce), nonce, nodeId, String(challenge.nodeId)];
    this.send({ t: 'auth', nodeId, nonce, proof: proof(key, 'client', facts) });
    const answer = await this.next('authenticated');
    return answer !== undefined && answer.proof === proof(key, 'server', facts);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

const counter = (s: SpStatusJson | undefined, name: string): number => s?.counters[name] ?? Number.NaN;

/** Resident memory of a process, from /proc (Linux). */
const rssBytes = (pid: number): number => {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmRSS:'));
  return Number(line?.split(/\s+/)[1] ?? Number.NaN) * 1024;
};

/**
 * After an attack: the passive process lives and follows the real active
 * under its epoch again (relinked if the attack displaced the link), the
 * active is still ACTIVE, and a batch sent now is replicated.
 */
async function stillSound(active: TestSpNode, passive: TestSpNode, epoch: number): Promise<void> {
  expect(passive.pid).toBeDefined();
  await waitFor(
    async () => {
      const [a, p] = await Promise.all([active.status(), passive.status()]);
      return (
        a?.role === 'ACTIVE' &&
        a.epoch === epoch &&
        a.passive.link === 'ready' &&
        p?.role === 'PASSIVE' &&
        p.following?.nodeId === active.nodeId &&
        p.following.epoch === epoch
      );
    },
    'the passive following the real active under its epoch',
    10_000,
  );
  const client = new FailoverClient(memberKeyOf(active), [active.thriftPort]);
  const memberId = `m-after-${randomBytes(4).toString('hex')}`;
  const ack = await client.send({ agentId: memberId, sequence: 1, stats: [stat(memberId, 1)] });
  client.close();
  expect(ack).toMatchObject({ epoch, replicated: true });
}

describe("the SP pair's sync link, attacked on the passive's sync port", () => {
  const suite = pairSuite();

  it('no secret: a hello (epoch MAX_SAFE_INTEGER) and a snapshot without authenticating are refused', async () => {
    const { active, passive, epoch } = await steady(await suite.start());
    const before = await passive.status();
    const peer = await Peer.connect(passive.syncPort);
    peer.send({ t: 'hello', nodeId: 'mallory', epoch: Number.MAX_SAFE_INTEGER });
    peer.send({ t: 'snapshot', seq: 0, engine: { total: 1_000_000, members: {} }, dedupe: { agents: [] } });
    expect(await peer.closedWithin(2_000)).toBe(true);
    const after = await passive.status();
    expect(counter(after, 'syncAuthFailures')).toBe(counter(before, 'syncAuthFailures') + 1);
    expect(counter(after, 'syncLinks')).toBe(counter(before, 'syncLinks'));
    expect(after?.following).toMatchObject({ nodeId: active.nodeId, epoch });
    expect(((await passive.engine()) as { total: number }).total).not.toBe(1_000_000);
    await stillSound(active, passive, epoch);
  }, 60_000);

  it('a wrong secret fails the handshake: no server proof, closed, counted, logged once per 10 s', async () => {
    const { active, passive, epoch } = await steady(await suite.start());
    const before = await passive.status();
    for (let i = 0; i < 5; i++) {
      const peer = await Peer.connect(passive.syncPort);
      expect(await peer.authenticate(randomBytes(32), active.nodeId)).toBe(false);
      expect(await peer.closedWithin(2_000)).toBe(true);
      expect(peer.messages.map((m) => m.t)).toEqual(['challenge']);
    }
    const after = await passive.status();
    expect(counter(after, 'syncAuthFailures')).toBe(counter(before, 'syncAuthFailures') + 5);
    expect(counter(after, 'syncLinks')).toBe(counter(before, 'syncLinks'));
    // The right secret passes the same handshake (the test's peer is sound).
    const peer = await Peer.connect(passive.syncPort);
    expect(await peer.authenticate(testSecret(passive.security.syncKeyFile), 'probe')).toBe(true);
    peer.destroy();
    await stillSound(active, passive, epoch);
    const logged = passive.logs().filter((r) => r.event === 'sp.sync_auth_failed');
    expect(logged).toHaveLength(1);
  }, 60_000);

  it('junk, oversized, raw-batch and multipart frames before the hello close the connection at once; memory stays flat', async () => {
    const { active, passive, epoch } = await steady(await suite.start());
    const before = await passive.status();
    const frame = (body: Buffer) => {
      const header = Buffer.alloc(4);
      header.writeUInt32BE(body.length, 0);
      return Buffer.concat([header, body]);
    };
    const attempts: ((peer: Peer) => void)[] = [
      // A JSON frame of 2 KiB before authenticating.
      (peer) => peer.send({ t: 'auth', pad: 'x'.repeat(2_048) }),
      // Random bytes.
      (peer) => peer.write(randomBytes(4_096)),
      // Something shaped like the handshake's answer, but not one.
      (peer) => peer.send({ t: 'auth', nodeId: 'x', nonce: 'y', proof: 'z' }),
      // A raw batch frame.
      (peer) => peer.write(frame(Buffer.concat([Buffer.from([0x01]), Buffer.alloc(8), randomBytes(100)]))),
    ];
    for (const attempt of attempts) {
      const peer = await Peer.connect(passive.syncPort);
      await peer.next('challenge', 1_000);
      attempt(peer);
      expect(await peer.closedWithin(2_000)).toBe(true);
    }
    // 48 MiB of message parts (frames of 0x02 + 1 MiB) before any hello: closed at the first, nothing buffered.
    const pid = passive.pid as number;
    const rssBefore = rssBytes(pid);
    const part = frame(Buffer.concat([Buffer.from([0x02]), Buffer.alloc(1024 * 1024 - 1, 0x20)]));
    const peer = await Peer.connect(passive.syncPort);
    for (let i = 0; i < 48 && !peer.closed; i++) {
      peer.write(part);
      await peer.drained();
    }
    expect(await peer.closedWithin(2_000)).toBe(true);
    expect(rssBytes(pid) - rssBefore).toBeLessThan(16 * 1024 * 1024);
    const after = await passive.status();
    expect(counter(after, 'syncViolations')).toBeGreaterThanOrEqual(counter(before, 'syncViolations') + 5);
    expect(counter(after, 'syncLinks')).toBe(counter(before, 'syncLinks'));
    await stillSound(active, passive, epoch);
  }, 60_000);

  it('an authenticated hello with epoch MAX_SAFE_INTEGER is refused (above the lease epoch) and pins nothing', async () => {
    const { active, passive, epoch } = await steady(await suite.start());
    const key = testSecret(passive.security.syncKeyFile);
    const before = await passive.status();
    for (const hello of [
      { nodeId: active.nodeId, epoch: Number.MAX_SAFE_INTEGER },
      { nodeId: active.nodeId, epoch: epoch + 1 },
      { nodeId: passive.nodeId, epoch },
    ]) {
      const peer = await Peer.connect(passive.syncPort);
      expect(await peer.authenticate(key, hello.nodeId)).toBe(true);
      peer.send({ t: 'hello', ...hello });
      expect(await peer.closedWithin(2_000)).toBe(true);
      expect(peer.messages.some((m) => m.t === 'welcome')).toBe(false);
    }
    const after = await passive.status();
    expect(counter(after, 'syncHellosRefused')).toBe(counter(before, 'syncHellosRefused') + 3);
    expect(counter(after, 'syncLinks')).toBe(counter(before, 'syncLinks'));
    expect(after?.following).toMatchObject({ nodeId: active.nodeId, epoch });
    // The real active is not refused: a link it loses now is taken again under its epoch.
    const peer = await Peer.connect(passive.syncPort);
    expect(await peer.authenticate(key, active.nodeId)).toBe(true);
    peer.send({ t: 'hello', nodeId: active.nodeId, epoch });
    expect(await peer.next('welcome')).toMatchObject({ epoch });
    peer.destroy();
    await stillSound(active, passive, epoch);
  }, 60_000);

  it('a bad snapshot ({version: 99}, wrong shapes) is a counted violation; the passive stays up with its state', async () => {
    const { active, passive, epoch } = await steady(await suite.start());
    const key = testSecret(passive.security.syncKeyFile);
    const state = JSON.stringify(await passive.engine());
    const before = await passive.status();
    const snapshots = [
      { t: 'snapshot', seq: 0, engine: { version: 99 }, dedupe: { agents: [] } },
      { t: 'snapshot', seq: 0, engine: { total: 'many', members: 5 }, dedupe: { agents: [] } },
      { t: 'snapshot', seq: 0, engine: { total: 1, members: { m: { count: 'x' } } }, dedupe: { agents: [] } },
      { t: 'snapshot', seq: 0, engine: { total: 0, members: {} }, dedupe: { agents: 'x' } },
    ];
    for (const snapshot of snapshots) {
      const peer = await Peer.connect(passive.syncPort);
      expect(await peer.authenticate(key, active.nodeId)).toBe(true);
      peer.send({ t: 'hello', nodeId: active.nodeId, epoch });
      expect(await peer.next('welcome')).toBeDefined();
      peer.send(snapshot);
      expect(await peer.closedWithin(2_000)).toBe(true);
      expect(peer.messages.some((m) => m.t === 'ack')).toBe(false);
      expect(passive.pid).toBeDefined();
    }
    const after = await passive.status();
    expect(counter(after, 'syncViolations')).toBe(counter(before, 'syncViolations') + snapshots.length);
    expect(JSON.stringify(await passive.engine())).toBe(state);
    await stillSound(active, passive, epoch);
  }, 60_000);

  it('40 idle connections: at most 4 wait for the handshake, the rest are closed and counted; a real peer still gets through', async () => {
    const { active, passive, epoch } = await steady(await suite.start());
    const before = await passive.status();
    const idle = await Promise.all(Array.from({ length: 40 }, () => Peer.connect(passive.syncPort)));
    await sleep(500);
    expect(idle.filter((p) => !p.closed).length).toBeLessThanOrEqual(4);
    const middle = await passive.status();
    expect(counter(middle, 'syncConnectionsRefused')).toBeGreaterThanOrEqual(
      counter(before, 'syncConnectionsRefused') + 36,
    );
    // A peer with the secret completes the handshake while the flood holds its connections.
    const peer = await Peer.connect(passive.syncPort);
    expect(await peer.authenticate(testSecret(passive.security.syncKeyFile), 'probe')).toBe(true);
    peer.destroy();
    // Those left are closed at the handshake deadline (5 s).
    await waitFor(() => idle.every((p) => p.closed) || undefined, 'every idle connection closed', 10_000);
    expect(counter(await passive.status(), 'syncLinks')).toBe(counter(before, 'syncLinks'));
    await stillSound(active, passive, epoch);
    for (const p of idle) p.destroy();
  }, 60_000);

  it('a Thrift frame carrying two publish calls is refused whole on the active: neither node applies any of it', async () => {
    const { active, passive, epoch } = await steady(await suite.start());
    const encode = (memberId: string): Buffer => {
      let framed: Buffer | undefined;
      const transport = new thrift.TFramedTransport(undefined, (buf?: Buffer) => {
        framed = Buffer.from(buf as Buffer);
      });
      const client = new HealthStatService.Client(transport, thrift.TBinaryProtocol) as unknown as {
        send_publish(batch: unknown): void;
      };
      // Each call alone is a batch the active takes: signed, for the member its agent id names.
      const batch = signedBatch(memberKeyOf(active), { agentId: memberId, sequence: 1, stats: [stat(memberId, 1)] });
      client.send_publish(toBatchWire(batch));
      return (framed as Buffer).subarray(4);
    };
    const calls = Buffer.concat([encode('m-first'), encode('m-second')]);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(calls.length, 0);
    const before = await active.status();
    const socket = net.connect(active.thriftPort, '127.0.0.1');
    socket.on('error', () => {});
    const replies: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => replies.push(chunk));
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write(Buffer.concat([header, calls]));
    await Promise.race([closed, sleep(3_000)]);
    socket.destroy();
    expect(replies).toEqual([]);
    const after = await active.status();
    expect(counter(after, 'badFrames')).toBe(counter(before, 'badFrames') + 1);
    const members = async (node: TestSpNode) =>
      Object.keys(((await node.engine()) as { members: Record<string, unknown> }).members);
    await sleep(200);
    expect(await members(active)).not.toContain('m-first');
    expect(await members(active)).not.toContain('m-second');
    expect(await members(passive)).toEqual(await members(active));
    // The same two batches, one call per frame, are taken: the refusal was of the frame alone.
    const client = new FailoverClient(memberKeyOf(active), [active.thriftPort]);
    for (const memberId of ['m-first', 'm-second'])
      expect(await client.send({ agentId: memberId, sequence: 1, stats: [stat(memberId, 1)] })).toMatchObject({
        duplicate: false,
        replicated: true,
      });
    client.close();
    expect(await members(active)).toEqual(expect.arrayContaining(['m-first', 'm-second']));
    expect(await members(passive)).toEqual(await members(active));
    await stillSound(active, passive, epoch);
  }, 60_000);
});

describe('a planted pending fault through the sync port', () => {
  const suite = pairSuite();
  let brokers: [TestBroker, TestBroker];
  let subscriber: Subscriber;
  const received: Envelope[] = [];

  beforeAll(async () => {
    brokers = await startBrokerPair('aedes');
    subscriber = watchAsAutoscaler({
      brokers: brokerEndpoints(brokers),
      credentials: TEST_CREDENTIALS.autoscaler,
      topics: ['summarized-health-stats/#'],
      onEnvelope: (envelope) => void received.push(envelope),
    });
  });
  afterAll(async () => {
    await subscriber?.close();
    await Promise.all((brokers ?? []).map((b) => b.stop()));
  });

  it('an unauthenticated peer cannot plant a ports_not_open fault that the next takeover would publish', async () => {
    const pair = await suite.start({
      engine: 'cep',
      brokers: brokerEndpoints(brokers),
      cep: { faultTimeoutMs: 60_000, summaryIntervalMs: 1_000, windowMs: 10_000 },
      messaging: { pingIntervalMs: 200, resubscribeIntervalMs: 500, republishIntervalMs: 1_000 },
    });
    const { active, passive, epoch } = await steady(pair);
    // The forged state: a passive engine that saw php-victim report ports_not_open holds that fault pending.
    const forger = createCepEngine({ source: active.nodeId });
    forger.apply({
      agentId: 'agent-php-victim',
      sequence: 1,
      stats: [{ ...stat('php-victim', 1), healthDescription: 'ports_not_open', timestamp: Date.now() }],
    });
    const planted = forger.exportState() as { pending: unknown[] };
    forger.close();
    expect(planted.pending.length).toBeGreaterThan(0);
    const before = await passive.status();
    const peer = await Peer.connect(passive.syncPort);
    peer.send({ t: 'hello', nodeId: active.nodeId, epoch: Number.MAX_SAFE_INTEGER });
    peer.send({ t: 'snapshot', seq: 0, engine: planted, dedupe: { agents: [] } });
    expect(await peer.closedWithin(2_000)).toBe(true);
    expect(counter(await passive.status(), 'syncAuthFailures')).toBe(counter(before, 'syncAuthFailures') + 1);
    await stillSound(active, passive, epoch);
    // The takeover publishes what the passive holds pending: no fault for php-victim may be among it.
    await active.kill('SIGKILL');
    await waitFor(async () => (await passive.status())?.role === 'ACTIVE' || undefined, 'the passive took over');
    await sleep(3_000);
    const faults = received.filter((e) => e.type === 'MemberFaultEvent');
    expect(faults.map((e) => (e.data as { memberId: string }).memberId)).not.toContain('php-victim');
    // Not for want of publishing: the new active's outputs do reach the autoscaler.
    expect(received.some((e) => e.source === passive.nodeId)).toBe(true);
  }, 90_000);
});
