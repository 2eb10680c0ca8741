import {
  type Clock,
  ConfigError,
  type ConfigIssue,
  DEFAULTS,
  type Logger,
  nullLogger,
  systemClock,
  withDefaults,
} from '@faultline/core';

export interface CepEngineOptions {
  /** The `source` of every envelope: this SP node's id, e.g. `sp-1`. @default 'sp' */
  source?: string;
  /** No stat from a member for this long is a MemberFault (Stratos CEP). @default DEFAULTS.faultTimeoutMs (60 000) */
  faultTimeoutMs?: number;
  /** The summarized-stat window (Stratos CEP, 1 min). @default DEFAULTS.windowMs (60 000) */
  windowMs?: number;
  /**
   * How often the summaries are computed and emitted, on ticks aligned to
   * multiples of this on the wall clock, so both SP nodes compute the same
   * ticks (and so the same ids). @default DEFAULTS.statIntervalMs (15 000)
   */
  summaryIntervalMs?: number;
  /**
   * After a takeover that cannot tell how long the members went unheard, no
   * member is faulted before it had this long to report to the new active;
   * it also caps the time given back when the gap is known, per activation
   * and in all since a member's last stat, so a silent member is faulted
   * within faultTimeoutMs + this however the lease flaps (README, "CEP
   * monitor"). @default faultTimeoutMs
   */
  graceAfterTakeoverMs?: number;
  /**
   * How long a passive waits, from a summary tick, for the active's first
   * confirmation of that tick before it computes the tick itself. A tick the
   * active has published is not computed again on the passive (its windows
   * are only pruned); one still unconfirmed after this is computed and held,
   * as a takeover needs it. Both nodes computing every tick at the same
   * instant took both cores for seconds at 100 000 members and stalled the
   * active's event loop. 0 computes at once. At most half of summaryIntervalMs.
   * @default a third of summaryIntervalMs (5 000 ms)
   */
  passiveTickWaitMs?: number;
  /**
   * Bound of the unconfirmed outputs a passive keeps; beyond it the oldest
   * summary (then the oldest fault) is dropped and counted. @default 10_000
   */
  maxPendingOutputs?: number;
  /**
   * While active, every summary tick re-announces the MemberFault of each
   * faulted, not forgotten member under its first id, so a fault lost on any
   * hop is delivered later; at most this many per tick, least recently
   * announced first (a rotation: with more faulted members, each is repeated
   * every ⌈faulted / this⌉ ticks). 0 turns re-announcing off. @default 1_000
   */
  maxFaultReannouncesPerTick?: number;
  /** Samples kept per member and metric; a flooding agent loses its oldest ones. @default 1_000 */
  maxSamplesPerSeries?: number;
  /**
   * The envelope size limit in force (`messaging.maxMessageBytes`): member
   * summaries are cut into parts whose envelopes stay within it.
   * @default DEFAULTS.maxMessageBytes (64 KiB)
   */
  maxMessageBytes?: number;
  /**
   * Told of each fault this node declares while active, as it declares it (a
   * metric's source: the SP's detection overshoot histogram). `overshootMs`:
   * how long after its deadline a silent member was declared (the fault
   * timeout from its last stat, plus what a takeover's grace or a stall gave
   * back: not lateness); undefined for a ports_not_open fault. @default nothing
   */
  onFaultDeclared?: (fault: FaultDeclared) => void;
  /** @default systemClock */
  clock?: Clock;
  /** @default nullLogger */
  logger?: Logger;
}

export interface FaultDeclared {
  memberId: string;
  reason: 'timeout' | 'ports_not_open';
  silentForMs: number;
  overshootMs: number | undefined;
}

export type ResolvedCepEngineOptions = Required<CepEngineOptions>;

function positiveInt(issues: ConfigIssue[], key: string, value: number, min = 1): void {
  if (!Number.isSafeInteger(value) || value < min) {
    issues.push({ key: `cep.${key}`, reason: `must be an integer ≥ ${min}, got ${String(value)}` });
  }
}

/**
 * Resolves every default once and fails fast with one ConfigError naming
 * every bad option, rather than a detector that never fires.
 */
export function resolveCepEngineOptions(input: CepEngineOptions = {}): ResolvedCepEngineOptions {
  const fixed = withDefaults(
    {
      source: 'sp',
      faultTimeoutMs: DEFAULTS.faultTimeoutMs as number,
      windowMs: DEFAULTS.windowMs as number,
      summaryIntervalMs: DEFAULTS.statIntervalMs as number,
      maxPendingOutputs: 10_000,
      maxFaultReannouncesPerTick: 1_000,
      maxSamplesPerSeries: 1_000,
      maxMessageBytes: DEFAULTS.maxMessageBytes as number,
      onFaultDeclared: () => {},
      clock: systemClock,
      logger: nullLogger,
    },
    input,
  );
  // The grace defaults to the fault timeout as resolved, the passive's wait to a third of the interval.
  const options: ResolvedCepEngineOptions = withDefaults(
    {
      graceAfterTakeoverMs: fixed.faultTimeoutMs,
      passiveTickWaitMs: Math.floor((fixed.summaryIntervalMs as number) / 3),
    },
    fixed,
  );
  const issues: ConfigIssue[] = [];
  if (typeof options.source !== 'string' || options.source.length === 0 || options.source.length > 256) {
    issues.push({ key: 'cep.source', reason: 'must be a non-empty string of at most 256 characters' });
  }
  positiveInt(issues, 'faultTimeoutMs', options.faultTimeoutMs);
  positiveInt(issues, 'windowMs', options.windowMs);
  positiveInt(issues, 'summaryIntervalMs', options.summaryIntervalMs);
  positiveInt(issues, 'graceAfterTakeoverMs', options.graceAfterTakeoverMs, 0);
  positiveInt(issues, 'passiveTickWaitMs', options.passiveTickWaitMs, 0);
  // Unconfirmed, the passive still makes the tick before the next one: at most half the interval.
  if (options.passiveTickWaitMs > options.summaryIntervalMs / 2) {
    issues.push({
      key: 'cep.passiveTickWaitMs',
      reason: `must be at most half of summaryIntervalMs (${options.summaryIntervalMs}), got ${options.passiveTickWaitMs}`,
    });
  }
  positiveInt(issues, 'maxPendingOutputs', options.maxPendingOutputs);
  positiveInt(issues, 'maxFaultReannouncesPerTick', options.maxFaultReannouncesPerTick, 0);
  // Three samples are the least a second derivative needs.
  positiveInt(issues, 'maxSamplesPerSeries', options.maxSamplesPerSeries, 3);
  positiveInt(issues, 'maxMessageBytes', options.maxMessageBytes);
  if (issues.length > 0) {
    throw new ConfigError(
      'FL_ERR_CONFIG_INVALID',
      `invalid CEP options: ${issues.map((i) => `${i.key} ${i.reason}`).join('; ')}`,
      { issues },
    );
  }
  return options;
}
