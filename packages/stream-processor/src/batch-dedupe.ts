/**
 * Which (agent id, batch sequence) pairs this node has accepted, so a batch
 * an agent resends after a failover is acknowledged but not counted twice.
 * Per agent: every sequence ≤ `floor` was seen, plus the ones above it. An
 * agent sends in order, so `above` stays tiny; a gap that never fills (an
 * agent dropped batches at its bound) is skipped once `above` grows past
 * `maxGap`. Agents are forgotten least-recently-seen first beyond
 * `maxAgents`. The state is plain JSON so the passive gets it in the
 * snapshot.
 */
export interface DedupeState {
  agents: [agentId: string, floor: number, above: number[]][];
}

interface AgentSeen {
  floor: number;
  above: Set<number>;
}

export class BatchDedupe {
  private agents = new Map<string, AgentSeen>();

  constructor(
    private readonly maxAgents = 100_000,
    private readonly maxGap = 1_024,
  ) {}

  has(agentId: string, sequence: number): boolean {
    const seen = this.agents.get(agentId);
    return seen !== undefined && (sequence <= seen.floor || seen.above.has(sequence));
  }

  /** Records the pair; returns false when it was already recorded. */
  add(agentId: string, sequence: number): boolean {
    let seen = this.agents.get(agentId);
    if (seen) {
      if (sequence <= seen.floor || seen.above.has(sequence)) return false;
      this.agents.delete(agentId); // re-insert: most recently seen last
    } else {
      seen = { floor: 0, above: new Set() };
    }
    this.agents.set(agentId, seen);
    seen.above.add(sequence);
    while (seen.above.delete(seen.floor + 1)) seen.floor += 1;
    if (seen.above.size > this.maxGap) {
      const lowest = Math.min(...seen.above);
      seen.floor = lowest - 1;
      while (seen.above.delete(seen.floor + 1)) seen.floor += 1;
    }
    if (this.agents.size > this.maxAgents) {
      const oldest = this.agents.keys().next().value as string;
      this.agents.delete(oldest);
    }
    return true;
  }

  get size(): number {
    return this.agents.size;
  }

  export(): DedupeState {
    return { agents: [...this.agents].map(([id, s]) => [id, s.floor, [...s.above]]) };
  }

  import(state: DedupeState): void {
    this.agents = new Map(state.agents.map(([id, floor, above]) => [id, { floor, above: new Set(above) }]));
  }
}
