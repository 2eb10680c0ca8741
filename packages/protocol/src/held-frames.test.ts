import { describe, expect, it } from 'vitest';
import { createHealthStatServer, HeldFrames } from './thrift-service.js';

const holder = (peer: string, dropped: string[], name: string) => ({
  peer,
  bytes: 0,
  drop: () => dropped.push(name),
});

describe('HeldFrames', () => {
  it('over its budget drops a connection of the address keeping the most in all, not the largest single connection', () => {
    const budget = new HeldFrames(1_000_000);
    const dropped: string[] = [];
    // An agent's one large frame under way, and one address spreading 600 000 bytes over ten connections.
    const agent = holder('10.0.0.1', dropped, 'agent');
    budget.hold(agent, 300_000);
    const spread = Array.from({ length: 10 }, (_, i) => holder('10.6.6.6', dropped, `spread-${i}`));
    spread.forEach((h, i) => {
      budget.hold(h, 60_000 + i);
    });
    expect(dropped).toEqual([]);
    expect(budget.bytes).toBe(300_000 + 600_045);
    // Past the budget: the spreading address goes, its largest connection first, until under it again.
    budget.hold(agent, 400_000);
    expect(dropped).toEqual(['spread-9']);
    expect(budget.bytes).toBe(400_000 + 600_045 - 60_009);
    expect(agent.bytes).toBe(400_000);
    // A connection gone, or keeping nothing, counts nothing; counting 0 twice changes nothing.
    budget.hold(agent, 0);
    budget.hold(agent, 0);
    expect(budget.bytes).toBe(600_045 - 60_009);
  });

  it('a budget below one frame, or no number, is refused when the server is made', () => {
    const handler = {
      publish: async () => ({ agentId: 'a', sequence: 1, duplicate: false, epoch: 1, replicated: false }),
    };
    for (const maxHeldFrameBytes of [0, -1, Number.NaN, 1_000]) {
      expect(() =>
        createHealthStatServer(handler, { onConnectionError: () => {}, maxFrameBytes: 4_096, maxHeldFrameBytes }),
      ).toThrow(RangeError);
    }
    expect(() =>
      createHealthStatServer(handler, { onConnectionError: () => {}, maxHeldFrameBytes: 4 << 20 }),
    ).not.toThrow();
  });
});
