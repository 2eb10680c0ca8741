import { err, FaultlineError, ok, type Result } from '@faultline/core';
import type { MemberIdentity, MemberSpec } from './iaas.js';

/*
 * Boundary checks of what reaches the driver: specs from the autoscaler and
 * instances read back from its registry. Hand-written rather than zod because
 * zod is not a dependency of this package (see the README); each check names
 * the field, and the caller turns the list into one typed error.
 */

/**
 * Member and cluster ids become file names (ready file, outbox, logs) and
 * process arguments, so they are restricted to characters that are safe in
 * both: no slash, no leading dot, no whitespace.
 */
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

const IDENTITY_FIELDS = [
  'memberId',
  'clusterId',
  'clusterInstanceId',
  'networkPartitionId',
  'partitionId',
  'cartridgeType',
] as const satisfies readonly (keyof MemberIdentity)[];

export class MemberSpecError extends FaultlineError {
  readonly issues: readonly string[];
  constructor(what: string, issues: string[], memberId: unknown) {
    super('FL_ERR_MEMBER_SPEC_INVALID', `invalid ${what}: ${issues.join('; ')}`, {
      context: { memberId: typeof memberId === 'string' ? memberId : undefined, issues },
    });
    this.issues = issues;
  }
}

type Issues = string[];

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function checkId(value: unknown, field: string, issues: Issues): void {
  if (typeof value !== 'string' || !ID_PATTERN.test(value)) {
    issues.push(`${field}: must be 1-128 letters, digits, ".", "_" or "-", not starting with "." "_" "-"`);
  }
}

export function checkInt(value: unknown, field: string, issues: Issues, min: number, max: number): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    issues.push(`${field}: must be an integer from ${min} to ${max}`);
  }
}

function checkHost(value: unknown, field: string, issues: Issues): void {
  // A host name or an IPv4/IPv6 literal; nothing that could carry a separator of the env encoding.
  if (typeof value !== 'string' || !/^[A-Za-z0-9.:[\]-]{1,253}$/.test(value)) {
    issues.push(`${field}: must be a host name or an IP address`);
  }
}

export function checkPort(value: unknown, field: string, issues: Issues): void {
  checkInt(value, field, issues, 1, 65_535);
}

export function checkIdentity(value: Record<string, unknown>, issues: Issues): void {
  for (const field of IDENTITY_FIELDS) checkId(value[field], field, issues);
}

function checkList(value: unknown, field: string, issues: Issues, each: (item: unknown, at: string) => void): void {
  if (!Array.isArray(value) || value.length === 0) {
    issues.push(`${field}: must be a non-empty list`);
    return;
  }
  value.forEach((item, index) => {
    each(item, `${field}[${index}]`);
  });
}

function checkAgent(agent: unknown, issues: Issues): void {
  if (!isRecord(agent)) {
    issues.push('agent: must be an object');
    return;
  }
  checkList(agent.spEndpoints, 'agent.spEndpoints', issues, (item, at) => {
    const endpoint = isRecord(item) ? item : {};
    checkHost(endpoint.host, `${at}.host`, issues);
    checkPort(endpoint.port, `${at}.port`, issues);
  });
  checkList(agent.brokers, 'agent.brokers', issues, (item, at) => {
    const broker = isRecord(item) ? item : {};
    checkId(broker.name, `${at}.name`, issues);
    checkHost(broker.host, `${at}.host`, issues);
    checkPort(broker.port, `${at}.port`, issues);
  });
  const credentials = isRecord(agent.credentials) ? agent.credentials : {};
  for (const key of ['username', 'password'] as const) {
    const value = credentials[key];
    // Passed through the environment: no NUL (the kernel would cut the variable there).
    if (typeof value !== 'string' || value.length === 0 || value.includes('\0')) {
      issues.push(`agent.credentials.${key}: must be a non-empty string`);
    }
  }
  if (agent.statIntervalMs !== undefined)
    checkInt(agent.statIntervalMs, 'agent.statIntervalMs', issues, 1, 2 ** 31 - 1);
  if (agent.maxUnackedBatches !== undefined) {
    checkInt(agent.maxUnackedBatches, 'agent.maxUnackedBatches', issues, 1, 1_000_000);
  }
  if (agent.republishIntervalMs !== undefined) {
    checkInt(agent.republishIntervalMs, 'agent.republishIntervalMs', issues, 1, 2 ** 31 - 1);
  }
  if (agent.awaitSubscribers !== undefined) {
    if (!Array.isArray(agent.awaitSubscribers)) issues.push('agent.awaitSubscribers: must be a list');
    else {
      for (const [index, id] of agent.awaitSubscribers.entries())
        checkId(id, `agent.awaitSubscribers[${index}]`, issues);
    }
  }
}

/** Validates a spawn request. Never throws. */
export function validateSpec(spec: unknown): Result<MemberSpec, MemberSpecError> {
  if (!isRecord(spec)) return err(new MemberSpecError('member spec', ['(spec): must be an object'], undefined));
  const issues: Issues = [];
  checkIdentity(spec, issues);
  checkAgent(spec.agent, issues);
  if (spec.workload !== undefined) {
    const workload = isRecord(spec.workload) ? spec.workload : { latencyMs: 'not an object' };
    if (workload.latencyMs !== undefined) checkInt(workload.latencyMs, 'workload.latencyMs', issues, 0, 600_000);
  }
  if (issues.length > 0) return err(new MemberSpecError('member spec', issues, spec.memberId));
  return ok(spec as unknown as MemberSpec);
}
