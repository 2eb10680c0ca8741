import type { BatchDedupe, DedupeRow } from './batch-dedupe.js';
import type { QueryEngine } from './query-engine.js';

/** The node's state for a passive that joins: the engine's stream, then the dedupe window's agents. */
export interface SnapshotStream {
  readonly header: { engine: unknown; agents: number };
  /** The next chunk of at most `maxItems` members or agents; undefined once everything was sent. */
  next(maxItems: number): SnapshotChunk | undefined;
}

export interface SnapshotChunk {
  engine?: unknown;
  dedupe?: DedupeRow[];
}

/**
 * Walks the engine's members, then the agents of the dedupe window, each
 * chunk encoded when asked for. An agent forgotten since the start is
 * skipped; an agent first seen after it reaches the passive through the
 * batches that follow the header on the link.
 */
export function streamSnapshot(engine: QueryEngine, dedupe: BatchDedupe): SnapshotStream {
  const engineStream = engine.exportStream();
  const agents = dedupe.agentIds();
  let engineDone = false;
  let nextAgent = 0;
  return {
    header: { engine: engineStream.header, agents: agents.length },
    next(maxItems) {
      const max = Math.max(1, maxItems);
      if (!engineDone) {
        const chunk = engineStream.next(max);
        if (chunk !== undefined) return { engine: chunk };
        engineDone = true;
      }
      if (nextAgent >= agents.length) return undefined;
      const rows: DedupeRow[] = [];
      for (const end = Math.min(agents.length, nextAgent + max); nextAgent < end; nextAgent++) {
        const row = dedupe.exportOne(agents[nextAgent] as string);
        if (row) rows.push(row);
      }
      return { dedupe: rows };
    },
  };
}
