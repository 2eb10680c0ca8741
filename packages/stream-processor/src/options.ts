import type { LeaseStore } from '@faultline/coordination';
import {
  type Clock,
  ConfigError,
  DEFAULTS,
  type Logger,
  MIN_SECRET_LENGTH,
  nullLogger,
  systemClock,
  withDefaults,
} from '@faultline/core';
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
  /** The platform's member key (`security.memberKeyFile`): every batch's credential must verify under it. */
  memberKey: Buffer;
  /** A stat stamped further than this from the node's clock, either way, is refused. @default DEFAULTS.statTimestampWindowMs (10 min) */
  statTimestampWindowMs?: number;
  /** Open Thrift connections at most. @default DEFAULTS.thriftMaxConnections (10 000) */
  thriftMaxConnections?: number;
  /** Open Thrift connections from one remote address at most. @default DEFAULTS.thriftMaxConnectionsPerPeer (1 000) */
  thriftMaxConnectionsPerPeer?: number;
  /** A Thrift connection that sends nothing for this long is closed. @default DEFAULTS.thriftIdleTimeoutMs (2 min) */
  thriftIdleTimeoutMs?: number;
  /** The Thrift port's certificate and key (PEM, `tls.thrift`): it speaks TLS only. @default undefined (plain TCP) */
  thriftTls?: { cert: Buffer | string; key: Buffer | string };
  /** The passive must acknowledge a batch within this. @default heartbeatIntervalMs */
  syncAckTimeoutMs?: number;
  /** The pair's shared secret (`security.syncKeyFile`): both ends of the sync link prove they hold it. */
  syncKey: Buffer;
  /** A sync connection must be authenticated and linked within this. @default 5 000 */
  syncHandshakeTimeoutMs?: number;
  /** Sync connections waiting for their handshake at most; one more closes the oldest. @default 4 */
  syncMaxPendingConnections?: number;
  /** @default a new StatLedger */
  engine?: QueryEngine;
  /** Where the engine's outputs go while this node is active (the durable publisher); none: they are withheld. */
  sink?: OutputSink;
  /** @default systemClock */
  clock?: Clock;
  /** @default nullLogger */
  logger?: Logger;
}

export type ResolvedSpNodeOptions = Required<Omit<SpNodeOptions, 'sink' | 'thriftTls'>> &
  Pick<SpNodeOptions, 'sink' | 'thriftTls'>;

export function resolveSpNodeOptions(input: SpNodeOptions): ResolvedSpNodeOptions {
  if (input.syncKey.length < MIN_SECRET_LENGTH)
    throw ConfigError.forKey('security.syncKeyFile', `the sync key must hold at least ${MIN_SECRET_LENGTH} bytes`);
  if (input.memberKey.length < MIN_SECRET_LENGTH)
    throw ConfigError.forKey('security.memberKeyFile', `the member key must hold at least ${MIN_SECRET_LENGTH} bytes`);
  const fixed = withDefaults(
    {
      groupId: 'sp',
      heartbeatIntervalMs: DEFAULTS.heartbeatIntervalMs as number,
      heartbeatMaxRetry: DEFAULTS.heartbeatMaxRetry as number,
      fencingMarginMs: DEFAULTS.fencingMarginMs as number,
      maxFrameBytes: DEFAULTS.maxFrameBytes as number,
      statTimestampWindowMs: DEFAULTS.statTimestampWindowMs as number,
      thriftMaxConnections: DEFAULTS.thriftMaxConnections as number,
      thriftMaxConnectionsPerPeer: DEFAULTS.thriftMaxConnectionsPerPeer as number,
      thriftIdleTimeoutMs: DEFAULTS.thriftIdleTimeoutMs as number,
      syncHandshakeTimeoutMs: 5_000,
      syncMaxPendingConnections: 4,
      clock: systemClock,
      logger: nullLogger,
    },
    input,
  );
  // The ack timeout defaults to the interval as resolved; an unused default ledger is an empty Map.
  return withDefaults({ syncAckTimeoutMs: fixed.heartbeatIntervalMs, engine: new StatLedger() as QueryEngine }, fixed);
}
