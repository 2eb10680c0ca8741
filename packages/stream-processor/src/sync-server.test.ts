import { randomBytes } from 'node:crypto';
import net from 'node:net';
import type { Logger } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import { batchOf, encodeBatch, type HealthStatBatch } from '@faultline/protocol';
import { columnsOf, testStat } from '@faultline/protocol/testing';
import { waitFor } from '@faultline/test-support';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BatchDedupe } from './batch-dedupe.js';
import { encodeCheckedBatchFrame, encodeFrame, encodeRawBatch, FrameReader } from './framing.js';
import { streamSnapshot } from './snapshot-stream.js';
import { StatLedger } from './stat-ledger.js';
import { type HandshakeFacts, newNonce, syncProof, verifySyncProof } from './sync-auth.js';
import { SyncLink } from './sync-link.js';
import { type LeaseHolder, SyncServer, type SyncServerOptions } from './sync-server.js';
import { ManualClock } from './testing/index.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const KEY = randomBytes(32);

/** A Thrift `publish` call of `batch` as an agent sends it (the frame's payload): header, then the one argument. */
function publishCall(batch: HealthStatBatch): Buffer {
  const head = Buffer.alloc(4 + 4 + 7 + 4 + 3);
  head.writeInt32BE(0x80010001 | 0, 0); // version 1, a call
  head.writeInt32BE(7, 4);
  head.write('publish', 8, 'latin1');
  head.writeInt32BE(1, 15); // seqid
  head.writeUInt8(12, 19); // field 1, a struct: the batch
  head.writeInt16BE(1, 20);
  return Buffer.concat([head, encodeBatch(batch), Buffer.from([0])]);
}

/** A peer that speaks the framing by hand. */
class Peer {
  readonly messages: Record<string, unknown>[] = [];
  closed = false;
  constructor(readonly socket: net.Socket) {
    const reader = new FrameReader(
      1 << 20,
      (m) => void this.messages.push(m as Record<string, unknown>),
      () => socket.destroy(),
    );
    socket.on('data', (chunk: Buffer) => reader.push(chunk));
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
    });
  }
  static async connect(port: number): Promise<Peer> {
    const socket = net.connect(port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    return new Peer(socket);
  }
  send(message: unknown): void {
    this.socket.write(encodeFrame(message));
  }
  async next(t: string): Promise<Record<string, unknown> | undefined> {
    for (let i = 0; i < 200; i++) {
      const found = this.messages.find((m) => m.t === t);
      if (found || this.closed) return found;
      await sleep(5);
    }
    return undefined;
  }
  async untilClosed(): Promise<boolean> {
    for (let i = 0; i < 200 && !this.closed; i++) await sleep(5);
    return this.closed;
  }
  /** The client half of the handshake; resolves whether the server proved the same key. */
  async authenticate(key: Buffer, nodeId: string): Promise<boolean> {
    const challenge = await this.next('challenge');
    if (!challenge) return false;
    const facts: HandshakeFacts = {
      serverNonce: String(challenge.nonce),
      clientNonce: newNonce(),
      clientNodeId: nodeId,
      serverNodeId: String(challenge.nodeId),
    };
    this.send({ t: 'auth', nodeId, nonce: facts.clientNonce, proof: syncProof(key, 'client', facts) });
    const answer = await this.next('authenticated');
    return answer !== undefined && verifySyncProof(key, 'server', facts, String(answer.proof));
  }
}

/** The passive's sync server as a node runs it: sp-2 on a free loopback port, accepting. */
const passiveOptions = (clock: ManualClock, logger: Logger) => ({
  nodeId: 'sp-2',
  host: '127.0.0.1',
  port: 0,
  maxFrameBytes: 1 << 20,
  key: KEY,
  handshakeTimeoutMs: 5_000,
  maxPendingConnections: 4,
  clock,
  logger,
  accepting: () => true,
  onSnapshotBegin: () => {},
  onSnapshotChunk: () => {},
  onSnapshotEnd: () => {},
});

describe('sync handshake proofs', () => {
  const facts: HandshakeFacts = {
    serverNonce: newNonce(),
    clientNonce: newNonce(),
    clientNodeId: 'sp-1',
    serverNodeId: 'sp-2',
  };

  it('verify under the same key and role only, and over these facts only', () => {
    const proof = syncProof(KEY, 'client', facts);
    expect(proof).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(verifySyncProof(KEY, 'client', facts, proof)).toBe(true);
    expect(verifySyncProof(randomBytes(32), 'client', facts, proof)).toBe(false);
    // A client's proof reflected back as the server's does not pass.
    expect(verifySyncProof(KEY, 'server', facts, proof)).toBe(false);
    for (const changed of [
      { serverNonce: newNonce() },
      { clientNonce: newNonce() },
      { clientNodeId: 'sp-3' },
      { serverNodeId: 'sp-1' },
    ])
      expect(verifySyncProof(KEY, 'client', { ...facts, ...changed }, proof)).toBe(false);
    expect(verifySyncProof(KEY, 'client', facts, 'short')).toBe(false);
  });
});

describe('SyncServer: who may link', () => {
  const servers: SyncServer[] = [];
  const peers: Peer[] = [];
  afterEach(async () => {
    for (const p of peers.splice(0)) p.socket.destroy();
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  const start = async (overrides: Partial<SyncServerOptions> = {}) => {
    const clock = new ManualClock();
    const logger = createMemoryLogger();
    let holder: LeaseHolder | undefined = { nodeId: 'sp-1', epoch: 7 };
    const snapshots: unknown[] = [];
    const server = new SyncServer({
      ...passiveOptions(clock, logger),
      maxPendingConnections: 2,
      leaseHolder: async () => holder,
      onSnapshot: (snapshot) => {
        if ((snapshot.engine as { version?: number }).version === 99) throw new Error('unknown version 99');
        snapshots.push(snapshot.engine);
      },
      onBatch: () => {},
      onPublished: () => {},
      ...overrides,
    });
    servers.push(server);
    const port = await server.listen();
    const connect = async () => {
      const peer = await Peer.connect(port);
      peers.push(peer);
      return peer;
    };
    return { server, clock, logger, connect, snapshots, setHolder: (h: LeaseHolder | undefined) => (holder = h) };
  };

  /** A peer authenticated with the pair's key that said hello and was welcomed, or not. */
  const linkAs = async (connect: () => Promise<Peer>, nodeId: string, epoch: number) => {
    const peer = await connect();
    expect(await peer.authenticate(KEY, nodeId)).toBe(true);
    peer.send({ t: 'hello', nodeId, epoch });
    return { peer, welcome: await peer.next('welcome') };
  };

  it('links a peer that proves the key and names the lease holder and epoch; then takes its snapshot', async () => {
    const { server, connect, snapshots } = await start();
    const { peer, welcome } = await linkAs(connect, 'sp-1', 7);
    expect(welcome).toEqual({ t: 'welcome', epoch: 7 });
    // Linked, but a takeover now would start from a partial state: not synced (not ready) until its snapshot.
    expect(server.following).toEqual({ nodeId: 'sp-1', epoch: 7, lastSeq: 0, synced: false });
    peer.send({ t: 'snapshot', seq: 0, engine: { total: 3 }, dedupe: { agents: [] } });
    expect(await peer.next('ack')).toEqual({ t: 'ack', seq: 0 });
    expect(snapshots).toEqual([{ total: 3 }]);
    expect(server.following).toEqual({ nodeId: 'sp-1', epoch: 7, lastSeq: 0, synced: true });
    expect(server.counters).toMatchObject({ links: 1, violations: 0, authFailures: 0, hellosRefused: 0 });
  });

  it('records when the followed link last carried a message: a link that dies silently never closes', async () => {
    const { server, connect, clock } = await start();
    const { peer } = await linkAs(connect, 'sp-1', 7);
    expect(server.followed).toMatchObject({ nodeId: 'sp-1', epoch: 7, endedAt: undefined, lastMessageAt: 0 });
    clock.advance(3_000);
    peer.send({ t: 'snapshot', seq: 0, engine: { total: 3 }, dedupe: { agents: [] } });
    await peer.next('ack');
    clock.advance(5_000); // nothing more: the link is quiet, and still open
    expect(server.followed).toMatchObject({ synced: true, endedAt: undefined, lastMessageAt: 3_000 });
  });

  it('refuses a wrong key, and anything before authenticating; logs once per 10 s per peer and reason', async () => {
    const { server, connect, logger, clock } = await start();
    for (let i = 0; i < 3; i++) {
      const peer = await connect();
      expect(await peer.authenticate(randomBytes(32), 'sp-1')).toBe(false);
      expect(await peer.untilClosed()).toBe(true);
      expect(peer.messages.map((m) => m.t)).toEqual(['challenge']);
    }
    const early = await connect();
    early.send({ t: 'hello', nodeId: 'sp-1', epoch: 7 });
    expect(await early.untilClosed()).toBe(true);
    expect(server.counters).toMatchObject({ authFailures: 4, links: 0 });
    const logged = () => logger.records.filter((r) => r.fields.event === 'sp.sync_auth_failed');
    expect(logged().map((r) => r.fields.code)).toEqual(['bad_proof', 'not_authenticated']);
    clock.advance(10_000);
    const again = await connect();
    expect(await again.authenticate(randomBytes(32), 'sp-1')).toBe(false);
    await again.untilClosed();
    expect(logged().at(-1)?.fields).toMatchObject({ code: 'bad_proof', suppressed: 2 });
  });

  it('before the link: one frame of at most 1 KiB per step, nothing in parts, no batch', async () => {
    const { server, connect } = await start({ maxPendingConnections: 10 });
    const attempts: Buffer[] = [
      encodeFrame({ t: 'auth', pad: 'x'.repeat(2_000) }),
      encodeFrame({ t: 'auth', pad: 'y'.repeat(4_000) }, 512),
      Buffer.concat([Buffer.from([0, 0, 0, 20, 0x01]), Buffer.alloc(19)]),
      Buffer.from('GET / HTTP/1.1\r\n\r\n'),
    ];
    for (const bytes of attempts) {
      const peer = await connect();
      await peer.next('challenge');
      peer.socket.write(bytes);
      expect(await peer.untilClosed()).toBe(true);
    }
    // Authenticated, a second frame before the welcome is refused too.
    const peer = await connect();
    expect(await peer.authenticate(KEY, 'sp-1')).toBe(true);
    peer.send({ t: 'auth', nodeId: 'sp-1', nonce: newNonce(), proof: newNonce() });
    expect(await peer.untilClosed()).toBe(true);
    expect(server.counters).toMatchObject({ violations: 5, links: 0 });
  });

  it('refuses a hello above the lease epoch, of another node, or stale, without pinning a thing', async () => {
    const { server, connect, setHolder } = await start({ maxPendingConnections: 10 });
    for (const [nodeId, epoch] of [
      ['sp-1', Number.MAX_SAFE_INTEGER],
      ['sp-1', 8],
      ['sp-3', 7],
      ['sp-1', 6],
    ] as const) {
      const { peer, welcome } = await linkAs(connect, nodeId, epoch);
      expect(welcome).toBeUndefined();
      expect(await peer.untilClosed()).toBe(true);
    }
    setHolder(undefined);
    expect((await linkAs(connect, 'sp-1', 7)).welcome).toBeUndefined();
    expect(server.counters).toMatchObject({ hellosRefused: 5, links: 0 });
    // The real holder is still taken.
    setHolder({ nodeId: 'sp-1', epoch: 7 });
    expect((await linkAs(connect, 'sp-1', 7)).welcome).toEqual({ t: 'welcome', epoch: 7 });
    expect(server.following).toMatchObject({ nodeId: 'sp-1', epoch: 7 });
  });

  it('closes a connection not linked within the handshake deadline (on the clock)', async () => {
    const { server, connect, clock } = await start();
    const idle = await connect();
    const authenticated = await connect();
    expect(await authenticated.authenticate(KEY, 'sp-1')).toBe(true);
    await idle.next('challenge');
    clock.advance(4_999);
    await sleep(20);
    expect(idle.closed || authenticated.closed).toBe(false);
    clock.advance(1);
    expect(await idle.untilClosed()).toBe(true);
    expect(await authenticated.untilClosed()).toBe(true);
    expect(server.counters).toMatchObject({ authFailures: 1, violations: 1 });
  });

  it('keeps at most maxPendingConnections waiting, closing the oldest unauthenticated one', async () => {
    const { server, connect } = await start({ maxPendingConnections: 2 });
    const authenticated = await connect();
    expect(await authenticated.authenticate(KEY, 'sp-1')).toBe(true);
    const idle = await connect();
    await idle.next('challenge');
    const third = await connect();
    await third.next('challenge');
    expect(await idle.untilClosed()).toBe(true);
    expect(authenticated.closed).toBe(false);
    expect(third.closed).toBe(false);
    expect(server.counters.connectionsRefused).toBe(1);
    expect(server.waiting).toBe(2);
  });

  it('a bad snapshot is a violation that closes the link; the server listens on', async () => {
    const { server, connect, snapshots } = await start();
    const { peer } = await linkAs(connect, 'sp-1', 7);
    peer.send({ t: 'snapshot', seq: 0, engine: { version: 99 }, dedupe: { agents: [] } });
    expect(await peer.untilClosed()).toBe(true);
    expect(peer.messages.some((m) => m.t === 'ack')).toBe(false);
    expect(server.counters).toMatchObject({ violations: 1 });
    expect(server.following).toBeUndefined();
    const next = await linkAs(connect, 'sp-1', 7);
    next.peer.send({ t: 'snapshot', seq: 0, engine: { total: 1 }, dedupe: { agents: [] } });
    expect(await next.peer.next('ack')).toBeDefined();
    expect(snapshots).toEqual([{ total: 1 }]);
  });
  it('refuses a batch whose link sequence does not rise: the link closes, the batch unapplied', async () => {
    const applied: HealthStatBatch[] = [];
    const { server, connect } = await start({ onBatch: (b) => void applied.push(batchOf(b)) });
    const { peer } = await linkAs(connect, 'sp-1', 7);
    peer.send({ t: 'snapshot', seq: 5, engine: { total: 0 }, dedupe: { agents: [] } });
    await peer.next('ack');
    const batch = (sequence: number): HealthStatBatch => ({ agentId: 'php-m-1', sequence, stats: [testStat()] });
    peer.socket.write(encodeCheckedBatchFrame(6, batch(1)));
    peer.socket.write(encodeCheckedBatchFrame(6, batch(2)));
    expect(await peer.untilClosed()).toBe(true);
    expect(applied).toEqual([batch(1)]);
    expect(server.counters).toMatchObject({ violations: 1 });
  });

  it('applies a checked batch, and a raw Thrift call of the previous release; a damaged one closes the link unapplied', async () => {
    const applied: HealthStatBatch[] = [];
    const { server, connect } = await start({ onBatch: (b) => void applied.push(batchOf(b)) });
    const { peer } = await linkAs(connect, 'sp-1', 7);
    peer.send({ t: 'snapshot', seq: 0, engine: { total: 0 }, dedupe: { agents: [] } });
    await peer.next('ack');
    const batch = (sequence: number): HealthStatBatch => ({ agentId: 'php-m-1', sequence, stats: [testStat()] });
    peer.socket.write(encodeCheckedBatchFrame(1, batch(1)));
    peer.socket.write(encodeRawBatch(2, publishCall(batch(2))));
    for (let i = 0; i < 200 && applied.length < 2; i++) await sleep(5);
    expect(applied).toEqual([batch(1), batch(2)]);
    const damaged = encodeCheckedBatchFrame(3, batch(3));
    damaged.writeDoubleBE(Number.NaN, damaged.length - 8); // the last stat's timestamp
    peer.socket.write(damaged);
    expect(await peer.untilClosed()).toBe(true);
    expect(applied).toHaveLength(2);
    expect(server.counters).toMatchObject({ violations: 1 });
  });
});

describe('SyncLink to SyncServer', () => {
  const closers: (() => unknown)[] = [];
  afterEach(async () => {
    for (const close of closers.splice(0)) await close();
  });

  const pair = async (linkKey: Buffer, maxFrameBytes = 1 << 20) => {
    const clock = new ManualClock();
    const onSnapshot = vi.fn();
    const onBatch = vi.fn();
    const server = new SyncServer({
      ...passiveOptions(clock, createMemoryLogger()),
      leaseHolder: async () => ({ nodeId: 'sp-1', epoch: 3 }),
      onSnapshot: vi.fn(),
      onSnapshotBegin: onSnapshot,
      onBatch,
      onPublished: vi.fn(),
    });
    const port = await server.listen();
    const link = new SyncLink({
      nodeId: 'sp-1',
      maxFrameBytes,
      key: linkKey,
      ackTimeoutMs: 1_000,
      handshakeTimeoutMs: 5_000,
      clock,
      logger: createMemoryLogger(),
      snapshot: () => streamSnapshot(new StatLedger(), new BatchDedupe()),
    });
    closers.push(
      () => link.detach('closing'),
      () => server.close(),
    );
    return { server, link, port, clock, onSnapshot, onBatch };
  };

  it('links with the same key: the passive follows and takes the snapshot', async () => {
    const { server, link, port, onSnapshot } = await pair(KEY);
    link.attach(`127.0.0.1:${port}`, 3, 'sp-2');
    for (let i = 0; i < 1_000 && onSnapshot.mock.calls.length === 0; i++) await sleep(5);
    expect(link.status).toBe('ready');
    expect(onSnapshot).toHaveBeenCalledWith(expect.objectContaining({ engine: { total: 0, members: 0 } }), 'sp-1');
    expect(server.following).toMatchObject({ nodeId: 'sp-1', epoch: 3 });
    expect(link.authFailures + server.counters.authFailures).toBe(0);
  });

  it('never links with another key, at either end, nor to a passive that is not the expected node', async () => {
    const { server, link, port } = await pair(randomBytes(32));
    link.attach(`127.0.0.1:${port}`, 3);
    // The passive counts the failure, then closes; the link learns of it when the close reaches it.
    await waitFor(() => server.counters.authFailures > 0 && link.status === 'none', 'the refused link dropped', 5_000);
    expect(server.counters.authFailures).toBe(1);
    expect(link.status).toBe('none');
    expect(server.following).toBeUndefined();
    const right = await pair(KEY);
    right.link.attach(`127.0.0.1:${right.port}`, 3, 'sp-9');
    await waitFor(() => right.link.authFailures > 0, 'the link refusing the wrong node', 5_000);
    expect(right.link.authFailures).toBe(1);
    expect(right.link.status).toBe('none');
  });

  it('drops a link the passive does not welcome within the deadline', async () => {
    const { link, clock } = await pair(KEY);
    // A listener that accepts and says nothing (a paused passive).
    const silent = net.createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', () => resolve()));
    closers.push(() => new Promise((resolve) => silent.close(resolve)));
    link.attach(`127.0.0.1:${(silent.address() as net.AddressInfo).port}`, 3);
    await sleep(20);
    expect(link.status).toBe('connecting');
    clock.advance(4_900);
    expect(link.status).toBe('connecting');
    clock.advance(400); // the watchdog looks every 250 ms
    expect(link.status).toBe('none');
  });

  it('settled: a batch resent while its first copy is on its way is answered once the passive holds that copy', async () => {
    const { link, port, onSnapshot, onBatch } = await pair(KEY);
    link.attach(`127.0.0.1:${port}`, 3, 'sp-2');
    for (let i = 0; i < 1_000 && onSnapshot.mock.calls.length === 0; i++) await sleep(5);
    expect(link.status).toBe('ready');
    expect(await link.settled()).toBe(true); // nothing on its way, the link ready
    const batch = (sequence: number) => ({
      agentId: 'php-m-1',
      sequence,
      stats: [testStat({ timestamp: Date.now() })],
    });
    const first = link.replicate(batch(1));
    const resent = link.settled().then((held) => ({ held, passiveHadIt: onBatch.mock.calls.length }));
    expect(await first).toBe(true);
    expect(await resent).toEqual({ held: true, passiveHadIt: 1 });
    // The link lost with a batch on its way: neither is held.
    const lost = link.replicate(batch(2));
    const lostResent = link.settled();
    link.detach('test');
    expect(await lost).toBe(false);
    expect(await lostResent).toBe(false);
    expect(await link.settled()).toBe(false); // nothing on its way, no link
  });
  it('sends a batch whose checked frame would not fit a frame as JSON in parts, which the passive applies', async () => {
    const { link, port, onSnapshot, onBatch } = await pair(KEY, 600);
    link.attach(`127.0.0.1:${port}`, 3, 'sp-2');
    for (let i = 0; i < 1_000 && onSnapshot.mock.calls.length === 0; i++) await sleep(5);
    expect(link.status).toBe('ready');
    const stats = Array.from({ length: 40 }, (_, i) => testStat({ value: i, timestamp: Date.now() }));
    const batch = { agentId: 'php-m-1', sequence: 1, stats };
    expect(await link.replicate(batch)).toBe(true);
    expect(onBatch.mock.calls.map((c) => c[0])).toEqual([batch]);
    // The same in columns (as the active reads an agent's call): its stats go as objects.
    const columns = columnsOf({ ...batch, sequence: 2 });
    expect(await link.replicate(columns)).toBe(true);
    expect(link.status).toBe('ready');
    expect(onBatch.mock.calls.map((c) => batchOf(c[0]))).toEqual([batch, { ...batch, sequence: 2 }]);
  });

  it('drops the link when a batch cannot be encoded: the next snapshot carries it', async () => {
    const { link, port, onSnapshot, onBatch } = await pair(KEY);
    link.attach(`127.0.0.1:${port}`, 3, 'sp-2');
    for (let i = 0; i < 1_000 && onSnapshot.mock.calls.length === 0; i++) await sleep(5);
    const unwritable = { agentId: 'a'.repeat(70_000), sequence: 1, stats: [testStat()] };
    expect(await link.replicate(unwritable)).toBe(false);
    expect(link.status).toBe('none');
    expect(onBatch).not.toHaveBeenCalled();
  });
});
