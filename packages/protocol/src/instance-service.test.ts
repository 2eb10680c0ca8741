import { describe, expect, it } from 'vitest';
import { createEnvelope, decodeEnvelope, encodeEnvelope, validateEnvelope } from './envelope.js';
import { isNewerServiceEvent } from './events.js';
import { testMember } from './testing/index.js';
import { topicOf } from './topics.js';

describe('readiness events (README "Probes")', () => {
  it('carry the member, its agent life and a sequence, and go under the member like its other status', () => {
    const data = { ...testMember(), life: 1_700_000_000_000, seq: 1, reason: 'GET /ready: HTTP 503, expected 200' };
    const out = createEnvelope('InstanceOutOfServiceEvent', data, { source: 'agent-php-m-1', id: 'x:1', time: 1 });
    expect(validateEnvelope(out).ok).toBe(true);
    expect(topicOf(out)).toBe('instance/status/php-m-1/InstanceOutOfServiceEvent');
    const back = decodeEnvelope(encodeEnvelope(out), { topic: topicOf(out) });
    expect(back.ok && back.value.data).toEqual(data);
    const { reason: _, ...bare } = data;
    const inService = createEnvelope(
      'InstanceInServiceEvent',
      { ...bare, seq: 2 },
      { source: 's', id: 'x:2', time: 2 },
    );
    expect(validateEnvelope(inService).ok).toBe(true);
    expect(validateEnvelope({ ...inService, data: { ...bare, seq: 0 } }).ok).toBe(false);
  });

  it('are ordered by (life, seq): a repeat or an older one is not newer', () => {
    expect(isNewerServiceEvent({ life: 5, seq: 1 })).toBe(true);
    expect(isNewerServiceEvent({ life: 5, seq: 2 }, { life: 5, seq: 1 })).toBe(true);
    expect(isNewerServiceEvent({ life: 5, seq: 1 }, { life: 5, seq: 1 })).toBe(false);
    expect(isNewerServiceEvent({ life: 5, seq: 1 }, { life: 5, seq: 2 })).toBe(false);
    // A restarted agent starts at seq 1 again: its life is later.
    expect(isNewerServiceEvent({ life: 9, seq: 1 }, { life: 5, seq: 7 })).toBe(true);
    expect(isNewerServiceEvent({ life: 4, seq: 9 }, { life: 5, seq: 1 })).toBe(false);
  });
});
