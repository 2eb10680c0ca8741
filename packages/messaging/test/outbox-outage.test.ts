import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { systemClock } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import { decodeEnvelope, type Envelope } from '@faultline/protocol';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createPublisher, Outbox } from '../src/index.js';
import { FAKE_BROKER_PAIR, FakeBrokers, spLayout, spMemberFault, spTick } from '../src/testing/index.js';

/*
 * "Robust under strain": at 10 000 members the SP's outbox grew ~14 MB a
 * minute while no broker (or no autoscaler) took its messages, until a
 * restart could not read it back. Every summary interval the SP publishes
 * every member's six summaries in parts and each cluster's nine; only the
 * newest of each is worth sending, every MemberFault is.
 *
 * Fake time, fake brokers, but the real outbox on disk: some 26 000
 * envelopes, ~900 MB written and fsync'd, which is why this runs with the
 * integration tests.
 */

const SUMMARY_INTERVAL_MS = 15_000;
const HOUR_MS = 3_600_000;
const MiB = 1024 * 1024;

describe('publisher through an hour with no broker, at 10 000 members', () => {
  beforeEach(() =>
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date', 'performance'] }),
  );
  afterEach(() => vi.useRealTimers());

  it('keeps its outbox bounded: the newest summary of each stream and every MemberFault, sent once a broker is back', async (ctx) => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faultline-outage-'));
    ctx.onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const outboxFile = path.join(dir, 'sp-1.outbox');
    const brokers = new FakeBrokers();
    brokers.set('a', 'down');
    brokers.set('b', 'down');
    const logger = createMemoryLogger();
    const publisher = createPublisher({
      brokers: FAKE_BROKER_PAIR,
      credentials: { username: 'sp', password: 'p' },
      clientId: 'sp-1',
      outboxFile,
      clock: systemClock,
      connector: brokers.connector,
      logger,
    });
    await publisher.start();
    const layout = spLayout(10_000, 4);
    const faults: Envelope[] = [];
    let tick: Envelope[] = [];
    let tickBytes = 0;
    let largestFile = 0;
    let published = 0;
    for (let at = SUMMARY_INTERVAL_MS; at <= HOUR_MS; at += SUMMARY_INTERVAL_MS) {
      tick = spTick(layout, at);
      tickBytes ||= tick.reduce((sum, e) => sum + JSON.stringify(e).length, 0);
      // A member faults every other interval.
      const news = at % (2 * SUMMARY_INTERVAL_MS) === 0 ? [spMemberFault(layout, faults.length, at)] : [];
      faults.push(...news);
      await Promise.all([...tick, ...news].map((e) => publisher.publish(e)));
      published += tick.length + news.length;
      await vi.advanceTimersByTimeAsync(SUMMARY_INTERVAL_MS);
      largestFile = Math.max(largestFile, statSync(outboxFile).size);
      // Bounded all along, not only at the end: one tick held, the ones it superseded until compaction.
      expect(largestFile).toBeLessThan(4 * tickBytes + 2 * MiB);
    }
    const fileAfterHour = statSync(outboxFile).size;
    const counters = publisher.counters;
    await ctx.annotate(
      `after 1 h without a broker at 10 000 members: outbox ${(fileAfterHour / MiB).toFixed(1)} MiB on disk ` +
        `(largest ${(largestFile / MiB).toFixed(1)} MiB), ${(publisher.outboxBytes / MiB).toFixed(1)} MiB held, ` +
        `${publisher.pending} messages of ${published} published; one tick is ${tick.length} envelopes, ` +
        `${(tickBytes / MiB).toFixed(1)} MiB; coalesced ${counters.coalesced}`,
    );
    expect(publisher.pending).toBe(tick.length + faults.length);
    expect(publisher.outboxBytes).toBeLessThan(1.2 * tickBytes + faults.length * 1_024);
    expect(counters).toMatchObject({ published, coalesced: published - tick.length - faults.length });
    expect(counters.droppedOverflow + counters.refusedOverflow + counters.writeFailed).toBe(0);

    // A broker comes back: the newest tick and every fault go out, nothing superseded.
    brokers.set('a', 'up');
    await vi.advanceTimersByTimeAsync(60_000);
    await vi.waitFor(() => expect(publisher.pending).toBe(0), { timeout: 30_000, interval: 50 });
    const sent = brokers.messages('a').map((m) => {
      const decoded = decodeEnvelope(m.payload);
      return decoded.ok ? decoded.value.id : 'invalid';
    });
    expect(new Set(sent)).toEqual(new Set([...tick, ...faults].map((e) => e.id)));
    await publisher.close();
    const reopened = await Outbox.open({ file: outboxFile });
    expect(reopened.size).toBe(0);
    await reopened.close();
  }, 180_000);
});
