import { describe, expect, it } from 'vitest';
import { FaultStorm } from './fault-storm.js';

describe('FaultStorm: more than half of a cluster of at least 3 within one fault timeout', () => {
  it('tips at the third fault of 4 members, not at the second (2 of 4 is half, not more)', () => {
    const storm = new FaultStorm(60_000);
    expect(storm.record('m1', 0, 4)).toEqual({ type: 'normal' });
    expect(storm.record('m2', 1_000, 4)).toEqual({ type: 'normal' });
    expect(storm.record('m3', 2_000, 4)).toEqual({
      type: 'tipped',
      faultedMemberIds: ['m1', 'm2', 'm3'],
      clusterSize: 4,
    });
    expect(storm.heldSince).toBe(2_000);
    expect(storm.record('m4', 3_000, 4)).toEqual({ type: 'held' });
  });

  it('counts replacements as the cluster: 3 members, the second fault tips it', () => {
    const storm = new FaultStorm(60_000);
    expect(storm.record('m1', 0, 3).type).toBe('normal');
    // m1 was replaced: m2, m3 and the replacement are live.
    expect(storm.record('m2', 1_000, 3)).toEqual({ type: 'tipped', faultedMemberIds: ['m1', 'm2'], clusterSize: 3 });
  });

  it('never storms in a cluster smaller than 3', () => {
    const storm = new FaultStorm(60_000);
    expect(storm.record('m1', 0, 2).type).toBe('normal');
    expect(storm.record('m2', 0, 2).type).toBe('normal');
    expect(storm.held).toBe(false);
  });

  it('forgets faults older than the window; the same member counts once', () => {
    const storm = new FaultStorm(60_000);
    storm.record('m1', 0, 4);
    storm.record('m1', 1_000, 4);
    storm.record('m2', 30_000, 4);
    expect(storm.faultedCount(30_000)).toBe(2);
    // m1 last faulted at 1 000: gone from the window at 61 000.
    expect(storm.record('m3', 61_000, 4)).toEqual({ type: 'normal' });
    expect(storm.faultedCount(61_000)).toBe(2);
  });

  it('release ends the hold and forgets the storm faults', () => {
    const storm = new FaultStorm(60_000);
    for (const id of ['m1', 'm2', 'm3']) storm.record(id, 0, 4);
    expect(storm.held).toBe(true);
    storm.release();
    expect(storm.held).toBe(false);
    expect(storm.record('m4', 1_000, 4)).toEqual({ type: 'normal' });
  });
});
