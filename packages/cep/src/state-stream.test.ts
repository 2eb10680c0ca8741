import { FaultlineError } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import type { HealthDescription, HealthStat } from '@faultline/protocol';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type CepEngine, createCepEngine } from './index.js';
import { type CepStreamChunk, ChunkWriter, parseChunk, parseStreamHeader } from './state-stream.js';

const stat = (
  memberId: string,
  healthDescription: HealthDescription,
  value: number,
  timestamp: number,
): HealthStat => ({
  clusterId: memberId.startsWith('t') ? 'tomcat' : 'php',
  clusterInstanceId: 'c-1',
  networkPartitionId: 'np-1',
  partitionId: 'p-1',
  memberId,
  healthDescription,
  value,
  timestamp,
});

const engines: CepEngine[] = [];
afterEach(() => {
  for (const e of engines.splice(0)) e.close();
  vi.useRealTimers();
});
const engine = (options: { maxSamplesPerSeries?: number } = {}) => {
  const e = createCepEngine({ source: 'sp-1', logger: createMemoryLogger(), faultTimeoutMs: 5_000, ...options });
  engines.push(e);
  return e;
};

/** The state as a peer compares it: members and series by id, the export time left out. */
function comparable(e: CepEngine) {
  const { exportedAt: _, ...state } = e.exportState();
  const byId = <T extends { memberId: string }>(xs: T[]) => [...xs].sort((a, b) => (a.memberId < b.memberId ? -1 : 1));
  return { ...state, members: byId(state.members), series: byId(state.series) };
}

function streamInto(from: CepEngine, to: CepEngine, chunkMembers: number): number {
  const stream = from.exportStream();
  to.importBegin(JSON.parse(JSON.stringify(stream.header)));
  let chunks = 0;
  for (let chunk = stream.next(chunkMembers); chunk; chunk = stream.next(chunkMembers)) {
    to.importChunk(JSON.parse(JSON.stringify(chunk)));
    chunks += 1;
  }
  to.importEnd();
  return chunks;
}

describe('the CEP state as a stream', () => {
  it('carries every kind of member: alive, timed out, ports_not_open, forgotten, with samples or none', () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const a = engine();
    for (let m = 0; m < 23; m++) {
      const id = m % 2 ? `t-${m}` : `p-${m}`;
      for (const [i, t] of [1_000, 2_000, 3_000].entries()) {
        a.apply({
          agentId: id,
          sequence: i + 1,
          stats: [stat(id, 'load_average', m + i, t), stat(id, 'memory_consumption', 50, t)],
        });
      }
    }
    a.apply({ agentId: 'x', sequence: 1, stats: [stat('p-ports', 'ports_not_open', 1, 4_000)] });
    vi.advanceTimersByTime(3_000);
    a.apply({ agentId: 'y', sequence: 1, stats: [stat('p-late', 'requests_in_flight', 3, 4_500)] });
    vi.advanceTimersByTime(2_500); // all but p-late time out
    a.forget('p-2');
    expect(a.status().faulted).toBeGreaterThan(20);
    const b = engine();
    const chunks = streamInto(a, b, 5);
    expect(chunks).toBeGreaterThanOrEqual(5);
    expect(comparable(b)).toEqual(comparable(a));
    expect(b.status()).toMatchObject({ members: a.status().members, faulted: a.status().faulted });
  });

  it('replaces what the importer held of a member, and drops one the exporter no longer has', () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const a = engine();
    const b = engine();
    a.apply({ agentId: 'm', sequence: 1, stats: [stat('p-1', 'load_average', 1, 1_000)] });
    a.apply({ agentId: 'n', sequence: 1, stats: [stat('p-2', 'load_average', 1, 1_000)] });
    const stream = a.exportStream();
    b.importBegin(stream.header);
    // A batch forwarded before p-1's chunk: the chunk, taken later, holds it too.
    const later = { agentId: 'm', sequence: 2, stats: [stat('p-1', 'load_average', 9, 2_000)] };
    a.apply(later);
    b.apply(later);
    a.forget('p-2');
    b.importChunk(stream.next(10));
    expect(stream.next(10)).toBeUndefined();
    b.importEnd();
    expect(comparable(b)).toEqual(comparable(a));
    // p-2's older stats stay ignored on the importer, as on the exporter.
    b.apply({ agentId: 'n', sequence: 2, stats: [stat('p-2', 'load_average', 1, 900)] });
    expect(b.status().ignoredStats).toBe(1);
  });

  it('an empty state is a header and no chunk', () => {
    const stream = engine().exportStream();
    expect(stream.header).toMatchObject({ version: 2, members: 0, published: 0 });
    expect(stream.next(100)).toBeUndefined();
  });
});

/** A chunk as it comes off the wire. */
type Raw = { s: unknown[]; m: unknown[][]; w: unknown[][]; p: unknown[]; g: unknown[] };

describe('a streamed import that meets the rest of the world', () => {
  const apply = (e: CepEngine, memberId: string, t: number, sequence = t) =>
    e.apply({ agentId: memberId, sequence, stats: [stat(memberId, 'load_average', 1, t)] });

  it('a takeover before the import ends still watches every member the importer knew: each is faulted', () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const a = engine();
    const b = engine();
    for (let m = 0; m < 10; m++) apply(a, `p-${m}`, 1_000);
    streamInto(a, b, 100); // linked once, synced
    // Relinked: the next stream dies after its first chunk, and the importer takes over.
    const stream = a.exportStream();
    b.importBegin(stream.header);
    b.importChunk(stream.next(5));
    const faults: string[] = [];
    b.onOutput((envelope) => {
      if (envelope.type === 'MemberFaultEvent') faults.push(envelope.data.memberId);
    });
    b.activate(7);
    vi.advanceTimersByTime(10 * 60_000);
    expect(new Set(faults).size).toBe(10);
  });

  it('splits a summary into the same parts as the exporter, though a batch touched a member before its chunk', () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const a = engine();
    const b = engine();
    const t = Date.now();
    for (let m = 0; m < 1_500; m++) apply(a, `p-${m}`, t - 1_000);
    const stream = a.exportStream();
    b.importBegin(stream.header);
    // Forwarded before their chunks: the last member, and one in the middle.
    for (const id of ['p-1499', 'p-700']) {
      apply(a, id, t - 500, 2);
      apply(b, id, t - 500, 2);
    }
    for (let chunk = stream.next(400); chunk; chunk = stream.next(400))
      b.importChunk(JSON.parse(JSON.stringify(chunk)));
    b.importEnd();
    const outputs = (e: CepEngine, epoch: number) => {
      const out: unknown[] = [];
      e.onOutput((envelope) => {
        if (envelope.type !== 'MemberFaultEvent') out.push({ id: envelope.id, data: envelope.data });
      });
      e.activate(epoch);
      return out;
    };
    const fromA = outputs(a, 1);
    const fromB = outputs(b, 1);
    vi.advanceTimersByTime(15_000);
    expect(fromA.length).toBeGreaterThan(2);
    expect(fromB).toEqual(fromA);
  });

  it('a member the importer’s topology removed during the import stays removed, though its chunk was made before', () => {
    const a = engine();
    const b = engine();
    for (let m = 0; m < 4; m++) apply(a, `p-${m}`, 1_000);
    const stream = a.exportStream();
    b.importBegin(stream.header);
    b.forget('p-2'); // the importer heard of the removal first
    b.importChunk(stream.next(100));
    b.importEnd();
    a.forget('p-2');
    expect(b.status().members).toBe(3);
    expect(comparable(b).members.map((m) => m.memberId)).toEqual(['p-0', 'p-1', 'p-3']);
  });

  it('drops at the end what the exporter did not have and no batch spoke of', () => {
    const a = engine();
    const b = engine();
    apply(b, 'p-old', 1_000); // held from an earlier link; the exporter has forgotten it since
    apply(b, 'p-busy', 1_000);
    apply(a, 'p-1', 1_000);
    const stream = a.exportStream();
    b.importBegin(stream.header);
    apply(a, 'p-busy', 2_000, 2000); // new to the exporter after its header: it comes by batch
    apply(b, 'p-busy', 2_000, 2000);
    b.importChunk(stream.next(100));
    b.importEnd();
    expect(comparable(b).members.map((m) => m.memberId)).toEqual(['p-1', 'p-busy']);
  });

  it('refuses more rows than its header announced, and series longer than twice the window holds', () => {
    const a = engine();
    apply(a, 'p-1', 1_000);
    const b = engine({ maxSamplesPerSeries: 30 });
    const stream = a.exportStream();
    b.importBegin(stream.header);
    const chunk = stream.next(10) as CepStreamChunk;
    b.importChunk(chunk);
    expect(() => b.importChunk(chunk)).toThrow(/more members than the 1 the header announced/);
    const long = {
      s: ['php', 'c-1', 'np-1'],
      m: [],
      p: [],
      g: [],
      w: [['p-9', 0, 1, 2, Array(2 * 2 * 60 + 2).fill(1), 0, 0]],
    };
    expect(() => b.importChunk(long)).toThrow(/more than 60 samples/);
    expect(() => parseChunk({ s: [], m: Array(20_001).fill(0), w: [], p: [], g: [] }, { maxSamples: 1 })).toThrow(
      /more than 20000 rows/,
    );
  });
});

describe('a chunk or header from a peer', () => {
  const good = () => {
    const w = new ChunkWriter();
    w.member({
      clusterId: 'php',
      clusterInstanceId: 'php-1',
      networkPartitionId: 'np-1',
      partitionId: 'p-1',
      memberId: 'm-1',
      state: 'alive',
      lastStatAt: 5,
      lastSeenAgoMs: 3,
      remainingMs: 100,
    });
    w.series({
      clusterId: 'php',
      clusterInstanceId: 'php-1',
      networkPartitionId: 'np-1',
      memberId: 'm-1',
      samples: { LoadAverage: [[1, 2]] },
    });
    return JSON.parse(JSON.stringify(w.chunk));
  };

  it('reads back what the writer wrote', () => {
    expect(parseChunk(good(), { maxSamples: 50 })).toMatchObject({
      members: [{ memberId: 'm-1', state: 'alive' }],
      series: [{}],
    });
  });

  it.each([
    ['not an object', () => 7, '(chunk)'],
    ['a string table entry that is no id', (c: Raw) => c.s.push('a b'), 's[4]'],
    ['a member id that is no id', (c: Raw) => ((c.m[0] as unknown[])[0] = '../x'), 'm[0][0]'],
    ['an index past the string table', (c: Raw) => ((c.m[0] as unknown[])[1] = 99), 'm[0][1]'],
    ['a state other than 0 or 1', (c: Raw) => ((c.m[0] as unknown[])[5] = 2), 'm[0][5]'],
    ['an alive member with no deadline', (c: Raw) => ((c.m[0] as unknown[])[8] = null), 'm[0][8]'],
    ['a non-finite time', (c: Raw) => ((c.m[0] as unknown[])[7] = '1e999'), 'm[0][7]'],
    ['a fault on a member that is alive', (c: Raw) => ((c.m[0] as unknown[])[10] = [0, 1, 1]), 'm[0][10]'],
    ['a row of the wrong length', (c: Raw) => c.m[0]?.push(1), 'm[0]'],
    ['an odd list of samples', (c: Raw) => ((c.w[0] as unknown[])[4] as number[]).push(3), 'w[0][4]'],
    ['a sample that is not a number', (c: Raw) => (((c.w[0] as unknown[])[4] as unknown[])[1] = null), 'w[0][4][1]'],
    ['a watermark with no stream', (c: Raw) => c.p.push(['', 1]), 'p[0]'],
    ['a gone member with a bad stat time', (c: Raw) => c.g.push(['m-2', 'x']), 'g[0]'],
  ])('%s: FL_ERR_STATE_INVALID naming the row, and none of the chunk applies', (_, spoil, path) => {
    const chunk = good();
    const spoilt = (spoil as (c: unknown) => unknown)(chunk);
    const value = typeof spoilt === 'number' && path === '(chunk)' ? spoilt : chunk;
    let error: unknown;
    try {
      parseChunk(value, { maxSamples: 50 });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(FaultlineError);
    expect((error as FaultlineError).code).toBe('FL_ERR_STATE_INVALID');
    expect((error as FaultlineError).message).toContain(`at ${path}:`);
    const e = engine();
    e.importBegin(e.exportStream().header);
    expect(() => e.importChunk(value)).toThrow(FaultlineError);
    expect(e.status().members).toBe(0);
  });

  it('a header of another version, or a chunk before any header, is refused', () => {
    const e = engine();
    expect(() => parseStreamHeader({ ...e.exportStream().header, version: 99 })).toThrow(/expected 2, got 99/);
    expect(() => e.importChunk(good())).toThrow(/a chunk before the header/);
  });
});
