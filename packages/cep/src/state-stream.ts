import { idSchema, isId, METRICS, type Metric } from '@faultline/protocol';
import { z } from 'zod';
import type { DetectorMemberState, FaultReason } from './fault-detector.js';
import { FAULT_STREAM_PREFIX } from './outputs.js';
import { CepStateError, outputSchema } from './state.js';
import type { MemberSeriesState } from './window-stats.js';

/**
 * The engine's state as a stream, for a passive that joins (README,
 * "Event sync"): a small header, then chunks of members. The active encodes a
 * chunk from each member's state as it is at that moment, and batches accepted
 * meanwhile go to the passive between the chunks, on the same ordered link.
 * A chunk replaces what the passive holds for each member in it: a batch
 * forwarded before the member's chunk is already part of the chunk's state, a
 * batch after it applies on top. So the passive ends with the active's state
 * without the active ever stopping for a copy of the whole of it.
 *
 * Rows are arrays, not objects (no repeated keys), and the four cluster ids of
 * a member are indices into the chunk's string table (thousands of members
 * share a handful of clusters): some 4× smaller than the one JSON document it
 * replaces, and checked by plain predicates, not a schema walk per field.
 */
export const CEP_STREAM_VERSION = 2;

/** The most rows of each kind one chunk may hold (an exporter asks for fewer). */
export const MAX_CHUNK_ROWS = 20_000;

/** What is not per member: small, bounded (forgotten ≤ 10 000, pending ≤ maxPendingOutputs). */
export interface CepStreamHeader {
  version: typeof CEP_STREAM_VERSION;
  /** Wall time of the export (informational). */
  exportedAt: number;
  /** Members (detector or window) the chunks will carry, as counted at the start. */
  members: number;
  /** Fault watermarks the chunks will carry. */
  published: number;
  forgotten: [string, number][];
  pending: z.infer<typeof outputSchema>[];
  summariesPublishedThrough: number | null;
}

/**
 * `[memberId, cluster, clusterInstance, networkPartition, partition (indices
 * into the string table), state (0 alive, 1 faulted), lastStatAt | null,
 * lastSeenAgoMs, remainingMs | null, givenBackMs, fault: 0 | [reason (0
 * timeout, 1 ports_not_open), silentForMs, declaredAt]]`
 */
export type MemberRow = [
  string,
  number,
  number,
  number,
  number,
  0 | 1,
  number | null,
  number,
  number | null,
  number,
  0 | [0 | 1, number, number],
];

/** `[memberId, cluster, clusterInstance, networkPartition, then per metric of METRICS 0 or [t, v, t, v, …]]` */
export type SeriesRow = [string, number, number, number, ...(0 | number[])[]];

export interface CepStreamChunk {
  /** The chunk's string table. */
  s: string[];
  m: MemberRow[];
  w: SeriesRow[];
  /** Fault watermarks: `[stream, lastStatAt]`. */
  p: [string, number][];
  /**
   * Members counted at the start that are gone since (the topology removed
   * them): `[memberId, last stat timestamp | null]`; the passive forgets them
   * too, and ignores their older stats as the active does.
   */
  g: [string, number | null][];
}

const REASONS: readonly FaultReason[] = ['timeout', 'ports_not_open'];

/** Builds a chunk: interns the cluster ids of each row into its string table. */
export class ChunkWriter {
  private readonly strings = new Map<string, number>();
  readonly chunk: CepStreamChunk = { s: [], m: [], w: [], p: [], g: [] };

  private index(value: string): number {
    let at = this.strings.get(value);
    if (at === undefined) {
      at = this.chunk.s.length;
      this.strings.set(value, at);
      this.chunk.s.push(value);
    }
    return at;
  }

  member(m: DetectorMemberState): void {
    this.chunk.m.push([
      m.memberId,
      this.index(m.clusterId),
      this.index(m.clusterInstanceId),
      this.index(m.networkPartitionId),
      this.index(m.partitionId),
      m.state === 'alive' ? 0 : 1,
      m.lastStatAt,
      m.lastSeenAgoMs,
      m.remainingMs,
      m.givenBackMs ?? 0,
      m.fault ? [REASONS.indexOf(m.fault.reason) as 0 | 1, m.fault.silentForMs, m.fault.declaredAt] : 0,
    ]);
  }

  series(w: MemberSeriesState): void {
    const row: SeriesRow = [
      w.memberId,
      this.index(w.clusterId),
      this.index(w.clusterInstanceId),
      this.index(w.networkPartitionId),
    ];
    for (const metric of METRICS) {
      const samples = w.samples[metric];
      if (!samples || samples.length === 0) {
        row.push(0);
        continue;
      }
      const flat: number[] = new Array(samples.length * 2);
      for (let i = 0; i < samples.length; i++) {
        const [t, v] = samples[i] as [number, number];
        flat[2 * i] = t;
        flat[2 * i + 1] = v;
      }
      row.push(flat);
    }
    this.chunk.w.push(row);
  }
}

/** A chunk, checked whole before any of it is used. */
export interface ParsedChunk {
  members: DetectorMemberState[];
  series: MemberSeriesState[];
  published: [string, number][];
  gone: [string, number | null][];
}

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const finiteOrNull = (v: unknown): v is number | null => v === null || finite(v);

/** Reads chunk rows; every problem is a CepStateError naming the row. */
class ChunkReader {
  constructor(private readonly strings: string[]) {}

  id(v: unknown, path: string): string {
    if (!isId(v)) throw new CepStateError(path, 'not an id');
    return v;
  }

  ref(v: unknown, path: string): string {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= this.strings.length)
      throw new CepStateError(path, 'not an index into the string table');
    return this.strings[v] as string;
  }

  member(row: unknown, path: string): DetectorMemberState {
    if (!Array.isArray(row) || row.length !== 11) throw new CepStateError(path, 'not a member row of 11 fields');
    const [memberId, c, ci, np, p, state, lastStatAt, lastSeenAgoMs, remainingMs, givenBackMs, fault] = row;
    if (state !== 0 && state !== 1) throw new CepStateError(`${path}[5]`, 'state is not 0 or 1');
    if (!finiteOrNull(lastStatAt)) throw new CepStateError(`${path}[6]`, 'lastStatAt is not a number or null');
    if (!finite(lastSeenAgoMs)) throw new CepStateError(`${path}[7]`, 'lastSeenAgoMs is not a number');
    if (state === 0 ? !finite(remainingMs) : remainingMs !== null)
      throw new CepStateError(`${path}[8]`, 'remainingMs: a number when alive, null when faulted');
    if (!finite(givenBackMs) || givenBackMs < 0) throw new CepStateError(`${path}[9]`, 'givenBackMs is not ≥ 0');
    const out: DetectorMemberState = {
      clusterId: this.ref(c, `${path}[1]`),
      clusterInstanceId: this.ref(ci, `${path}[2]`),
      networkPartitionId: this.ref(np, `${path}[3]`),
      partitionId: this.ref(p, `${path}[4]`),
      memberId: this.id(memberId, `${path}[0]`),
      state: state === 0 ? 'alive' : 'faulted',
      lastStatAt,
      lastSeenAgoMs,
      remainingMs,
    };
    if (givenBackMs > 0) out.givenBackMs = givenBackMs;
    if (fault !== 0) {
      if (state !== 1) throw new CepStateError(`${path}[10]`, 'a fault on a member that is alive');
      if (
        !Array.isArray(fault) ||
        fault.length !== 3 ||
        (fault[0] !== 0 && fault[0] !== 1) ||
        !finite(fault[1]) ||
        !finite(fault[2])
      )
        throw new CepStateError(`${path}[10]`, 'not 0 or [reason, silentForMs, declaredAt]');
      out.fault = { reason: REASONS[fault[0]] as FaultReason, silentForMs: fault[1], declaredAt: fault[2] };
    }
    return out;
  }

  series(row: unknown, path: string, maxSamples: number): MemberSeriesState {
    if (!Array.isArray(row) || row.length !== 4 + METRICS.length)
      throw new CepStateError(path, `not a series row of ${4 + METRICS.length} fields`);
    const samples: Partial<Record<Metric, [number, number][]>> = {};
    METRICS.forEach((metric, i) => {
      const flat = row[4 + i] as unknown;
      if (flat === 0) return;
      if (!Array.isArray(flat) || flat.length === 0 || flat.length % 2 !== 0)
        throw new CepStateError(`${path}[${4 + i}]`, 'not 0 or a non-empty list of [t, v] pairs');
      if (flat.length > 2 * maxSamples) throw new CepStateError(`${path}[${4 + i}]`, `more than ${maxSamples} samples`);
      const pairs: [number, number][] = new Array(flat.length / 2);
      for (let j = 0; j < flat.length; j += 2) {
        const t = flat[j];
        const v = flat[j + 1];
        if (!finite(t)) throw new CepStateError(`${path}[${4 + i}][${j}]`, 'not a finite number');
        if (!finite(v)) throw new CepStateError(`${path}[${4 + i}][${j + 1}]`, 'not a finite number');
        pairs[j / 2] = [t, v];
      }
      samples[metric] = pairs;
    });
    return {
      clusterId: this.ref(row[1], `${path}[1]`),
      clusterInstanceId: this.ref(row[2], `${path}[2]`),
      networkPartitionId: this.ref(row[3], `${path}[3]`),
      memberId: this.id(row[0], `${path}[0]`),
      samples,
    };
  }
}

/**
 * Checks a chunk from a peer before a single field of it is used; throws
 * CepStateError naming the first bad path. Bounded: at most MAX_CHUNK_ROWS
 * rows of each kind, a string table of at most four ids a row, at most
 * `maxSamples` samples a series.
 */
export function parseChunk(value: unknown, limits: { maxSamples: number }): ParsedChunk {
  if (typeof value !== 'object' || value === null) throw new CepStateError('(chunk)', 'not an object');
  const { s, m, w, p, g } = value as Record<string, unknown>;
  for (const [name, list] of [
    ['s', s],
    ['m', m],
    ['w', w],
    ['p', p],
    ['g', g],
  ] as const) {
    if (!Array.isArray(list)) throw new CepStateError(name, 'not a list');
    const max = name === 's' ? 4 * MAX_CHUNK_ROWS : MAX_CHUNK_ROWS;
    if (list.length > max) throw new CepStateError(name, `more than ${max} rows`);
  }
  (s as unknown[]).forEach((v, i) => {
    if (!isId(v)) throw new CepStateError(`s[${i}]`, 'not an id');
  });
  const reader = new ChunkReader(s as string[]);
  const published: [string, number][] = [];
  (p as unknown[]).forEach((pair, i) => {
    if (
      !Array.isArray(pair) ||
      pair.length !== 2 ||
      typeof pair[0] !== 'string' ||
      !pair[0].startsWith(FAULT_STREAM_PREFIX) ||
      !isId(pair[0].slice(FAULT_STREAM_PREFIX.length)) ||
      !Number.isSafeInteger(pair[1])
    )
      throw new CepStateError(`p[${i}]`, 'not a [member fault stream, seq] pair');
    published.push([pair[0], pair[1]]);
  });
  return {
    members: (m as unknown[]).map((row, i) => reader.member(row, `m[${i}]`)),
    series: (w as unknown[]).map((row, i) => reader.series(row, `w[${i}]`, limits.maxSamples)),
    published,
    gone: (g as unknown[]).map((row, i): [string, number | null] => {
      if (!Array.isArray(row) || row.length !== 2 || !finiteOrNull(row[1]))
        throw new CepStateError(`g[${i}]`, 'not a [memberId, lastStatAt | null] pair');
      return [reader.id(row[0], `g[${i}][0]`), row[1]];
    }),
  };
}

const headerSchema = z.object({
  version: z.literal(CEP_STREAM_VERSION, {
    error: (issue) => `expected ${CEP_STREAM_VERSION}, got ${String(issue.input)}`,
  }),
  exportedAt: z.number(),
  members: z.number().int().min(0),
  published: z.number().int().min(0),
  forgotten: z.array(z.tuple([idSchema, z.number()])),
  pending: z.array(outputSchema),
  summariesPublishedThrough: z.number().int().nullable(),
});

export function parseStreamHeader(value: unknown): CepStreamHeader {
  const parsed = headerSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = (issue?.path ?? []).map((k) => (typeof k === 'number' ? `[${k}]` : `.${String(k)}`)).join('');
    throw new CepStateError(path.replace(/^\./, '') || '(header)', issue?.message ?? 'invalid');
  }
  return parsed.data as CepStreamHeader;
}
