import { EVENT_KEY_PATTERN, type EventFields, type LogFields, type Logger, type LogLevel } from '../logger.js';

export interface LogRecord {
  level: LogLevel;
  /** The record's stable name; what tests match on. */
  event: string;
  message: string;
  fields: Record<string, unknown>;
}

/**
 * A logger that keeps records in memory: for tests that assert on log
 * records (by `event`). A record whose `event` does not follow
 * EVENT_KEY_PATTERN throws, so a malformed name fails the test that logs it.
 */
export function createMemoryLogger(): Logger & { records: LogRecord[]; events(): string[] } {
  const records: LogRecord[] = [];
  const make = (base: LogFields): Logger => {
    const at =
      (level: LogLevel) =>
      (message: string, fields: EventFields): void => {
        if (!EVENT_KEY_PATTERN.test(fields.event)) throw new TypeError(`malformed log event key ${fields.event}`);
        records.push({ level, event: fields.event, message, fields: { ...base, ...fields } });
      };
    return {
      error: at('error'),
      warn: at('warn'),
      info: at('info'),
      debug: at('debug'),
      child: (fields) => make({ ...base, ...fields }),
    };
  };
  return Object.assign(make({}), { records, events: () => records.map((record) => record.event) });
}
