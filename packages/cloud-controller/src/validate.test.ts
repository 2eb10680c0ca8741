import { testMember } from '@faultline/protocol/testing';
import { describe, expect, it } from 'vitest';
import type { MemberSpec } from './iaas.js';
import { validateSpec } from './validate.js';

const spec: MemberSpec = { ...testMember('php-m-1'), cartridgeType: 'php', workload: { latencyMs: 5 } };

describe('validateSpec', () => {
  it('accepts a complete spec', () => {
    expect(validateSpec(spec)).toEqual({ ok: true, value: spec });
    const { workload: _, ...withoutWorkload } = spec;
    expect(validateSpec(withoutWorkload)).toMatchObject({ ok: true });
  });

  it('names every bad field', () => {
    const result = validateSpec({
      ...spec,
      memberId: 'a/b',
      clusterId: '',
      cartridgeType: 7,
      workload: { latencyMs: 1.5 },
    });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error.code).toBe('FL_ERR_MEMBER_SPEC_INVALID');
    expect(result.error.context.memberId).toBe('a/b');
    expect(result.error.issues.map((issue) => issue.split(':')[0])).toEqual([
      'clusterId',
      'memberId',
      'cartridgeType',
      'workload.latencyMs',
    ]);
    expect(result.error.issues).toContain('workload.latencyMs: must be an integer from 0 to 600000');
    expect(validateSpec(null)).toMatchObject({ ok: false });
    expect(validateSpec({ ...spec, workload: 'x' })).toMatchObject({ ok: false });
  });
});
