import type { MemberInstance } from './iaas.js';
import { checkLocalHandle, type LocalHandle } from './member-processes.js';
import type { ProcessTable } from './proc-table.js';
import { checkIdentity, checkInt, checkPort, isRecord } from './validate.js';

/** A MemberInstance of the local driver: its handle is the process group. */
export type LocalInstance = MemberInstance & { driver: 'local'; handle: LocalHandle };

export type CheckedInstance =
  | { ok: true; instance: LocalInstance }
  | { ok: false; memberId: string | undefined; reason: string };

/**
 * Validates an instance handed back by the registry (external input: a row
 * written by another version, edited by hand, or from another driver).
 */
export function checkInstance(value: unknown): CheckedInstance {
  if (!isRecord(value)) return { ok: false, memberId: undefined, reason: 'not an object' };
  const memberId = typeof value.memberId === 'string' ? value.memberId : undefined;
  if (value.driver !== 'local') {
    return { ok: false, memberId, reason: `driver ${JSON.stringify(value.driver)} is not local` };
  }
  const issues: string[] = [];
  checkIdentity(value, issues);
  checkInt(value.spawnedAt, 'spawnedAt', issues, 0, Number.MAX_SAFE_INTEGER);
  const address = isRecord(value.address) ? value.address : {};
  if (typeof address.host !== 'string' || address.host.length === 0) issues.push('address.host: must be a string');
  checkPort(address.port, 'address.port', issues);
  issues.push(...checkLocalHandle(value.handle));
  if (issues.length > 0) return { ok: false, memberId, reason: issues.join('; ') };
  return { ok: true, instance: structuredClone(value) as unknown as LocalInstance };
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
