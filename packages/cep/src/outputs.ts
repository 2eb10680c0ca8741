import {
  type ClusterStatEventType,
  createEnvelope,
  MAX_ENVELOPE_BYTES,
  MEMBERS_PER_STAT_EVENT,
  type MemberIdentity,
  type MemberStatEventType,
  memberIdentityOf,
  type StatEventType,
  statEventType,
} from '@faultline/protocol';
import type { FaultInfo } from './fault-detector.js';
import { type Output, outputId } from './output-ledger.js';
import type { GroupSummary, WindowSummary } from './window-stats.js';

/*
 * The engine's outputs as envelopes, with their deterministic ids (a
 * MemberFault's id derives from the member id and the last stat it was seen
 * by, so consumers dedupe what both nodes, or a takeover, produce twice):
 *
 *   MemberFaultEvent:<memberId>:<agent timestamp of the last stat seen>
 *   <Type>:<clusterId>:<networkPartitionId>:<windowTo>               cluster summaries
 *   Member<Type>:<clusterId>:<networkPartitionId>:<part>:<windowTo>  member summaries
 *
 * windowTo is the summary tick, a multiple of summaryIntervalMs on the wall
 * clock, the same on both nodes. `time` is this node's clock when produced.
 * A member summary lists every member of its cluster in the tick, in the
 * window's fixed member order, cut into parts by encoded size (see
 * memberOutputs): each part at most MEMBERS_PER_STAT_EVENT members, and its
 * envelope, as the active encodes it, within maxBytes.
 */

/*
 * What a part's envelope may take beyond what both nodes compute alike. The
 * split must be the same on both nodes (part k of a tick must list the same
 * members whichever node publishes it: the ids, the passive's ledger and the
 * subscribers' dedupe rely on it), so it cannot depend on the fields that are
 * each node's own: its `source`, its clock's `time` and, added when the
 * active emits it, the `epoch`. A part is sized with `"source":""`, `"time":0`
 * and no epoch, plus room for the largest each can be: a source of 256
 * characters (the envelope's bound) at 6 bytes each (JSON writes `\u001f`),
 * and two JSON numbers of at most 24 bytes (`-1.7976931348623157e+308`).
 */
const MAX_SOURCE_CHARS = 256;
const MAX_JSON_BYTES_PER_CHAR = 6;
const MAX_JSON_NUMBER_BYTES = 24;
export const NODE_FIELDS_RESERVE_BYTES =
  MAX_SOURCE_CHARS * MAX_JSON_BYTES_PER_CHAR + (MAX_JSON_NUMBER_BYTES - 1) + ',"epoch":'.length + MAX_JSON_NUMBER_BYTES;

/** The stream of a member's faults is this and its id. */
export const FAULT_STREAM_PREFIX = 'MemberFaultEvent:';

export function faultStream(memberId: string): string {
  return `${FAULT_STREAM_PREFIX}${memberId}`;
}

export function faultOutput(member: Readonly<MemberIdentity>, info: FaultInfo, source: string, time: number): Output {
  const stream = faultStream(member.memberId);
  // The detector sets lastStatAt from the stat that first tracked the member, so null does not occur here.
  const seq = info.lastStatAt ?? 0;
  const envelope = createEnvelope(
    'MemberFaultEvent',
    {
      ...memberIdentityOf(member),
      reason: info.reason,
      lastStatAt: info.lastStatAt,
      silentForMs: info.silentForMs,
    },
    { source, id: outputId(stream, seq), time },
  );
  return { kind: 'fault', stream, seq, envelope };
}

export function summaryType(summary: Pick<WindowSummary, 'kind' | 'metric' | 'memberId'>): StatEventType {
  const scope = summary.memberId === undefined ? 'cluster' : 'member';
  return statEventType({ scope, kind: summary.kind, metric: summary.metric });
}

export function summaryStream(type: string, clusterId: string, networkPartitionId: string, part?: number): string {
  const cluster = `${type}:${clusterId}:${networkPartitionId}`;
  return part === undefined ? cluster : `${cluster}:${part}`;
}

/** A member's entry of a tick that no envelope within the limit can carry: it is left out of the tick. */
export interface OversizedSummaryEntry {
  type: MemberStatEventType;
  clusterId: string;
  networkPartitionId: string;
  memberId: string;
  /** The smallest envelope that would carry it (a part of it alone, with room for the node's own fields). */
  bytes: number;
  maxBytes: number;
}

export interface SummaryOutputOptions {
  /** Largest encoded envelope (`messaging.maxMessageBytes`). @default MAX_ENVELOPE_BYTES */
  maxBytes?: number;
  /** Told of each entry left out because no envelope within maxBytes can carry it. */
  onEntryTooLarge?: (entry: OversizedSummaryEntry) => void;
}

type MemberEntry = { memberId: string; value: number };

/**
 * The outputs of one tick: one per cluster summary, and the member summaries
 * gathered into one event per (type, cluster, network partition) and part,
 * in the order the window listed them.
 */
export function summaryOutputs(
  summaries: readonly WindowSummary[],
  source: string,
  time: number,
  options: SummaryOutputOptions = {},
): Output[] {
  const out: Output[] = [];
  const byType = new Map<string, { first: WindowSummary; ids: string[]; values: number[] }>();
  for (const summary of summaries) {
    if (summary.memberId === undefined) {
      out.push(clusterOutput(summary, source, time));
      continue;
    }
    const key = `${summaryType(summary)}\u0000${summary.clusterId}\u0000${summary.networkPartitionId}`;
    let group = byType.get(key);
    if (!group) {
      group = { first: summary, ids: [], values: [] };
      byType.set(key, group);
    }
    group.ids.push(summary.memberId);
    group.values.push(summary.value);
  }
  const maxBytes = options.maxBytes ?? MAX_ENVELOPE_BYTES;
  for (const { first, ids, values } of byType.values()) {
    for (const output of memberOutputs(first, ids.length, ids, values, source, time, maxBytes, options.onEntryTooLarge))
      out.push(output);
  }
  return out;
}

/**
 * The outputs of one cluster's part of a tick (a summary job's step): its
 * cluster summaries, then its member summaries in parts, type by type; the
 * same parts as `summaryOutputs` cuts. Made one by one as they are taken: a
 * cluster of 10 000 members is some 70 envelopes, 20 ms to make in one block.
 */
export function* groupOutputs(
  group: GroupSummary,
  source: string,
  time: number,
  options: SummaryOutputOptions = {},
): Generator<Output, void, undefined> {
  for (const summary of group.cluster) yield clusterOutput(summary, source, time);
  const maxBytes = options.maxBytes ?? MAX_ENVELOPE_BYTES;
  for (const { first, size, ids, values } of group.members)
    yield* memberOutputs(first, size, ids, values, source, time, maxBytes, options.onEntryTooLarge);
}

/**
 * Cuts one (type, cluster, network partition)'s members into parts, in their
 * order, by arithmetic rather than by encoding envelopes: a part's envelope is
 * its skeleton (`"members":[]`, measured once per part) plus each entry's JSON
 * and a comma between entries. A part closes when the next entry would take it
 * over maxBytes, or at MEMBERS_PER_STAT_EVENT members. An entry that cannot fit
 * even a part of its own is left out and reported (with ids of at most 128
 * characters that takes a limit under 2 720 bytes); the next entry takes its place.
 */
function* memberOutputs(
  first: WindowSummary,
  /** How many of the columns' entries are the tick's (0 … entries - 1). */
  entries: number,
  ids: readonly string[],
  values: readonly number[],
  source: string,
  time: number,
  maxBytes: number,
  onEntryTooLarge: SummaryOutputOptions['onEntryTooLarge'],
): Generator<Output, void, undefined> {
  let part = 0;
  let floor = partFloorBytes(first, part);
  // A part's entries, made here a part at a time (the tick's figures, held across turns of the event
  // loop, stay in columns), in an array made at its largest size and cut to its count when it is sent.
  let slice: MemberEntry[] = new Array(MEMBERS_PER_STAT_EVENT);
  let count = 0;
  // The part's size two ways: `bound` takes every figure at its longest JSON (no string made per figure),
  // `bytes` exactly, brought up to date (from entry `exactTo` on) only when the bound would cut the part
  // or leave an entry out. The cuts are those of exact sizes: a bound within the limit is an exact one within it.
  let bound = floor;
  let bytes = floor;
  let exactTo = 0;
  const close = (): Output => {
    slice.length = count;
    return membersOutput(first, part, slice, source, time);
  };
  for (let i = 0; i < entries; i++) {
    const memberId = ids[i] as string;
    const value = values[i] as number;
    const idSize = idBytes(memberId);
    const boundSize = ENTRY_FRAME_BYTES + idSize + MAX_JSON_NUMBER_BYTES;
    let size: number | undefined;
    if (count > 0 && (count >= MEMBERS_PER_STAT_EVENT || bound + 1 + boundSize > maxBytes)) {
      let full = count >= MEMBERS_PER_STAT_EVENT;
      if (!full) {
        for (; exactTo < count; exactTo++) bytes += (exactTo > 0 ? 1 : 0) + entryBytes(slice[exactTo] as MemberEntry);
        size = ENTRY_FRAME_BYTES + idSize + numberBytes(value);
        full = bytes + 1 + size > maxBytes;
      }
      if (full) {
        yield close();
        part += 1;
        floor = partFloorBytes(first, part);
        slice = new Array(MEMBERS_PER_STAT_EVENT);
        count = 0;
        bound = floor;
        bytes = floor;
        exactTo = 0;
      }
    }
    if (count === 0 && floor + boundSize > maxBytes) {
      size ??= ENTRY_FRAME_BYTES + idSize + numberBytes(value);
      if (floor + size > maxBytes) {
        onEntryTooLarge?.({
          type: summaryType(first) as MemberStatEventType,
          clusterId: first.clusterId,
          networkPartitionId: first.networkPartitionId,
          memberId,
          bytes: floor + size,
          maxBytes,
        });
        continue;
      }
    }
    bound += (count > 0 ? 1 : 0) + boundSize;
    slice[count++] = { memberId, value };
  }
  if (count > 0) yield close();
}

/** `{"memberId":` and `,"value":` and `}`. */
const ENTRY_FRAME_BYTES = '{"memberId":,"value":}'.length;
/** Printable ASCII but `"` and `\\`: JSON writes such a string as it is, between quotes (every valid id is one). */
const PLAIN_JSON_STRING = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/** The bytes of `JSON.stringify(entry)`, by arithmetic: the split's one cost per member. */
export function entryBytes({ memberId, value }: MemberEntry): number {
  return ENTRY_FRAME_BYTES + idBytes(memberId) + numberBytes(value);
}

/** The bytes of `JSON.stringify(memberId)`. */
function idBytes(memberId: string): number {
  return PLAIN_JSON_STRING.test(memberId) ? memberId.length + 2 : Buffer.byteLength(JSON.stringify(memberId));
}

/** JSON writes a finite number as String() does, anything else as null. */
function numberBytes(value: number): number {
  return Number.isFinite(value) ? String(value).length : 4;
}

/** A part's envelope with no member listed, with room for the node's own fields. */
function partFloorBytes(first: WindowSummary, part: number): number {
  const skeleton = membersOutput(first, part, [], '', 0).envelope;
  return Buffer.byteLength(JSON.stringify(skeleton)) + NODE_FIELDS_RESERVE_BYTES;
}

function clusterOutput(summary: WindowSummary, source: string, time: number): Output {
  const { clusterId, clusterInstanceId, networkPartitionId, value, windowFrom, windowTo } = summary;
  const type = summaryType(summary) as ClusterStatEventType;
  const stream = summaryStream(type, clusterId, networkPartitionId);
  const data = { clusterId, clusterInstanceId, networkPartitionId, value, windowFrom, windowTo };
  const envelope = createEnvelope(type, data, { source, id: outputId(stream, windowTo), time });
  return { kind: 'summary', stream, seq: windowTo, envelope };
}

/** The part's cluster instance is its first member's (a cluster's members share one). */
function membersOutput(
  first: WindowSummary,
  part: number,
  members: MemberEntry[],
  source: string,
  time: number,
): Output {
  const { clusterId, clusterInstanceId, networkPartitionId, windowFrom, windowTo } = first;
  const type = summaryType(first) as MemberStatEventType;
  const stream = summaryStream(type, clusterId, networkPartitionId, part);
  const data = { clusterId, clusterInstanceId, networkPartitionId, windowFrom, windowTo, part, members };
  const envelope = createEnvelope(type, data, { source, id: outputId(stream, windowTo), time });
  return { kind: 'summary', stream, seq: windowTo, envelope };
}
