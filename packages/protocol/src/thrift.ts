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

/** What a server-side handler of HealthStatService implements (es6: async). */
export interface HealthStatServiceHandler {
  /**
   * `call` is the raw framed request this batch came in (server side only):
   * the SP forwards those bytes to its passive instead of re-encoding.
   */
  publish(batch: HealthStatBatchWire, call?: Buffer): Promise<BatchAckWire>;
}

/** The promise client the generator makes. */
export interface HealthStatServiceClient {
  publish(batch: HealthStatBatchWire): Promise<BatchAckWire>;
}

interface GeneratedService {
  Client: new (...args: unknown[]) => HealthStatServiceClient;
  Processor: new (handler: HealthStatServiceHandler) => unknown;
}

export const generated = require('../generated/health_types.js') as GeneratedTypes;
export const HealthStatService = require('../generated/HealthStatService.js') as GeneratedService;
