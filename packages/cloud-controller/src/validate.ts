import { type ConfigIssue, err, FaultlineError, ok, type Result } from '@faultline/core';
import { idSchema, memberIdentityShape } from '@faultline/protocol';
import { z } from 'zod';
import type { MemberSpec } from './iaas.js';

/*
 * Boundary checks of what reaches the driver: specs from the autoscaler,
 * instances read back from its registry, ready reports written by a member.
 * Each problem names its field (`handle.workload.pid`, `spEndpoints[0].port`);
 * the caller turns the list into one typed error.
 */

/** An integer in [min, max], with one message whatever is wrong with it. */
export function intIn(min: number, max: number) {
  const message = `must be an integer from ${min} to ${max}`;
  return z.number({ error: message }).refine((value) => Number.isSafeInteger(value) && value >= min && value <= max, {
    error: message,
  });
}

export const portSchema = intIn(1, 65_535);

/** Every issue of a failed parse, keyed by its field path under `prefix` (`agent.spEndpoints[0].host`). */
export function issuesOf(error: z.ZodError, prefix = ''): ConfigIssue[] {
  return error.issues.map((issue) => ({
    key: issue.path.reduce<string>((key, part) => {
      if (typeof part === 'number') return `${key}[${part}]`;
      return key ? `${key}.${String(part)}` : String(part);
    }, prefix),
    reason: issue.message,
  }));
}

/** The issues as `<field>: <reason>` lines (the reason alone for the value itself). */
export function describeIssues(issues: readonly ConfigIssue[]): string[] {
  return issues.map((issue) => (issue.key ? `${issue.key}: ${issue.reason}` : issue.reason));
}

export class MemberSpecError extends FaultlineError {
  readonly issues: readonly string[];
  constructor(what: string, issues: string[], memberId: unknown) {
    super('FL_ERR_MEMBER_SPEC_INVALID', `invalid ${what}: ${issues.join('; ')}`, {
      context: { memberId: typeof memberId === 'string' ? memberId : undefined, issues },
    });
    this.issues = issues;
  }
}

/**
 * Ids become file names (ready file, outbox, logs) and process arguments, so
 * they follow protocol's id pattern: no slash, no leading dot, no whitespace.
 */
const memberSpecSchema = z.object(
  {
    ...memberIdentityShape,
    cartridgeType: idSchema,
    workload: z.object({ latencyMs: intIn(0, 600_000).optional() }, { error: 'must be an object' }).optional(),
  },
  { error: 'must be an object' },
);

/** Validates a spawn request. Never throws. */
export function validateSpec(spec: unknown): Result<MemberSpec, MemberSpecError> {
  const parsed = memberSpecSchema.safeParse(spec);
  if (parsed.success) return ok(parsed.data);
  const memberId = typeof spec === 'object' && spec !== null ? (spec as { memberId?: unknown }).memberId : undefined;
  return err(new MemberSpecError('member spec', describeIssues(issuesOf(parsed.error)), memberId));
}
