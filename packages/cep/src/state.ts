import { METRICS, validateEnvelope } from '@faultline/protocol';
import type { DetectorMemberState } from './fault-detector.js';
import type { Output } from './output-ledger.js';
import type { MemberSeriesState } from './window-stats.js';

export const CEP_STATE_VERSION = 1;

/**
 * The engine's whole state as plain JSON: the snapshot the active sends a
 * passive that joins, and the SP status server's `/engine`. Times that a
 * deadline depends on are relative (`remainingMs`, `lastSeenAgoMs`), so they
 * mean the same on a node whose clocks read differently; sample timestamps
 * and ids are the agents' own, the same everywhere.
 */
export interface CepState {
  version: typeof CEP_STATE_VERSION;
  /** Wall time of the export (informational). */
  exportedAt: number;
  /** Every tracked member: life state, last stat, time left before its fault. */
  members: DetectorMemberState[];
  /** Members the topology removed, with their last stat timestamp: older stats of theirs are ignored. */
  forgotten: [string, number][];
  /** Window samples per member and metric. */
  series: MemberSeriesState[];
  /** Outputs produced while passive and not confirmed by the active (empty on an active). */
  pending: Output[];
  /** Per member fault stream, the newest fault published or confirmed: `[stream, lastStatAt]`. */
  published: [string, number][];
  /** The newest summary tick (windowTo) published or confirmed; null before any. */
  summariesPublishedThrough: number | null;
}

class StateError extends TypeError {
  constructor(path: string, reason: string) {
    super(`invalid CEP state at ${path}: ${reason}`);
    this.name = 'CepStateError';
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
const isId = (v: unknown): v is string => typeof v === 'string' && v.length > 0;
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

function array(v: unknown, path: string): unknown[] {
  if (!Array.isArray(v)) throw new StateError(path, 'not an array');
  return v;
}

function ids(v: Record<string, unknown>, path: string, keys: readonly string[]): void {
  for (const key of keys) if (!isId(v[key])) throw new StateError(`${path}.${key}`, 'not a non-empty string');
}

const SOURCE_KEYS = ['clusterId', 'clusterInstanceId', 'networkPartitionId', 'memberId'] as const;

function checkMember(m: unknown, path: string): void {
  if (!isObject(m)) throw new StateError(path, 'not an object');
  ids(m, path, [...SOURCE_KEYS, 'partitionId']);
  if (m.state !== 'alive' && m.state !== 'faulted') throw new StateError(`${path}.state`, 'not alive|faulted');
  if (m.lastStatAt !== null && !isNum(m.lastStatAt)) throw new StateError(`${path}.lastStatAt`, 'not a number');
  if (!isNum(m.lastSeenAgoMs)) throw new StateError(`${path}.lastSeenAgoMs`, 'not a number');
  if (m.state === 'alive' ? !isNum(m.remainingMs) : m.remainingMs !== null) {
    throw new StateError(`${path}.remainingMs`, 'a number when alive, null when faulted');
  }
}

function checkSeries(s: unknown, path: string): void {
  if (!isObject(s)) throw new StateError(path, 'not an object');
  ids(s, path, SOURCE_KEYS);
  if (!isObject(s.samples)) throw new StateError(`${path}.samples`, 'not an object');
  for (const [metric, samples] of Object.entries(s.samples)) {
    if (!(METRICS as readonly string[]).includes(metric)) throw new StateError(`${path}.samples`, `unknown ${metric}`);
    for (const [i, pair] of array(samples, `${path}.samples.${metric}`).entries()) {
      if (!Array.isArray(pair) || pair.length !== 2 || !isNum(pair[0]) || !isNum(pair[1])) {
        throw new StateError(`${path}.samples.${metric}[${i}]`, 'not a [timestamp, value] pair');
      }
    }
  }
}

function checkOutput(o: unknown, path: string): void {
  if (!isObject(o)) throw new StateError(path, 'not an object');
  if (o.kind !== 'fault' && o.kind !== 'summary') throw new StateError(`${path}.kind`, 'not fault|summary');
  if (!isId(o.stream)) throw new StateError(`${path}.stream`, 'not a non-empty string');
  if (!Number.isSafeInteger(o.seq)) throw new StateError(`${path}.seq`, 'not an integer');
  const envelope = validateEnvelope(o.envelope);
  if (!envelope.ok) throw new StateError(`${path}.envelope`, envelope.error.message);
}

/**
 * Checks a state from a peer before a single field of it is used, and throws
 * a TypeError naming the first bad path: importing half a snapshot would
 * leave a standby that looks healthy and detects wrong.
 */
export function parseCepState(value: unknown): CepState {
  if (!isObject(value)) throw new StateError('(state)', 'not an object');
  if (value.version !== CEP_STATE_VERSION) {
    throw new StateError('version', `expected ${CEP_STATE_VERSION}, got ${String(value.version)}`);
  }
  for (const [i, m] of array(value.members, 'members').entries()) checkMember(m, `members[${i}]`);
  for (const [i, f] of array(value.forgotten, 'forgotten').entries()) {
    if (!Array.isArray(f) || !isId(f[0]) || !isNum(f[1])) {
      throw new StateError(`forgotten[${i}]`, 'not a [memberId, lastStatAt] pair');
    }
  }
  for (const [i, s] of array(value.series, 'series').entries()) checkSeries(s, `series[${i}]`);
  for (const [i, o] of array(value.pending, 'pending').entries()) checkOutput(o, `pending[${i}]`);
  for (const [i, p] of array(value.published, 'published').entries()) {
    if (!Array.isArray(p) || !isId(p[0]) || !Number.isSafeInteger(p[1])) {
      throw new StateError(`published[${i}]`, 'not a [stream, seq] pair');
    }
  }
  if (value.summariesPublishedThrough !== null && !Number.isSafeInteger(value.summariesPublishedThrough)) {
    throw new StateError('summariesPublishedThrough', 'not an integer or null');
  }
  return value as unknown as CepState;
}
