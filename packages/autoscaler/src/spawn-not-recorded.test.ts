import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { MemberRecord } from './member.js';
import { RegistryError } from './registry.js';
import { events, flush, harness, MemoryRegistry, useFakeTime } from './testing/index.js';

/** A registry that answers reads, and loses the next `failCreated` spawn intents (the database dying in between). */
class IntentLost extends MemoryRegistry {
  failCreated = 0;

  override async saveMember(record: MemberRecord): Promise<void> {
    if (record.state === 'Created' && this.failCreated > 0) {
      this.failCreated -= 1;
      throw new RegistryError('member write', { cause: new Error('connection terminated') });
    }
    return super.saveMember(record);
  }
}

/*
 * The registry looked reachable when the minimum rule decided a spawn, and
 * its intent (the Created row) was then lost: the spawn must not start, and
 * must say so as a removal, so that decisions less those removals are the
 * spawns the Iaas was asked for (what an operator, and the stack's e2e after a
 * PostgreSQL kill, count as replacements).
 */
describe('a spawn whose intent the registry lost', () => {
  beforeEach(useFakeTime);
  afterEach(() => vi.useRealTimers());

  it('is not started, is removed as not started, and the next tick spawns its replacement once', async () => {
    const registry = new IntentLost();
    registry.failCreated = 1;
    const h = harness({ registry });
    await h.core.start();
    await flush();
    // php-1's intent was lost: two of three started, php-1 removed as not started.
    expect(h.iaas.callsOf('spawn').map((c) => c.memberId)).toEqual(['php-2', 'php-3']);
    const removed = h.decisions().filter((r) => r.fields.action === 'MemberRemoved');
    expect(removed.map((r) => [r.fields.memberId, r.fields.reason])).toEqual([
      ['php-1', 'spawn not started: the registry did not record its intent'],
    ]);
    expect(h.logger.events()).toContain('autoscaler.spawn_not_recorded');
    // Its row, if the removal wrote one, is no live member's: a restart adopts nothing of it.
    expect(registry.members.get('php-1')?.state).toBe('Terminated');

    for (const id of h.iaas.running) await h.core.handle(events.activated(id));
    await h.report(5_000, { stepMs: 1_000 });
    const started = h.iaas.callsOf('spawn').map((c) => c.memberId);
    expect(started).toHaveLength(3);
    expect(h.iaas.running).toHaveLength(3);
    const notStarted = new Set(removed.map((r) => r.fields.memberId));
    const decided = h
      .decisions()
      .filter((r) => r.fields.action === 'MemberSpawnAction')
      .map((r) => r.fields.memberId as string);
    expect(decided).toHaveLength(4);
    expect(decided.filter((id) => !notStarted.has(id))).toEqual(started);
    await h.core.close();
  });
});
