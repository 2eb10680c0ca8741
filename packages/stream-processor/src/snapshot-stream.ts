import type { BatchDedupe, DedupeRow } from './batch-dedupe.js';
import type { QueryEngine } from './query-engine.js';

/**
 * Most bytes of dedupe rows per chunk, by their JSON length. A row is
 * usually a few dozen bytes, but one with a gap holds up to `maxGap + 1`
 * sequences (some 7 KB): counted by rows alone, a chunk of such agents could
 * pass the passive's frame bound and be refused at every relink.
 */
export const DEDUPE_CHUNK_MAX_BYTES = 1024 * 1024;

/** The node's state for a passive that joins: the dedupe window's agents, then the engine's stream. */
export interface SnapshotStream {
  readonly header: { engine: unknown; agents: number };
  /** What the next chunk carries: agents of the dedupe window, then members of the engine. */
  readonly phase: 'dedupe' | 'engine';
  /** The next chunk of at most `maxItems` agents or members; undefined once everything was sent. */
  next(maxItems: number): SnapshotChunk | undefined;
}

export interface SnapshotChunk {
  engine?: unknown;
  dedupe?: DedupeRow[];
}

/**
 * Walks the agents of the dedupe window, then the engine's members, each
 * chunk encoded when asked for. The dedupe first: a passive that takes over
 * before the stream ends (its active killed midway) then knows which batches
 * were taken, so an agent's resend is acknowledged as a duplicate, not
 * counted again (a batch taken while no passive followed, of a member whose
 * chunk had not come, is then missing from that member: one sample); once
 * its engine matches the active's, its dedupe is complete too. An agent forgotten since the start is skipped; an
 * agent first seen after it reaches the passive through the batches that
 * follow the header on the link (and a row read after such a batch includes
 * it: the passive's row is replaced whole).
 */
export function streamSnapshot(engine: QueryEngine, dedupe: BatchDedupe): SnapshotStream {
  const agents = dedupe.agentIds();
  const engineStream = engine.exportStream();
  let nextAgent = 0;
  return {
    header: { engine: engineStream.header, agents: agents.length },
    get phase() {
      return nextAgent < agents.length ? 'dedupe' : 'engine';
    },
    next(maxItems) {
      const max = Math.max(1, maxItems);
      if (nextAgent < agents.length) {
        const rows: DedupeRow[] = [];
        let bytes = 0;
        const end = Math.min(agents.length, nextAgent + max);
        // At least one row a chunk; then up to `max` rows or DEDUPE_CHUNK_MAX_BYTES of them.
        for (; nextAgent < end && (rows.length === 0 || bytes < DEDUPE_CHUNK_MAX_BYTES); nextAgent++) {
          const row = dedupe.exportOne(agents[nextAgent] as string);
          if (!row) continue;
          rows.push(row);
          // Its JSON: the id and brackets, and up to 17 characters per number.
          bytes += row[0].length + 24 + 17 * (row[2].length + 1);
        }
        return { dedupe: rows };
      }
      const chunk = engineStream.next(max);
      return chunk === undefined ? undefined : { engine: chunk };
    },
  };
}
