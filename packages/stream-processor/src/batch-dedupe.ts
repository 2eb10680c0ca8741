import { RecentMap } from '@faultline/core';
import { isAgentId } from '@faultline/protocol';

/**
 * Which (agent id, batch sequence) pairs this node has accepted, so a batch
 * an agent resends after a failover is acknowledged but not counted twice.
 * Per agent: every sequence ≤ `floor` was seen, plus the ones above it. An
 * agent sends in order, so `above` stays tiny; a gap that never fills (an
 * agent dropped batches at its bound) is skipped once `above` grows past
 * `maxGap`. A sequence more than `maxGap` above the highest one the agent
 * has sent is refused (`out_of_window`) and changes nothing: the floor of a
 * known agent only moves over gaps the agent itself left, never to a number
 * a batch merely claims (1 025 batches at 1e15 once made every later real
 * batch a "duplicate"). An agent id this node does not know (an agent that
 * outlived an SP restart, or one forgotten since) starts its floor at its
 * first batch: an agent sends one call at a time, oldest first, so what
 * comes below it later is a batch it had acknowledged or given up. That
 * first number is a claim too, so a sequence more than `maxGap` below the
 * floor is refused (`out_of_window`), not acknowledged as a duplicate: an
 * agent whose first batch here was forged far ahead starts a new agent id
 * instead of having every batch taken for one it sent. Agents are forgotten
 * about least-recently-seen first beyond `maxAgents` (RecentMap: an agent's
 * batch marks it, nothing is moved per batch). The state is plain JSON so
 * the passive gets it in the snapshot.
 */
export type DedupeRow = [agentId: string, floor: number, above: number[]];

export interface DedupeState {
  agents: DedupeRow[];
}

/** What `add` did: recorded it, had seen it, or refused it as too far ahead. */
export type DedupeOutcome = 'added' | 'duplicate' | 'out_of_window';

interface AgentSeen {
  floor: number;
  /**
   * The sequences seen above `floor`; undefined while there are none (an agent
   * sending in order never has any: no Set per agent, two objects fewer each
   * for every full collection to mark at 100 000 agents).
   */
  above: Set<number> | undefined;
  /** The highest sequence seen: `floor`, or the largest of `above`. */
  top: number;
}

export class BatchDedupe {
  private readonly agents: RecentMap<string, AgentSeen>;

  constructor(
    /** Twice the 100 000 members one pair is built for: an agent's new life leaves its old id behind for a while. */
    maxAgents = 200_000,
    readonly maxGap = 1_024,
  ) {
    this.agents = new RecentMap(maxAgents);
  }

  has(agentId: string, sequence: number): boolean {
    const seen = this.agents.peek(agentId);
    return seen !== undefined && (sequence <= seen.floor || seen.above?.has(sequence) === true);
  }

  /** What `add` would answer, without recording anything. */
  check(agentId: string, sequence: number): DedupeOutcome {
    const seen = this.agents.peek(agentId);
    return seen ? this.judge(seen, sequence) : 'added';
  }

  /** What a known agent's `sequence` is: seen, out of its window (either side), or new. */
  private judge(seen: AgentSeen, sequence: number): DedupeOutcome {
    if (sequence <= seen.floor || seen.above?.has(sequence))
      return sequence < seen.floor - this.maxGap ? 'out_of_window' : 'duplicate';
    return sequence > seen.top + this.maxGap ? 'out_of_window' : 'added';
  }

  /** Records the pair unless it was recorded already or is out of the agent's window. */
  add(agentId: string, sequence: number): DedupeOutcome {
    this.stale?.delete(agentId);
    const seen = this.agents.peek(agentId);
    if (seen) {
      const outcome = this.judge(seen, sequence);
      if (outcome !== 'added') return outcome;
      this.agents.get(agentId); // seen now
      if (sequence === seen.floor + 1 && seen.above === undefined) {
        // The common case, in order: no set to touch.
        seen.floor = sequence;
        if (sequence > seen.top) seen.top = sequence;
        return 'added';
      }
    } else {
      // First seen here: all below it is behind the agent, which sends one call at a time, oldest first (a
      // batch goes once every earlier one is acknowledged, by any node, or given up). A floor of 0 left a
      // hole under an agent that outlived an SP restart: a number per batch in `above` until maxGap, 1 024
      // per agent at 100 000 agents, in memory and in every snapshot.
      this.agents.set(agentId, { floor: sequence, above: undefined, top: sequence });
      return 'added';
    }
    const above = seen.above ?? new Set<number>();
    above.add(sequence);
    if (sequence > seen.top) seen.top = sequence;
    while (above.delete(seen.floor + 1)) seen.floor += 1;
    if (above.size > this.maxGap) {
      const lowest = Math.min(...above);
      seen.floor = lowest - 1;
      while (above.delete(seen.floor + 1)) seen.floor += 1;
    }
    seen.above = above.size > 0 ? above : undefined;
    return 'added';
  }

  get size(): number {
    return this.agents.size;
  }

  export(): DedupeState {
    return { agents: [...this.agents.keys()].map((id) => this.exportOne(id) as DedupeRow) };
  }

  import(state: DedupeState): void {
    this.agents.clear();
    for (const row of state.agents) this.importOne(row);
  }

  /** Every agent's id, least recently seen first (a streamed snapshot walks these). */
  agentIds(): string[] {
    return [...this.agents.keys()];
  }

  /** One agent's row as `export()` gives it, or undefined when it is not known (forgotten since). */
  exportOne(agentId: string): DedupeRow | undefined {
    const seen = this.agents.peek(agentId);
    return seen && [agentId, seen.floor, seen.above ? [...seen.above] : []];
  }

  /**
   * Replaces one agent's record with a peer's (a streamed snapshot), in its
   * place when it is known (rows come least recently seen first, as the
   * peer holds them); the bound still holds.
   */
  importOne([id, floor, above]: DedupeRow): void {
    this.stale?.delete(id);
    const top = above.reduce((top, s) => Math.max(top, s), floor);
    const seen: AgentSeen = { floor, above: above.length > 0 ? new Set(above) : undefined, top };
    this.agents.set(id, seen);
  }

  /** Agents held when a streamed import began that no row or batch has spoken of since. */
  private stale: Set<string> | undefined;

  /**
   * A streamed import begins: nothing is dropped yet (a takeover before it
   * ends keeps every agent this node knew), only marked; `endImport` drops
   * what the peer did not send and no batch touched.
   */
  beginImport(): void {
    this.stale = new Set(this.agents.keys());
  }

  endImport(): void {
    for (const id of this.stale ?? []) this.agents.delete(id);
    this.stale = undefined;
  }
}

/** Whether `row` is a dedupe row a peer may send: an agent id, a floor and at most `maxGap + 1` sequences above it. */
export function isDedupeRow(row: unknown, maxGap: number): row is DedupeRow {
  if (!Array.isArray(row) || row.length !== 3) return false;
  const [id, floor, above] = row;
  if (!isAgentId(id) || !Number.isSafeInteger(floor) || floor < 0 || !Array.isArray(above)) return false;
  if (above.length > maxGap + 1) return false;
  for (const s of above) if (!Number.isSafeInteger(s) || s <= floor) return false;
  return true;
}
