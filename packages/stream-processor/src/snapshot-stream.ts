import type { BatchDedupe, DedupeRow } from './batch-dedupe.js';
import type { QueryEngine } from './query-engine.js';

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
 * chunk encoded when asked for. The dedupe first: its rows are small, and a
 * passive that takes over before the stream ends (its active killed midway)
 * then still knows which batches it has seen, so a batch resent after the
 * kill is not counted twice; once its engine matches the active's, its
 * dedupe is complete too. An agent forgotten since the start is skipped; an
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
        for (const end = Math.min(agents.length, nextAgent + max); nextAgent < end; nextAgent++) {
          const row = dedupe.exportOne(agents[nextAgent] as string);
          if (row) rows.push(row);
        }
        return { dedupe: rows };
      }
      const chunk = engineStream.next(max);
      return chunk === undefined ? undefined : { engine: chunk };
    },
  };
}
