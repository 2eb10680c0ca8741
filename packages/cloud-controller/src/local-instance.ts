import { idSchema, memberIdentityShape } from '@faultline/protocol';
import { z } from 'zod';
import type { MemberInstance } from './iaas.js';
import { checkLocalHandle, type LocalHandle, localHandleSchema } from './member-processes.js';
import type { ProcessTable } from './proc-table.js';
import { describeIssues, intIn, issuesOf, portSchema } from './validate.js';

/** A MemberInstance of the local driver: its handle is the process group. */
export type LocalInstance = MemberInstance & { driver: 'local'; handle: LocalHandle };

export type CheckedInstance =
  | { ok: true; instance: LocalInstance }
  | { ok: false; memberId: string | undefined; reason: string };

/** Loose: a row keeps whatever else it holds, as it was written. */
const localInstanceSchema = z.looseObject({
  ...memberIdentityShape,
  cartridgeType: idSchema,
  driver: z.literal('local'),
  spawnedAt: intIn(0, Number.MAX_SAFE_INTEGER),
  address: z.looseObject(
    { host: z.string({ error: 'must be a string' }).min(1, { error: 'must be a string' }), port: portSchema },
    { error: 'must be an object' },
  ),
  handle: localHandleSchema,
});

/**
 * Validates an instance handed back by the registry (external input: a row
 * written by another version, edited by hand, or from another driver).
 */
export function checkInstance(value: unknown): CheckedInstance {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, memberId: undefined, reason: 'not an object' };
  }
  const row = value as { memberId?: unknown; driver?: unknown };
  const memberId = typeof row.memberId === 'string' ? row.memberId : undefined;
  if (row.driver !== 'local') {
    return { ok: false, memberId, reason: `driver ${JSON.stringify(row.driver)} is not local` };
  }
  const parsed = localInstanceSchema.safeParse(value);
  if (!parsed.success) return { ok: false, memberId, reason: describeIssues(issuesOf(parsed.error)).join('; ') };
  // A copy, so the row can change without changing the driver's record.
  return { ok: true, instance: structuredClone(parsed.data) };
}

/** The local handle of an instance this driver returned (for tools: chaos, status), or undefined. */
export function localHandle(instance: MemberInstance): LocalHandle | undefined {
  return instance.driver === 'local' && checkLocalHandle(instance.handle).length === 0
    ? (instance.handle as LocalHandle)
    : undefined;
}

/** Why a recorded member's instance no longer runs, or undefined when it does. */
export function goneReason(table: ProcessTable, handle: LocalHandle): string | undefined {
  if (handle.bootId !== table.bootId()) return 'the machine was rebooted';
  const stat = table.stat(handle.workload.pid);
  if (!stat) return 'the workload exited';
  if (stat.startTime !== handle.workload.startTime) return `pid ${handle.workload.pid} now belongs to another process`;
  if (stat.state === 'Z' || stat.state === 'X') return 'the workload exited';
  return undefined;
}
