import { rmSync } from 'node:fs';
import { runNemesis } from '@faultline/nemesis';
import { afterAll, describe, expect, it } from 'vitest';

/*
 * A short seeded nemesis run (packages/nemesis): a stack of its own, 90 s
 * of random compound faults (SP nodes, brokers, PostgreSQL, the autoscaler,
 * members), the quiet period, then the checker's invariants. Zero violations
 * expected; on failure the message is the whole report (seed, schedule,
 * every violation with the faults and decisions around it), and
 * `npm run nemesis -- --minutes 1.5 --seed 20261201 --keep` repeats the schedule and keeps the
 * stack's folder (its logs) to look into.
 */

const SEED = '20261201';
let dir: string | undefined;

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Start-up (~20 s) + 90 s of faults + the quiet bound (54 s at most) + settle and stop (~20 s). */
const TIMEOUT_MS = 300_000;

describe('nemesis: randomized compound faults against the whole stack (aedes brokers)', () => {
  it(
    `seed ${SEED}: every harmed member replaced, no healthy member terminated, nothing twice, no orphan`,
    async () => {
      const result = await runNemesis({
        minutes: 1.5,
        seed: SEED,
        brokerKind: 'aedes',
        keep: false,
        write: () => {}, // the report, in the failure message, says it all
      });
      dir = result.dir;
      expect(result.aborted).toBe(false);
      expect(result.observation.faults.filter((f) => f.skipped === undefined).length).toBeGreaterThan(0);
      expect(result.violations, `\n${result.report}\n`).toEqual([]);
    },
    TIMEOUT_MS,
  );
});
