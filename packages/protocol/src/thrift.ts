import { createRequire } from 'node:module';
import type * as ThriftRuntime from 'thrift';

/*
 * Typed access to the code Apache Thrift 0.17 generated from
 * infra/thrift/health.thrift (`--gen js:node,ts,es6`, CommonJS in ../generated).
 * The generator's own .d.ts files declare their classes without exporting
 * them, so the shapes the rest of the project relies on are written here once.
 */
const require = createRequire(import.meta.url);

export const thrift = require('thrift') as typeof ThriftRuntime;

/**
 * Most elements a list, set or map may announce on the wire (a batch's stats:
 * BATCH_LIMITS.maxStats). Unbounded, a reader would build as many objects
 * as a frame has bytes (a 1 MiB frame of empty structs: a million), before
 * any validation could refuse the batch; wire-codec.ts refuses the frame.
 */
export const MAX_CONTAINER_ELEMENTS = 10_000;

/** An i64 as thrift's runtime reads it (node-int64), or a number we write. */
export interface Int64Like {
  toNumber(allowImprecise?: boolean): number;
  buffer: Buffer;
}

export interface HealthStatWire {
  clusterId: string;
  clusterInstanceId: string;
  networkPartitionId: string;
  partitionId: string;
  memberId: string;
  healthDescription: string;
  value: number;
  timestamp: number | Int64Like;
}

export interface HealthStatBatchWire {
  agentId: string;
  sequence: number | Int64Like;
  stats: HealthStatWire[];
  /** Optional on the wire (field 4): null when absent. */
  credential?: string | null;
}

export interface BatchAckWire {
  agentId: string;
  sequence: number | Int64Like;
  duplicate: boolean;
  epoch: number | Int64Like;
  replicated: boolean;
}

interface ThriftStruct {
  read(input: ThriftRuntime.TProtocol): void;
  write(output: ThriftRuntime.TProtocol): void;
}

type StructClass<T> = new (args?: Partial<T>) => T & ThriftStruct;

interface GeneratedTypes {
  HealthStat: StructClass<HealthStatWire>;
  HealthStatBatch: StructClass<HealthStatBatchWire>;
  BatchAck: StructClass<BatchAckWire>;
  NotActive: new (args?: { message: string; nodeId?: string }) => Error & { message: string; nodeId?: string };
  InvalidBatch: new (args?: { message: string }) => Error & { message: string };
}

/** The promise client the generator makes. */
export interface HealthStatServiceClient {
  publish(batch: HealthStatBatchWire): Promise<BatchAckWire>;
}

interface GeneratedService {
  Client: new (...args: unknown[]) => HealthStatServiceClient;
}

export const generated = require('../generated/health_types.js') as GeneratedTypes;
export const HealthStatService = require('../generated/HealthStatService.js') as GeneratedService;
