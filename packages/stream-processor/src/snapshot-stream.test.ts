import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { type CepEngine, createCepEngine } from '@faultline/cep';
import type { Logger } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import type { HealthStatBatch } from '@faultline/protocol';
import { testMember } from '@faultline/protocol/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { BatchDedupe } from './batch-dedupe.js';
import { encodeFrame, FrameReader } from './framing.js';
import type { QueryEngine } from './query-engine.js';
import { DEDUPE_CHUNK_MAX_BYTES, streamSnapshot } from './snapshot-stream.js';
import { StatLedger } from './stat-ledger.js';
import { newNonce, syncProof } from './sync-auth.js';
import { SyncLink } from './sync-link.js';
import { SyncServer } from './sync-server.js';
import { ManualClock } from './testing/index.js';

/*
 * Issue "Performance: 100 000 members on one SP pair": the snapshot was one
 * JSON document, built, sent and applied in one turn of the event loop each
 * side (~2 s at 100 000 members), and the passive's time applying it counted
 * against the active's 1 s acknowledgement watchdog, so a large state
 * re-linked every second. It now streams (snapshot-stream.ts, SyncLink).
 */

const KEY = randomBytes(32);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const until = async (done: () => boolean, ms = 5_000) => {
  for (const started = Date.now(); !done() && Date.now() - started < ms; ) await sleep(2);
};

/** Each agent numbers its own batches 1, 2, 3, … */
const sequences = new Map<string, number>();
function batch(memberId: string, timestamp: number, value = 1): HealthStatBatch {
  const sequence = (sequences.get(memberId) ?? 0) + 1;
  sequences.set(memberId, sequence);
  return {
    agentId: memberId,
    sequence,
    stats: [{ ...testMember(memberId), healthDescription: 'load_average', value, timestamp }],
  };
}

/** What the active's side does with an accepted batch: dedupe, apply, forward. */
function accept(side: Side, b: HealthStatBatch, link: SyncLink): Promise<boolean> {
  if (side.dedupe.add(b.agentId, b.sequence) === 'added') side.engine.apply(b);
  return link.replicate(b);
}

interface Side {
  engine: QueryEngine;
  dedupe: BatchDedupe;
}

const closers: (() => unknown)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

/** The active's side: a link streaming `active`'s state (ack timeout 1 s), dropped after the test. */
function activeLink(active: Side, clock: ManualClock, logger: Logger): SyncLink {
  const link = new SyncLink({
    nodeId: 'sp-1',
    maxFrameBytes: 1 << 20,
    key: KEY,
    ackTimeoutMs: 1_000,
    handshakeTimeoutMs: 5_000,
    clock,
    logger,
    snapshot: () => streamSnapshot(active.engine, active.dedupe),
  });
  closers.push(() => link.detach('closing'));
  return link;
}

/** A passive (SyncServer) applying to `passive`, and an active's link streaming `active`'s state. */
async function linkedPair(active: Side, passive: Side, clock: ManualClock, logger: Logger = createMemoryLogger()) {
  const events: string[] = [];
  const server = new SyncServer({
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
    leaseHolder: async () => ({ nodeId: 'sp-1', epoch: 3 }),
    onSnapshot: (m) => {
      events.push('snapshot');
      passive.engine.importState(m.engine);
      passive.dedupe.import(m.dedupe);
    },
    onSnapshotBegin: (m) => {
      events.push('begin');
      passive.engine.importBegin(m.engine);
      passive.dedupe.beginImport();
    },
    onSnapshotChunk: (m) => {
      events.push('chunk');
      if (m.engine !== undefined) passive.engine.importChunk(m.engine);
      for (const row of (m.dedupe ?? []) as [string, number, number[]][]) passive.dedupe.importOne(row);
    },
    onSnapshotEnd: () => {
      events.push('end');
      passive.engine.importEnd();
      passive.dedupe.endImport();
    },
    onBatch: (b) => {
      events.push('batch');
      if (passive.dedupe.add(b.agentId, b.sequence) === 'added') passive.engine.apply(b);
    },
    onPublished: () => {},
  });
  const port = await server.listen();
  const link = activeLink(active, clock, logger);
  closers.push(() => server.close());
  return { server, link, port, events };
}

/** A ledger whose import takes (fake) time: 0.3 ms a member, as a busy passive would. */
class SlowImportLedger extends StatLedger {
  constructor(private readonly clock: ManualClock) {
    super();
  }
  override importState(state: unknown): void {
    super.importState(state);
    this.clock.advance(0.3 * Object.keys((state as { members: object }).members).length);
  }
  override importChunk(chunk: unknown): void {
    super.importChunk(chunk);
    this.clock.advance(0.3 * (chunk as unknown[]).length);
  }
}

describe('a streamed snapshot', () => {
  it('a passive that takes longer than the ack timeout to apply the whole state stays linked, acknowledging every batch', async () => {
    const clock = new ManualClock();
    const active: Side = { engine: new StatLedger(), dedupe: new BatchDedupe() };
    const passive: Side = { engine: new SlowImportLedger(clock), dedupe: new BatchDedupe() };
    for (let m = 0; m < 5_000; m++) {
      const b = batch(`m-${m}`, 1_000 + m);
      active.dedupe.add(b.agentId, b.sequence);
      active.engine.apply(b);
    }
    const { server, link, port } = await linkedPair(active, passive, clock);
    link.attach(`127.0.0.1:${port}`, 3, 'sp-2');
    await until(() => link.status === 'ready');
    // Batches keep coming while the passive applies the state (5 000 × 0.3 ms = 1.5 s of its time).
    const replicated: Promise<boolean>[] = [];
    for (let i = 0; i < 400 && !server.followed?.synced && link.status === 'ready'; i++) {
      replicated.push(accept(active, batch(`m-${i % 7_000}`, 10_000 + i), link));
      await sleep(1);
    }
    await until(() => server.followed?.synced === true || link.status !== 'ready');
    expect(link.status).toBe('ready');
    expect(link.degraded).toBe(0);
    expect(await Promise.all(replicated)).not.toContain(false);
    expect(server.followed?.synced).toBe(true);
    await until(() => link.lag().batches === 0);
    expect(passive.engine.exportState()).toEqual(active.engine.exportState());
    expect(passive.dedupe.export().agents.sort()).toEqual(active.dedupe.export().agents.sort());
  });

  it('leaves the passive with the active’s state when batches change members before, during and after their chunk', async () => {
    const clock = new ManualClock();
    const cep = (): CepEngine =>
      createCepEngine({ source: 'sp', clock, logger: createMemoryLogger(), faultTimeoutMs: 60_000 });
    const active: Side = { engine: cep(), dedupe: new BatchDedupe() };
    const passive: Side = { engine: cep(), dedupe: new BatchDedupe() };
    closers.push(
      () => active.engine.close(),
      () => passive.engine.close(),
    );
    for (let m = 0; m < 20_000; m++) {
      const b = batch(`m-${m}`, 1_000 + m, m % 10);
      active.dedupe.add(b.agentId, b.sequence);
      active.engine.apply(b);
    }
    const { server, link, port, events } = await linkedPair(active, passive, clock);
    link.attach(`127.0.0.1:${port}`, 3, 'sp-2');
    await until(() => link.status === 'ready');
    // One batch a turn of the event loop, as chunks go: members early and late in the walk, and new ones.
    const replicated: Promise<boolean>[] = [];
    for (let i = 0; link.snapshotInProgress; i++) {
      replicated.push(accept(active, batch(`m-${(i * 7_919) % 25_000}`, 50_000 + i, i % 13), link));
      if (i === 3) (active.engine as CepEngine).forget('m-19999'); // the topology removes one mid-stream
      if (i === 3) (passive.engine as CepEngine).forget('m-19999');
      await new Promise((resolve) => setImmediate(resolve));
    }
    await until(() => server.followed?.synced === true);
    for (let i = 0; i < 20; i++) replicated.push(accept(active, batch(`m-${i}`, 90_000 + i), link));
    expect(await Promise.all(replicated)).not.toContain(false);
    const chunks = events.filter((e) => e === 'chunk').length;
    const between = events.slice(events.indexOf('chunk'), events.lastIndexOf('chunk')).filter((e) => e === 'batch');
    expect(chunks).toBeGreaterThan(2);
    expect(between.length).toBeGreaterThan(0); // batches did go between chunks
    const state = (side: Side) => {
      const { exportedAt: _, ...rest } = (side.engine as CepEngine).exportState();
      const byId = <T extends { memberId: string }>(xs: T[]) =>
        [...xs].sort((a, b) => (a.memberId < b.memberId ? -1 : 1));
      return { ...rest, members: byId(rest.members), series: byId(rest.series) };
    };
    expect(state(passive).members).toHaveLength(state(active).members.length);
    const a = state(active);
    const p = state(passive);
    for (const key of Object.keys(a) as (keyof typeof a)[]) expect([key, p[key]]).toEqual([key, a[key]]);
    expect(passive.dedupe.export().agents.sort()).toEqual(active.dedupe.export().agents.sort());
  });

  it('sends every dedupe agent before any member: a passive whose engine matches knows every batch, whenever its active dies', () => {
    const active: Side = { engine: new StatLedger(), dedupe: new BatchDedupe() };
    for (let m = 0; m < 50; m++) {
      const b = batch(`ordered-${m}`, 1_000 + m);
      active.dedupe.add(b.agentId, b.sequence);
      active.engine.apply(b);
    }
    const stream = streamSnapshot(active.engine, active.dedupe);
    expect(stream.header.agents).toBe(50);
    const kinds: string[] = [];
    for (let chunk = stream.next(7); chunk; chunk = stream.next(7))
      kinds.push(...(chunk.dedupe ? ['dedupe'] : []), ...(chunk.engine !== undefined ? ['engine'] : []));
    expect(kinds.indexOf('engine')).toBeGreaterThan(kinds.lastIndexOf('dedupe'));
    expect(kinds.filter((k) => k === 'dedupe')).toHaveLength(Math.ceil(50 / 7));
  });

  it('cuts the dedupe agents by bytes too: agents with long gaps make smaller chunks, never one past the bound', () => {
    const dedupe = new BatchDedupe();
    // 2 000 agents each holding a full window above its floor (a gap at 1): 1 024 sequences, some 4 KB a row.
    for (let a = 0; a < 2_000; a++) for (let seq = 2; seq <= 1_025; seq++) dedupe.add(`gappy-${a}`, seq);
    const stream = streamSnapshot(new StatLedger(), dedupe);
    let agents = 0;
    for (let chunk = stream.next(20_000); chunk?.dedupe; chunk = stream.next(20_000)) {
      expect(chunk.dedupe.length).toBeGreaterThan(0);
      expect(JSON.stringify(chunk.dedupe).length).toBeLessThan(DEDUPE_CHUNK_MAX_BYTES + 20_000);
      agents += chunk.dedupe.length;
    }
    expect(agents).toBe(2_000);
  });

  it('is well under half the size on the wire of the one document it replaces', () => {
    const engine = createCepEngine({ source: 'sp', logger: createMemoryLogger() });
    closers.push(() => engine.close());
    for (let m = 0; m < 2_000; m++) {
      for (const t of [1_000, 6_000, 11_000])
        engine.apply({
          agentId: `a-${m}`,
          sequence: t,
          stats: ['load_average', 'memory_consumption', 'requests_in_flight'].map((healthDescription) => ({
            ...testMember(`checkout-api-7f9c2-${m}`),
            clusterId: 'checkout-api',
            healthDescription: healthDescription as 'load_average',
            value: 12.5,
            timestamp: t,
          })),
        });
    }
    const whole = encodeFrame(engine.exportState()).length;
    const stream = engine.exportStream();
    let streamed = encodeFrame(stream.header).length;
    for (let chunk = stream.next(500); chunk; chunk = stream.next(500)) streamed += encodeFrame(chunk).length;
    expect(streamed * 2.5).toBeLessThan(whole);
  });
});

/** A hand-made active: authenticates, says hello, then sends what the test says. */
async function handActive(port: number) {
  const socket = net.connect({ host: '127.0.0.1', port });
  const messages: Record<string, unknown>[] = [];
  let closed = false;
  const reader = new FrameReader(
    1 << 20,
    (m) => void messages.push(m as Record<string, unknown>),
    () => {},
  );
  socket.on('data', (chunk: Buffer) => reader.push(chunk));
  socket.on('error', () => {});
  socket.on('close', () => {
    closed = true;
  });
  const send = (m: unknown) => socket.write(encodeFrame(m, 1 << 20));
  await until(() => messages.length > 0);
  const challenge = messages[0] as { nonce: string; nodeId: string };
  const facts = { serverNonce: challenge.nonce, clientNonce: newNonce(), clientNodeId: 'sp-1', serverNodeId: 'sp-2' };
  send({ t: 'auth', nodeId: 'sp-1', nonce: facts.clientNonce, proof: syncProof(KEY, 'client', facts) });
  await until(() => messages.some((m) => m.t === 'authenticated'));
  send({ t: 'hello', nodeId: 'sp-1', epoch: 3 });
  await until(() => messages.some((m) => m.t === 'welcome'));
  closers.push(() => socket.destroy());
  return { send, messages, closed: () => closed, socket };
}

describe('a streamed snapshot from a hostile or broken active', () => {
  const b = batch('m-1', 5_000);
  const header = { t: 'snapshot-begin', seq: 0, engine: { total: 0, members: 0 }, agents: 0 };
  it.each([
    ['a chunk before the header', [{ t: 'snapshot-chunk', n: 1, engine: [] }], /chunk 1 where no chunk was due/],
    ['a chunk out of turn', [header, { t: 'snapshot-chunk', n: 2, engine: [] }], /chunk 2 where chunk 1 was due/],
    ['a batch before the snapshot', [{ t: 'batch', seq: 1, batch: b }], /a batch before the snapshot/],
    ['an end that skips chunks', [header, { t: 'snapshot-end', chunks: 3 }], /snapshot end after 3 chunks/],
    ['a bad row', [header, { t: 'snapshot-chunk', n: 1, engine: [['m-1', 'x', 0, 0, 0]] }], /bad snapshot/],
    ['a second header', [header, header], /a second snapshot/],
  ])('%s: the link is closed and counted, the server keeps serving', async (_, frames, reason) => {
    const clock = new ManualClock();
    const logger = createMemoryLogger();
    const passive: Side = { engine: new StatLedger(), dedupe: new BatchDedupe() };
    const active: Side = { engine: new StatLedger(), dedupe: new BatchDedupe() };
    const { server, port } = await linkedPair(active, passive, clock, logger);
    const peer = await handActive(port);
    for (const frame of frames) peer.send(frame);
    await until(peer.closed);
    expect(peer.closed()).toBe(true);
    expect(server.counters.violations).toBe(1);
    expect(logger.records.some((r) => reason.test(String(r.fields?.reason ?? '')))).toBe(true);
    // The next link streams normally.
    const next = await handActive(port);
    next.send(header);
    next.send({ t: 'snapshot-end', chunks: 0 });
    await until(() => next.messages.some((m) => m.t === 'ack'));
    expect(server.followed?.synced).toBe(true);
  });

  /**
   * A passive that proves the key and welcomes the link, then answers what
   * the active streams with `answer`; and an active linked to it.
   */
  async function roguePassive(answer: (message: { t: string }, write: (m: unknown) => void) => void) {
    const clock = new ManualClock();
    const active: Side = { engine: new StatLedger(), dedupe: new BatchDedupe() };
    for (let m = 0; m < 50; m++) active.engine.apply(batch(`m-${m}`, 1_000));
    const nonce = newNonce();
    const sockets: net.Socket[] = [];
    const rogue = net.createServer((socket) => {
      sockets.push(socket);
      const write = (m: unknown) => socket.write(encodeFrame(m));
      const reader = new FrameReader(
        1 << 20,
        (m) => {
          const message = m as { t: string; nodeId: string; nonce: string };
          if (message.t === 'auth') {
            const facts = {
              serverNonce: nonce,
              clientNonce: message.nonce,
              clientNodeId: message.nodeId,
              serverNodeId: 'sp-2',
            };
            write({ t: 'authenticated', proof: syncProof(KEY, 'server', facts) });
          } else if (message.t === 'hello') write({ t: 'welcome', epoch: 3 });
          else answer(message, write);
        },
        () => {},
      );
      socket.on('data', (chunk: Buffer) => reader.push(chunk));
      socket.on('error', () => {});
      write({ t: 'challenge', nodeId: 'sp-2', nonce });
    });
    await new Promise<void>((resolve) => rogue.listen(0, '127.0.0.1', () => resolve()));
    closers.push(() => {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => rogue.close(resolve));
    });
    const logger = createMemoryLogger();
    const link = activeLink(active, clock, logger);
    link.attach(`127.0.0.1:${(rogue.address() as net.AddressInfo).port}`, 3, 'sp-2');
    await until(() => link.status !== 'connecting');
    const unlinked = async () => {
      await until(() => link.status !== 'ready');
      expect(link.status).toBe('none');
      return String(logger.records.find((r) => r.fields?.event === 'sp.passive_unlinked')?.fields?.reason);
    };
    return { link, active, clock, unlinked };
  }

  it('an active told of a chunk it never sent drops the link', async () => {
    const { unlinked } = await roguePassive((message, write) => {
      if (message.t === 'snapshot-begin') write({ t: 'snapshot-ack', n: 9 });
    });
    expect(await unlinked()).toMatch(/acknowledgement of chunk 9/);
  });

  it('an active whose passive acknowledges batches but never the chunk before them drops the link', async () => {
    let chunkSeen = false;
    const { link, active, unlinked } = await roguePassive((message, write) => {
      if (message.t === 'snapshot-chunk' && !chunkSeen) {
        chunkSeen = true;
        write({ t: 'ack', seq: 1 });
      }
    });
    await until(() => chunkSeen);
    void accept(active, batch('m-1', 2_000), link);
    expect(await unlinked()).toMatch(/acknowledged batch 1 before chunk 1/);
  });

  it('an active whose passive stops answering in the middle of the snapshot drops the link within the ack timeout', async () => {
    const { clock, unlinked } = await roguePassive(() => {});
    await sleep(20);
    clock.advance(900);
    await sleep(5);
    clock.advance(400); // the watchdog looks every 250 ms
    expect(await unlinked()).toMatch(/the snapshot made no progress within 1000 ms/);
  });
});
