import { type Clock, ConfigError, DEFAULTS, type Logger, nullLogger, systemClock, withDefaults } from '@faultline/core';
import { nodeFileSystem, type OutboxFileSystem } from './outbox-file.js';

/** The stream a record supersedes (undefined or '': none, it is never coalesced nor dropped). */
export type StreamOf = (topic: string, payload: Buffer) => string | undefined;

export interface OutboxOptions {
  /** The log file; its folder is created. */
  file: string;
  /** Rewrite the file once this many records left it (acked, superseded, dropped) and they outnumber what is pending. @default 10_000 */
  compactAfterAcks?: number;
  /**
   * Records of a stream (summaries) are held up to this many bytes: past it,
   * the oldest of them are dropped, and one is refused when only precious
   * records (without a stream) are left. @default DEFAULTS.outboxMaxBytes (64 MiB)
   */
  maxBytes?: number;
  /** Precious records (MemberFaults, actions) are refused past this many bytes held. @default 2 × maxBytes */
  hardMaxBytes?: number;
  /**
   * A longer record is refused by append() and skipped at recovery; at most
   * maxBytes. @default 2 × DEFAULTS.maxMessageBytes + 64 KiB, or maxBytes if smaller
   */
  maxRecordBytes?: number;
  /** Start-up reads the file this many bytes at a time. @default 1 MiB */
  readChunkBytes?: number;
  /**
   * A failed compaction is tried again this long after, at the next write;
   * removal records whose write failed are written again this long after. @default 30_000
   */
  compactionRetryMs?: number;
  /**
   * The stream of a record written without one (by an older version): lets
   * start-up coalesce an old outbox. @default none: such records are precious
   */
  streamOf?: StreamOf;
  /** @default node's fs/promises */
  fs?: OutboxFileSystem;
  /** @default systemClock */
  clock?: Clock;
  /** @default nullLogger */
  logger?: Logger;
}

export type ResolvedOutboxOptions = Required<Omit<OutboxOptions, 'streamOf'>> & Pick<OutboxOptions, 'streamOf'>;

export function resolveOutboxOptions(input: OutboxOptions): ResolvedOutboxOptions {
  const maxBytes = input.maxBytes ?? (DEFAULTS.outboxMaxBytes as number);
  const options = withDefaults(
    {
      compactAfterAcks: 10_000,
      maxBytes,
      hardMaxBytes: 2 * maxBytes,
      maxRecordBytes: Math.min(2 * DEFAULTS.maxMessageBytes + 64 * 1024, maxBytes),
      readChunkBytes: 1024 * 1024,
      compactionRetryMs: 30_000,
      fs: nodeFileSystem,
      clock: systemClock,
      logger: nullLogger,
    },
    input,
  );
  for (const key of ['compactAfterAcks', 'maxBytes', 'hardMaxBytes', 'maxRecordBytes', 'readChunkBytes'] as const) {
    if (!Number.isSafeInteger(options[key]) || options[key] <= 0)
      throw ConfigError.forKey(key, 'must be a positive integer');
  }
  if (!Number.isSafeInteger(options.compactionRetryMs) || options.compactionRetryMs < 0)
    throw ConfigError.forKey('compactionRetryMs', 'must be a non-negative integer');
  if (options.hardMaxBytes < options.maxBytes) throw ConfigError.forKey('hardMaxBytes', 'must be at least maxBytes');
  // A summary that large could never be held: every append of one would be refused.
  if (options.maxRecordBytes > options.maxBytes) throw ConfigError.forKey('maxRecordBytes', 'must be at most maxBytes');
  return options;
}
