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
 * BATCH_LIMITS.maxStats). The runtime would otherwise build as many objects
 * as a frame has bytes (a 1 MiB frame of empty structs: a million), before
 * any validation could refuse the batch.
 */
export const MAX_CONTAINER_ELEMENTS = 10_000;

type Protocol = ThriftRuntime.TBinaryProtocol;
const Thrift = (thrift as unknown as { Thrift: { TProtocolException: new (type: number, message: string) => Error } })
  .Thrift;
const SIZE_LIMIT = 3;
const NEGATIVE_SIZE = 2;

function checkSize<T extends { size: number }>(container: T): T {
  if (container.size < 0) throw new Thrift.TProtocolException(NEGATIVE_SIZE, 'negative container size');
  if (container.size > MAX_CONTAINER_ELEMENTS) {
    throw new Thrift.TProtocolException(
      SIZE_LIMIT,
      `container of ${container.size} elements (at most ${MAX_CONTAINER_ELEMENTS})`,
    );
  }
  return container;
}

/**
 * The binary protocol with container sizes bounded by MAX_CONTAINER_ELEMENTS:
 * the SP's server and its decoders read with it. Reading a larger one throws,
 * which ends that connection (counted as a bad frame).
 */
export class BoundedBinaryProtocol extends (thrift.TBinaryProtocol as unknown as new (...args: unknown[]) => Protocol) {
  override readListBegin() {
    return checkSize(super.readListBegin());
  }
  override readSetBegin() {
    return checkSize(super.readSetBegin());
  }
  override readMapBegin() {
    return checkSize(super.readMapBegin());
  }
}

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

/** What a server-side handler of HealthStatService implements (es6: async). */
export interface HealthStatServiceHandler {
  /**
   * `call` is the raw framed request this batch came in (server side only):
   * the SP forwards those bytes to its passive instead of re-encoding.
   * `peer` is the remote address of the connection it came on (server side
   * only): the SP rate-limits its log of refusals per peer.
   */
  publish(batch: HealthStatBatchWire, call?: Buffer, peer?: string): Promise<BatchAckWire>;
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
