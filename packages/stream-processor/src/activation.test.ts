import { describe, expect, it } from 'vitest';
import { type ActivationFacts, activationOf } from './activation.js';

const facts = (over: Partial<ActivationFacts>): ActivationFacts => ({
  nodeId: 'sp-1',
  previous: undefined,
  followed: undefined,
  lastTerm: undefined,
  heardAt: 10_000,
  now: 10_000,
  ...over,
});

describe('activationOf: how long members could reach no active, as the node can tell', () => {
  it('its own lease back, state its own: since it stopped acting (at least the lease table’s silence)', () => {
    const lastTerm = { epoch: 4, served: true, endedAt: 8_500, replaced: false };
    expect(activationOf(facts({ previous: { nodeId: 'sp-1', epoch: 4, silentForMs: 900 }, lastTerm }))).toEqual({
      resumed: true,
      unheardMs: 1_500,
    });
    // The lease table's silence, counted to now, when longer (the process was paused before it fenced).
    expect(
      activationOf(facts({ previous: { nodeId: 'sp-1', epoch: 4, silentForMs: 3_000 }, lastTerm, now: 10_200 })),
    ).toEqual({ resumed: true, unheardMs: 3_200 });
  });

  it('not resumed when its term never served, another node’s snapshot replaced its state, or the epoch is not its last', () => {
    const previous = { nodeId: 'sp-1', epoch: 4, silentForMs: 900 };
    const term = { epoch: 4, served: true, endedAt: 8_500, replaced: false };
    expect(activationOf(facts({ previous, lastTerm: { ...term, served: false } }))).toEqual({ resumed: false });
    expect(activationOf(facts({ previous, lastTerm: { ...term, replaced: true } }))).toEqual({ resumed: false });
    expect(activationOf(facts({ previous, lastTerm: { ...term, epoch: 3 } }))).toEqual({ resumed: false });
  });

  it('a takeover from the active it followed: that active’s silence, or since the link ended if earlier', () => {
    const previous = { nodeId: 'sp-2', epoch: 7, silentForMs: 2_100 };
    const linked = { nodeId: 'sp-2', epoch: 7, synced: true, endedAt: undefined, lastMessageAt: 9_900 };
    expect(activationOf(facts({ previous, followed: linked }))).toEqual({ resumed: false, unheardMs: 2_100 });
    expect(activationOf(facts({ previous, followed: { ...linked, endedAt: 1_000, lastMessageAt: 1_000 } }))).toEqual({
      resumed: false,
      unheardMs: 9_000,
    });
  });

  it('a link that went quiet without closing (a partition): at least since its last message', () => {
    // Review: the socket of a silently dead link never closes, so `endedAt` stayed undefined and a takeover long
    // after the partition began gave back only the holder's 2 s: every member overdue on this node faulted at once.
    const previous = { nodeId: 'sp-2', epoch: 7, silentForMs: 2_100 };
    const linked = { nodeId: 'sp-2', epoch: 7, synced: true, endedAt: undefined, lastMessageAt: 1_000 };
    expect(activationOf(facts({ previous, followed: linked }))).toEqual({ resumed: false, unheardMs: 9_000 });
    // A recent message: the holder's silence, as before.
    expect(activationOf(facts({ previous, followed: { ...linked, lastMessageAt: 9_500 } }))).toEqual({
      resumed: false,
      unheardMs: 2_100,
    });
  });

  it('cannot tell (the whole grace) without the holder’s silence, a synced link to that very term, or any holder', () => {
    const previous = { nodeId: 'sp-2', epoch: 7, silentForMs: 2_100 };
    const linked = { nodeId: 'sp-2', epoch: 7, synced: true, endedAt: undefined, lastMessageAt: 9_900 };
    expect(activationOf(facts({ previous: { nodeId: 'sp-2', epoch: 7 }, followed: linked }))).toEqual({
      resumed: false,
    });
    expect(activationOf(facts({ previous, followed: { ...linked, synced: false } }))).toEqual({ resumed: false });
    expect(activationOf(facts({ previous, followed: { ...linked, epoch: 6 } }))).toEqual({ resumed: false });
    expect(activationOf(facts({ followed: linked }))).toEqual({ resumed: false });
  });
});
