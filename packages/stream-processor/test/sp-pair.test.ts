import net from 'node:net';
import { isDeepStrictEqual } from 'node:util';
import { connectHealthStat, fromAckWire, toBatchWire } from '@faultline/protocol';
import { signedBatch } from '@faultline/protocol/testing';
import type { TestSpNode } from '@faultline/test-support';
import { describe, expect, it } from 'vitest';
import { FailoverClient, memberKeyOf, pairSuite, stat, steady, waitFor } from './client.js';

/*
 * The pair's acceptance (issue 4) with real PostgreSQL, both nodes as real
 * processes at the design's timings (1 000 ms × 2), killed with real signals.
 */
describe('stream-processor pair', () => {
  const suite = pairSuite();

  const roles = async (nodes: TestSpNode[]) => Promise.all(nodes.map((n) => n.status()));

  const refuses = (port: number) =>
    new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.on('connect', () => {
        socket.destroy();
        resolve(false);
      });
      socket.on('error', () => resolve(true));
    });

  it('exactly one node becomes active; only its Thrift port accepts', async () => {
    const pair = await suite.start();
    const { active, passive, epoch } = await steady(pair);
    expect(await refuses(passive.thriftPort)).toBe(true);
    const client = new FailoverClient(memberKeyOf(active), [active.thriftPort]);
    const ack = await client.send({ agentId: 'm:1', sequence: 1, stats: [stat('m', 1)] });
    client.close();
    expect(ack).toEqual({ agentId: 'm:1', sequence: 1, duplicate: false, epoch, replicated: true });
    const statuses = await roles(pair);
    expect(statuses.map((s) => s?.role).sort()).toEqual(['ACTIVE', 'PASSIVE']);
  });

  it('a first batch forged far ahead of an agent id the pair does not know: its real batches are refused as out of window, never taken for duplicates', async () => {
    const pair = await suite.start();
    const { active } = await steady(pair);
    const key = memberKeyOf(active);
    const connection = connectHealthStat('127.0.0.1', active.thriftPort);
    try {
      await connection.ready;
      const call = async (sequence: number) =>
        fromAckWire(
          await connection.client.publish(
            toBatchWire(signedBatch(key, { agentId: 'm-9', sequence, stats: [stat('m-9', 1)] })),
          ),
        );
      // Someone holding the member's credential speaks first under its agent id (the pair restarted, say).
      expect(await call(Number.MAX_SAFE_INTEGER)).toMatchObject({ duplicate: false });
      // The agent's own next batch: refused, so the agent starts a new agent id, instead of acknowledged and dropped.
      await expect(call(5_000)).rejects.toMatchObject({
        message: expect.stringMatching(/^sequence_out_of_window: sequence 5000 is more than 1024 below/),
      });
      expect((await active.status())?.refusals).toMatchObject({ sequence_out_of_window: 1 });
      const ledger = (await active.engine()) as { members: Record<string, { count: number }> };
      expect(ledger.members['m-9']?.count).toBe(1);
    } finally {
      connection.close();
    }
  });

  it('10 kill -9 of the active while at least 20 000 stats go in: every stat exactly once; killed nodes rejoin as passive and catch up', async () => {
    const pair = await suite.start();
    const nodes = pair;
    await steady(nodes);
    const client = new FailoverClient(
      memberKeyOf(nodes[0]),
      nodes.map((n) => n.thriftPort),
    );
    const MEMBERS = 20;
    const PER_BATCH = 50;
    const TOTAL = 20_000;
    // Batch k is member k mod 20's (a batch speaks for one member), its values k × 50 … k × 50 + 49.
    const expected = Array.from({ length: MEMBERS }, () => ({ count: 0, sum: 0 }));
    const sequences = new Array<number>(MEMBERS).fill(0);
    let sent = 0;
    // The agent sends until the tenth takeover is acknowledged, and 20 000 stats at least: on a slow
    // machine the kills outlast 20 000 stats, and a takeover with nothing left to send shows no ack.
    let killing = true;
    let sendError: unknown;
    const sending = (async () => {
      for (let k = 0; killing || sent < TOTAL; k++) {
        const m = k % MEMBERS;
        const stats = Array.from({ length: PER_BATCH }, (_, i) => stat(`m-${m}`, sent + i));
        for (const s of stats) {
          (expected[m] as { count: number; sum: number }).count += 1;
          (expected[m] as { count: number; sum: number }).sum += s.value;
        }
        sequences[m] = (sequences[m] ?? 0) + 1;
        await client.send({ agentId: `m-${m}`, sequence: sequences[m] as number, stats });
        sent += PER_BATCH;
        await new Promise((resolve) => setTimeout(resolve, 60));
      }
    })();
    sending.catch((error: unknown) => {
      sendError = error;
    });
    const failovers: number[] = [];
    for (let kill = 0; kill < 10; kill++) {
      const { active, passive } = await steady(nodes);
      await new Promise((resolve) => setTimeout(resolve, 150));
      const killedAt = performance.now();
      await active.kill('SIGKILL');
      const next = await waitFor(() => {
        if (sendError) throw sendError;
        return client.acks.find((a) => a.at > killedAt && a.port === passive.thriftPort);
      }, 'an ack from the other node').catch((error: unknown) => {
        // What each node and the agent did last say why no ack came.
        for (const node of nodes) console.error(node.nodeId, node.pid ?? 'not running', node.output().slice(-2_000));
        console.error('agent: last failures', client.trail.slice(-5), 'now', client.phase);
        throw error;
      });
      failovers.push(next.at - killedAt);
      await active.restart();
    }
    killing = false;
    await sending;
    client.close();
    expect(sent).toBeGreaterThanOrEqual(TOTAL);
    const { active, passive } = await steady(nodes);
    const state = (await active.engine()) as { total: number; members: Record<string, { count: number; sum: number }> };
    expect(state.total).toBe(sent);
    // Every member got each of its batches' values exactly once.
    for (let m = 0; m < MEMBERS; m++) expect(state.members[`m-${m}`]).toMatchObject(expected[m] as object);
    // The same state, whatever order its members were first seen in (a snapshot lists them in the
    // exporter's order); on a timeout, what still differs is printed.
    let last: unknown;
    await waitFor(async () => {
      last = await passive.engine();
      return isDeepStrictEqual(last, state);
    }, 'the passive caught up').catch((error: unknown) => {
      expect(last).toEqual(state);
      throw error;
    });
    failovers.sort((a, b) => a - b);
    const p = (q: number) =>
      Math.round(failovers[Math.min(failovers.length - 1, Math.floor(q * failovers.length))] as number);
    console.log(
      `kill -9 → other node acknowledging, 10 kills at 1000 ms × 2: min ${p(0)} ms, median ${p(0.5)} ms, max ${p(1)} ms`,
    );
    expect(failovers).toHaveLength(10);
  }, 180_000);

  it('a state many times the frame size reaches a restarted passive in parts; the takeover keeps all of it', async () => {
    // 8 KiB frames: 2 000 members make a ledger state of some 100 KiB, a dozen frames.
    const pair = await suite.start({ maxFrameBytes: 8 * 1024 });
    const { active, passive } = await steady(pair);
    const client = new FailoverClient(
      memberKeyOf(active),
      pair.map((n) => n.thriftPort),
    );
    const MEMBERS = 2_000;
    // One batch per member (a batch speaks for one member), over 20 connections at a time.
    const lanes = Array.from(
      { length: 20 },
      () =>
        new FailoverClient(
          memberKeyOf(active),
          pair.map((n) => n.thriftPort),
        ),
    );
    for (let at = 0; at < MEMBERS; at += lanes.length) {
      await Promise.all(
        lanes.map((lane, i) => {
          const memberId = `member-with-a-long-id-${at + i}`;
          return lane.send({ agentId: memberId, sequence: 1, stats: [stat(memberId, at + i)] });
        }),
      );
    }
    for (const lane of lanes) lane.close();
    const state = JSON.stringify(await active.engine());
    expect(state.length).toBeGreaterThan(10 * 8 * 1024);
    // The passive restarts: the active links it again with a snapshot of the whole state.
    await passive.kill('SIGKILL');
    await passive.restart();
    // Synced: this link's snapshot ended (its engine matching the active's alone says nothing of the
    // dedupe window, which a chunk of its own carries).
    await waitFor(
      async () =>
        (await passive.status())?.following?.synced === true && JSON.stringify(await passive.engine()) === state,
      'the restarted passive synced, holding the state',
    );
    expect(passive.logs().filter((r) => r.event === 'sp.sync_violation')).toEqual([]);
    await active.kill('SIGKILL');
    await waitFor(async () => (await passive.status())?.role === 'ACTIVE', 'the passive took over');
    // The dedupe state came along: this agent's batch 1 is a duplicate, its batch 2 new.
    const first = 'member-with-a-long-id-0';
    expect((await client.send({ agentId: first, sequence: 1, stats: [stat(first, 0)] })).duplicate).toBe(true);
    const ack = await client.send({ agentId: first, sequence: 2, stats: [stat(first, 1)] });
    client.close();
    expect(ack.duplicate).toBe(false);
    const after = (await passive.engine()) as { total: number };
    expect(after.total).toBe(MEMBERS + 1);
  }, 120_000);
});
