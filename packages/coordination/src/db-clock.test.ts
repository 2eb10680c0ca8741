import { describe, expect, it } from 'vitest';
import { DatabaseClockWatch } from './db-clock.js';

// Database time = monotonic time + 1 000 000 (the offset is arbitrary; only its changes matter).
const OFFSET = 1_000_000;

describe('DatabaseClockWatch (tolerance 300 ms, window 4 s)', () => {
  it('latency widens a reading, it never reads as a step', () => {
    const watch = new DatabaseClockWatch(300, 4_000);
    // Statements of 10 ms, then of 1.5 s running at their start or at their end: all agree.
    expect(watch.observe(0, 10, OFFSET + 5)).toBeUndefined();
    expect(watch.observe(100, 1_600, OFFSET + 100)).toBeUndefined();
    expect(watch.observe(200, 1_700, OFFSET + 1_700)).toBeUndefined();
    expect(watch.observe(1_800, 1_810, OFFSET + 1_805)).toBeUndefined();
    expect(watch.settled(1_810, 2_000)).toBe(false); // read for 1.8 s only
    expect(watch.settled(2_010, 2_000)).toBe(true);
  });

  it('a watch with no history is not settled until it has read for the whole period asked', () => {
    const watch = new DatabaseClockWatch(300, 4_000);
    expect(watch.settled(0, 2_000)).toBe(false);
    watch.observe(0, 10, OFFSET + 5);
    expect(watch.settled(2_010, 2_000)).toBe(false); // one reading: nothing agreed with it yet
    expect(watch.settlesAt(2_000)).toBe(2_010);
    watch.observe(1_000, 1_010, OFFSET + 1_005);
    expect(watch.settled(2_009, 2_000)).toBe(false);
    expect(watch.settled(2_010, 2_000)).toBe(true);
    expect(watch.reckon(2_010)).toBe(OFFSET + 2_005); // and the guard has its reckoning
  });

  it('after a window with no reading, reads for the whole period again (the old readings vouch for nothing)', () => {
    const watch = new DatabaseClockWatch(300, 4_000);
    for (let t = 0; t <= 3_000; t += 1_000) watch.observe(t, t + 10, OFFSET + t + 5);
    expect(watch.settled(3_010, 2_000)).toBe(true);
    expect(watch.settled(7_011, 2_000)).toBe(false); // the newest reading left the window
    expect(watch.observe(9_000, 9_010, OFFSET + 9_005)).toBeUndefined(); // agrees, but starts a new history
    watch.observe(10_000, 10_010, OFFSET + 10_005);
    expect(watch.settled(10_010, 2_000)).toBe(false);
    expect(watch.settled(11_010, 2_000)).toBe(true);
    // A step across the gap is still seen: the newest reading is kept to compare with.
    const stepped = new DatabaseClockWatch(300, 4_000);
    stepped.observe(0, 10, OFFSET + 5);
    expect(stepped.observe(9_000, 9_010, OFFSET + 9_005 + 1_000)).toBe(990);
  });

  it('a step beyond the tolerance, forward or back, is seen by the next reading and named', () => {
    const forward = new DatabaseClockWatch(300, 4_000);
    forward.observe(0, 10, OFFSET + 5);
    expect(forward.observe(125, 135, OFFSET + 130 + 301 + 10)).toBeGreaterThan(300);
    const back = new DatabaseClockWatch(300, 4_000);
    back.observe(0, 10, OFFSET + 5);
    expect(back.observe(125, 135, OFFSET + 130 - 1_000)).toBeLessThan(-300);
  });

  it('after a step, not settled until readings agreed again for the whole period asked', () => {
    const watch = new DatabaseClockWatch(300, 4_000);
    watch.observe(0, 10, OFFSET + 5);
    expect(watch.observe(1_000, 1_010, OFFSET + 1_005 + 1_500)).toBe(1_490);
    expect(watch.settled(1_010, 2_000)).toBe(false);
    expect(watch.settled(3_010, 2_000)).toBe(false); // no reading since the step
    expect(watch.observe(2_000, 2_010, OFFSET + 2_005 + 1_500)).toBeUndefined();
    expect(watch.settled(2_010, 2_000)).toBe(false);
    expect(watch.settled(3_010, 2_000)).toBe(true);
  });

  it('reckons database time never ahead of the database’s own, from the lowest bound in the window', () => {
    const watch = new DatabaseClockWatch(300, 4_000);
    expect(watch.reckon(0)).toBeUndefined();
    watch.observe(0, 1_000, OFFSET + 500); // ran halfway: the node can only know it ran by the end
    expect(watch.reckon(1_000)).toBe(OFFSET + 500);
    watch.observe(1_100, 1_110, OFFSET + 1_105); // a fast one: still the slow one's bound while it is kept
    expect(watch.reckon(2_000)).toBe(OFFSET + 1_500);
    // Once the slow reading leaves the window, the fast one's tighter bound.
    expect(watch.reckon(5_500)).toBe(OFFSET + 5_495);
  });
});
