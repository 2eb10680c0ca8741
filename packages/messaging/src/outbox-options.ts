import { type Logger, nullLogger, withDefaults } from '@faultline/core';

export interface OutboxOptions {
  /** The log file; its folder is created. */
  file: string;
  /** Rewrite the file once this many acks accumulated (and outnumber what is pending). @default 10_000 */
  compactAfterAcks?: number;
  /** @default nullLogger */
  logger?: Logger;
}

export type ResolvedOutboxOptions = Required<OutboxOptions>;

export function resolveOutboxOptions(input: OutboxOptions): ResolvedOutboxOptions {
  return withDefaults({ compactAfterAcks: 10_000, logger: nullLogger }, input);
}
