import type { LeaseStore } from '@faultline/coordination';
import { type Clock, DEFAULTS, type Logger, nullLogger, systemClock, withDefaults } from '@faultline/core';
import type { Endpoint } from '@faultline/protocol';
import type { OutputSink, QueryEngine } from './query-engine.js';
import { StatLedger } from './stat-ledger.js';

/**
 * The options of an SP node, the package's one configurable component: the
 * Thrift source, the sync link and server and the lease it builds get their
 * settings from here.
 */
export interface SpNodeOptions {
  nodeId: string;
  /** The lease group both nodes of the pair share. @default 'sp' */
  groupId?: string;
  store: LeaseStore;
  /** Where the Thrift source listens while active; port 0 picks a free port (tests). */
  thrift: Endpoint;
  /** Where the sync server listens; port 0 picks a free port (tests). */
  sync: Endpoint;
  /** @default DEFAULTS.heartbeatIntervalMs (1 000, WSO2 SP) */
  heartbeatIntervalMs?: number;
  /** @default DEFAULTS.heartbeatMaxRetry (2) */
  heartbeatMaxRetry?: number;
  /** @default DEFAULTS.fencingMarginMs (300) */
  fencingMarginMs?: number;
  /** Thrift and sync frame limit. @default DEFAULTS.maxFrameBytes (1 MiB) */
  maxFrameBytes?: number;
  /** The passive must acknowledge a batch within this. @default heartbeatIntervalMs */
  syncAckTimeoutMs?: number;
  /** @default a new StatLedger */
  engine?: QueryEngine;
  /** Where the engine's outputs go while this node is active (the durable publisher); none: they are withheld. */
  sink?: OutputSink;
  /** @default systemClock */
  clock?: Clock;
  /** @default nullLogger */
  logger?: Logger;
}

export type ResolvedSpNodeOptions = Required<Omit<SpNodeOptions, 'sink'>> & Pick<SpNodeOptions, 'sink'>;

export function resolveSpNodeOptions(input: SpNodeOptions): ResolvedSpNodeOptions {
  const fixed = withDefaults(
    {
      groupId: 'sp',
      heartbeatIntervalMs: DEFAULTS.heartbeatIntervalMs as number,
      heartbeatMaxRetry: DEFAULTS.heartbeatMaxRetry as number,
      fencingMarginMs: DEFAULTS.fencingMarginMs as number,
      maxFrameBytes: DEFAULTS.maxFrameBytes as number,
      clock: systemClock,
      logger: nullLogger,
    },
    input,
  );
  // The ack timeout defaults to the interval as resolved; an unused default ledger is an empty Map.
  return withDefaults({ syncAckTimeoutMs: fixed.heartbeatIntervalMs, engine: new StatLedger() as QueryEngine }, fixed);
}
