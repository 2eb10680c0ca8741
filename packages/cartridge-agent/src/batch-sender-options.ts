import { type Clock, ConfigError, DEFAULTS, type Logger, nullLogger, systemClock, withDefaults } from '@faultline/core';
import type { Endpoint } from '@faultline/protocol';
import type { BatchTransport } from './batch-sender.js';

export interface BatchSenderOptions {
  /** Unique per agent life, so the SP's (agentId, sequence) dedupe never mistakes a restarted agent's batch 1 for a resend. */
  agentId: string;
  /** The member's credential (issued at spawn), sent with every batch. */
  credential: string;
  /** The SP nodes' Thrift endpoints, tried in order. */
  endpoints: readonly Endpoint[];
  transport: BatchTransport;
  /** Unacknowledged batches kept for resending; beyond it the oldest is dropped and counted. @default DEFAULTS.maxUnackedBatches (1 000) */
  maxUnackedBatches?: number;
  /** A publish not answered by then counts as failed. @default 5_000 */
  callTimeoutMs?: number;
  /** Pause after every endpoint failed once in a row, doubling… @default 1_000 */
  retryDelayMs?: number;
  /** …up to this. @default 10_000 */
  maxRetryDelayMs?: number;
  /** @default systemClock */
  clock?: Clock;
  /** @default nullLogger */
  logger?: Logger;
}

export type ResolvedBatchSenderOptions = Required<BatchSenderOptions>;

/** The Thrift publish deadline, also the agent's default (README "The cartridge agent"). */
export const CALL_TIMEOUT_MS = 5_000;

/** The sender's options with every default filled in; a ConfigError when there is no endpoint. */
export function resolveBatchSenderOptions(input: BatchSenderOptions): ResolvedBatchSenderOptions {
  const options = withDefaults(
    {
      maxUnackedBatches: DEFAULTS.maxUnackedBatches as number,
      callTimeoutMs: CALL_TIMEOUT_MS,
      retryDelayMs: 1_000,
      maxRetryDelayMs: 10_000,
      clock: systemClock,
      logger: nullLogger,
    },
    input,
  );
  if (options.endpoints.length === 0) {
    throw ConfigError.forKey('endpoints', 'the batch sender needs at least one SP endpoint');
  }
  return options;
}
