import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { FailoverClient, memberKeyOf, pairSuite, stat, steady, waitFor } from './client.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('stream-processor pair under faults', () => {
  const suite = pairSuite();

  it('a paused active (SIGSTOP past its lease) steps down on SIGCONT without acting under its old epoch', async () => {
    const pair = await suite.start();
    const { active: old, passive, epoch } = await steady(pair);
    // A client that keeps a connection open to the old active, with a request in its socket buffer.
    const key = memberKeyOf(old);
    const probe = new FailoverClient(key, [old.thriftPort], 10_000);
    await probe.send({ agentId: 'p', sequence: 1, stats: [stat('p', 1)] });
    old.signal('SIGSTOP');
    const pending = probe.send({ agentId: 'p', sequence: 2, stats: [stat('p', 2)] }, 8_000).catch((e: Error) => e);
    const taken = await waitFor(async () => {
      const s = await passive.status();
      return s?.role === 'ACTIVE' && s.epoch !== undefined && s.epoch > epoch ? s.epoch : undefined;
    }, 'the passive to take over');
    const client = new FailoverClient(key, [passive.thriftPort]);
    expect((await client.send({ agentId: 'c', sequence: 1, stats: [stat('c', 1)] })).epoch).toBe(taken);
    old.signal('SIGCONT');
    const outcome = await pending;
    // Whatever reached the old node after it woke was refused or cut, never acknowledged under the old epoch.
    if (!(outcome instanceof Error)) expect(outcome.epoch).not.toBe(epoch);
    expect(probe.acks.filter((a) => a.ack.epoch === epoch && a.ack.sequence === 2)).toEqual([]);
    await waitFor(async () => (await old.status())?.role === 'PASSIVE' || undefined, 'the old active to be passive');
    const records = old.logs();
    const down = records.findIndex((r) => r.event === 'sp.stepping_down');
    expect(down).toBeGreaterThan(-1);
    expect(records[down]).toMatchObject({ epoch, reason: expect.stringMatching(/self-fenced|refused/) });
    await steady(pair); // the old node now follows the new active
    probe.close();
    client.close();
  }, 60_000);

  it('PostgreSQL stopped under the active: it steps down within the lease; when it returns one node leads again', async () => {
    const pair = await suite.start();
    const { active, epoch } = await steady(pair);
    const stoppedAt = performance.now();
    await suite.db().pause();
    await waitFor(async () => {
      const s = await active.status();
      return s?.role === 'PASSIVE' || undefined;
    }, 'the active to step down');
    const stepDownMs = performance.now() - stoppedAt;
    expect(stepDownMs).toBeLessThan(2_000 + 500); // the lease, plus the status poll
    const both = await Promise.all(pair.map((n) => n.status()));
    expect(both.map((s) => s?.role)).toEqual(['PASSIVE', 'PASSIVE']);
    await suite.db().resume();
    const after = await steady(pair);
    expect(after.epoch).toBeGreaterThan(epoch);
    console.log(`PostgreSQL stopped: the active stepped down after ${Math.round(stepDownMs)} ms`);
  }, 60_000);

  it('malformed frames, negative lengths and 10 000 random payloads: both nodes keep serving', async () => {
    const pair = await suite.start();
    const { active, passive, epoch } = await steady(pair);
    const blast = async (port: number, payloads: Buffer[]) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.on('error', () => {});
      await new Promise((resolve) => socket.once('connect', resolve));
      for (const p of payloads) socket.write(p);
      await sleep(20);
      socket.destroy();
    };
    const frame = (body: Buffer, length = body.length) => {
      const header = Buffer.alloc(4);
      header.writeInt32BE(length, 0);
      return Buffer.concat([header, body]);
    };
    const targets = [active.thriftPort, passive.syncPort, active.syncPort];
    for (const port of targets) {
      await blast(port, [frame(Buffer.alloc(8), -16)]);
      await blast(port, [frame(Buffer.alloc(8), 0x7fff_ffff)]);
      await blast(port, [frame(randomBytes(64))]);
    }
    for (let i = 0; i < 10_000; i += 500) {
      await Promise.all(
        targets.map((port) =>
          blast(
            port,
            Array.from({ length: 25 }, (_, k) => frame(randomBytes(1 + ((i + k) % 200)))),
          ),
        ),
      );
    }
    const client = new FailoverClient(memberKeyOf(active), [active.thriftPort]);
    const ack = await client.send({ agentId: 'after-fuzz', sequence: 1, stats: [stat('after-fuzz', 1)] });
    client.close();
    expect(ack).toMatchObject({ epoch, replicated: true });
    const [a, p] = await Promise.all([active.status(), passive.status()]);
    expect(a?.counters.badFrames).toBeGreaterThan(0);
    expect(p?.counters.syncViolations).toBeGreaterThan(0);
    expect(p?.following?.epoch).toBe(epoch);
  }, 120_000);
});
