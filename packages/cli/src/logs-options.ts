import { type Clock, withDefaults } from '@faultline/core';

export interface LogsOptions {
  /** The logs folder (`logging.dir`): one `<service>.jsonl` file a service. */
  dir: string;
  /** Only this service (`sp-1`, `autoscaler`, `broker-a`, …). @default every service */
  service?: string | undefined;
  /** Keep printing new lines until `signal` aborts. */
  follow: boolean;
  /** Print the JSON lines as they are instead of the readable form. */
  json: boolean;
  colors: boolean;
  clock: Clock;
  write: (line: string) => void;
  /** Stops following (Ctrl-C). @default never */
  signal?: AbortSignal | undefined;
  /** How often following looks for new lines. @default 250 */
  pollIntervalMs?: number;
}

export type ResolvedLogsOptions = LogsOptions & Required<Pick<LogsOptions, 'pollIntervalMs'>>;

export function resolveLogsOptions(input: LogsOptions): ResolvedLogsOptions {
  return withDefaults({ pollIntervalMs: 250 }, input);
}
