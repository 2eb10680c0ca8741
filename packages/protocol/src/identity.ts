import { ID_PATTERN, ID_PATTERN_DESCRIPTION } from '@faultline/core';
import { z } from 'zod';

/*
 * The identities every service speaks of, owned here once: the id pattern,
 * a member's identity, an endpoint, and the client ids other services wait
 * for. Each side of a wire imports these; none declares its own.
 */

export { ID_PATTERN, ID_PATTERN_DESCRIPTION };

/** Whether `value` is an id: one pattern for members, clusters, partitions, agents and nodes. */
export function isId(value: unknown): value is string {
  return typeof value === 'string' && ID_PATTERN.test(value);
}

/** The zod form of the id pattern, for schemas at every boundary. */
export const idSchema = z.string().regex(ID_PATTERN, ID_PATTERN_DESCRIPTION);

/**
 * A cartridge agent's id in a health-stat batch: an id, optionally followed by
 * `:<start ms>` (the agent names itself `<memberId>:<start ms>`, so a restarted
 * agent starts a fresh batch sequence the SP does not mistake for repeats).
 */
export const AGENT_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}(:[0-9]{1,16})?$/;

export function isAgentId(value: unknown): value is string {
  return typeof value === 'string' && AGENT_ID_PATTERN.test(value);
}

export const agentIdSchema = z
  .string()
  .regex(AGENT_ID_PATTERN, `${ID_PATTERN_DESCRIPTION}, optionally followed by ":<digits>"`);

/** Who a member is: the five ids a health stat, a fault and an instance event carry. */
export interface MemberIdentity {
  clusterId: string;
  clusterInstanceId: string;
  networkPartitionId: string;
  partitionId: string;
  memberId: string;
}

/** The identity's keys, in wire order. */
export const MEMBER_IDENTITY_KEYS = [
  'clusterId',
  'clusterInstanceId',
  'networkPartitionId',
  'partitionId',
  'memberId',
] as const satisfies readonly (keyof MemberIdentity)[];

/** The identity as zod fields, to spread into the schemas that carry one. */
export const memberIdentityShape = {
  clusterId: idSchema,
  clusterInstanceId: idSchema,
  networkPartitionId: idSchema,
  partitionId: idSchema,
  memberId: idSchema,
};

/** Copies exactly the identity out of a larger record (a stat, a spec, a row). */
export function memberIdentityOf(source: Readonly<MemberIdentity>): MemberIdentity {
  return {
    clusterId: source.clusterId,
    clusterInstanceId: source.clusterInstanceId,
    networkPartitionId: source.networkPartitionId,
    partitionId: source.partitionId,
    memberId: source.memberId,
  };
}

/** A TCP endpoint: an SP node's Thrift port, a workload. */
export interface Endpoint {
  host: string;
  port: number;
}

/**
 * Client ids that other services name on the wire: publishers wait until
 * these subscribers are present on a broker before they send through it.
 */
export const CLIENT_IDS = {
  autoscaler: 'autoscaler',
} as const;
