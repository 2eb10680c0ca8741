import { chmodSync, existsSync } from 'node:fs';
import path from 'node:path';
import winston from 'winston';
import type { Clock } from './clock.js';
import { DEFAULTS } from './defaults.js';
import { withDefaults } from './lifecycle.js';
import { RotatingFile } from './rotating-file.js';
import { mkdirPrivate } from './secrets.js';

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export type LogFields = Readonly<Record<string, unknown>>;

/**
 * The fields of one record. `event` is the record's stable name
 * (`<area>.<what>`, lower case: `lease.acquired`, `autoscaler.action`):
 * operators, tools and tests match on it, never on the message, whose
 * wording is free to change (docs/architecture.md, "Conventions").
 */
export type EventFields = LogFields & { readonly event: string };

/** `lease.acquired`, `cep.member_fault`: dotted lower-case words. */
export const EVENT_KEY_PATTERN = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$/;

/**
 * The narrow logging surface every package depends on. Only core and the
 * `main.ts` files know that winston is behind it.
 */
export interface Logger {
  error(message: string, fields: EventFields): void;
  warn(message: string, fields: EventFields): void;
  info(message: string, fields: EventFields): void;
  debug(message: string, fields: EventFields): void;
  /** A logger that adds `fields` to every record (e.g. `{ component: 'publisher' }`). */
  child(fields: LogFields): Logger;
}

export interface LoggerOptions {
  /** Service name: the console prefix and the JSON file name (`<dir>/<service>.jsonl`). */
  service: string;
  /** @default 'info' */
  level?: LogLevel;
  /** Folder for the JSON-lines file (mode 0600; the folder 0700 when created here). @default undefined (no file) */
  dir?: string;
  /**
   * The file is rotated past this size: `<service>.jsonl` always holds the
   * newest records, `<service>.1.jsonl` the ones before, and so on.
   * @default DEFAULTS.logMaxFileBytes (50 MiB)
   */
  maxFileBytes?: number;
  /** Files kept, the current one included; the oldest is deleted. @default DEFAULTS.logMaxFiles (5) */
  maxFiles?: number;
  /**
   * Console output: `pretty` (colored, service-prefixed), `json` (one JSON object
   * a line, for a supervisor that re-reads it) or `none`.
   * @default 'pretty'
   */
  console?: 'pretty' | 'json' | 'none';
  /** Colors on the pretty console. @default colorsWanted(process.stdout): NO_COLOR, FORCE_COLOR, a terminal */
  colors?: boolean;
}

const SERVICE_COLORS = [36, 35, 33, 32, 34, 96, 95, 93, 92, 94];
const LEVEL_COLORS: Record<string, number> = { error: 31, warn: 33, info: 32, debug: 90 };

function paint(enabled: boolean, code: number, text: string): string {
  return enabled ? `\u001b[${code}m${text}\u001b[0m` : text;
}

function serviceColor(service: string): number {
  let hash = 0;
  for (const ch of service) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  return SERVICE_COLORS[hash % SERVICE_COLORS.length] ?? 36;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
const CONTROL_CHARS_ALL = /[\u0000-\u001f\u007f-\u009f]/g;
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
const CONTROL_CHARS_KEEPING_COLORS = /\u001b\[[0-9;]*m|[\u0000-\u001f\u007f-\u009f]/g;

const escapeOne = (ch: string): string => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`;

/**
 * `text` with every C0 control character, DEL and C1 control character
 * written out as `\u00XX`, so a string that came from a peer (a reason, an
 * error message, a client id) cannot move the cursor, retitle or clear the
 * terminal it is printed on. `keepColors` leaves SGR color sequences
 * (`ESC [ … m`) as they are: for lines whose colors a Faultline service
 * painted after escaping everything else (formatPretty).
 */
export function escapeControlChars(text: string, options: { keepColors?: boolean } = {}): string {
  if (options.keepColors) {
    return text.replace(CONTROL_CHARS_KEEPING_COLORS, (match) => (match.length > 1 ? match : escapeOne(match)));
  }
  return text.replace(CONTROL_CHARS_ALL, escapeOne);
}

function formatValue(value: unknown): string {
  if (typeof value === 'string')
    return /[\s="]/.test(value) || CONTROL_CHARS.test(value) ? JSON.stringify(value) : value;
  if (value instanceof Error) return JSON.stringify(value.message);
  return JSON.stringify(value) ?? String(value);
}

/**
 * `12:00:01.234 sp-1      info  became active epoch=3 peer=sp-2`. Every
 * part of the record is printed with its control characters escaped
 * (escapeControlChars): the only escape sequences in the line are the colors
 * painted here.
 */
export function formatPretty(
  record: { level: string; message: string; timestamp?: string; service: string } & Record<string, unknown>,
  colors: boolean,
): string {
  // `event` is for machines (the JSON file); the console shows the message.
  const { level, message, timestamp, service, event: _event, ...fields } = record;
  const safe = (text: string) => escapeControlChars(text);
  const time = safe((timestamp ?? new Date().toISOString()).slice(11, 23));
  const rest = Object.entries(fields)
    .filter(([key]) => typeof key === 'string')
    .map(([key, value]) => `${paint(colors, 90, `${safe(key)}=`)}${safe(formatValue(value))}`)
    .join(' ');
  const levelColor = Object.hasOwn(LEVEL_COLORS, level) ? (LEVEL_COLORS[level] as number) : 37;
  return [
    paint(colors, 90, time),
    paint(colors, serviceColor(service), safe(service).padEnd(12)),
    paint(colors, levelColor, safe(level).padEnd(5)),
    safe(message),
    rest,
  ]
    .filter((part) => part.length > 0)
    .join(' ');
}

function serializeErrors(fields: LogFields | undefined): Record<string, unknown> {
  if (!fields) return {};
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields)) {
    out[key] =
      value instanceof Error
        ? { message: value.message, name: value.name, code: (value as { code?: unknown }).code }
        : value;
  }
  return out;
}

class WinstonLogger implements Logger {
  constructor(
    private readonly inner: winston.Logger,
    private readonly fields: LogFields,
  ) {}
  private log(level: LogLevel, message: string, fields: EventFields): void {
    this.inner.log(level, message, { ...this.fields, ...serializeErrors(fields) });
  }
  error(message: string, fields: EventFields): void {
    this.log('error', message, fields);
  }
  warn(message: string, fields: EventFields): void {
    this.log('warn', message, fields);
  }
  info(message: string, fields: EventFields): void {
    this.log('info', message, fields);
  }
  debug(message: string, fields: EventFields): void {
    this.log('debug', message, fields);
  }
  child(fields: LogFields): Logger {
    return new WinstonLogger(this.inner, { ...this.fields, ...fields });
  }
}

/**
 * Whether to paint what goes to `stream`: never with `NO_COLOR` set (no-color.org),
 * then as `FORCE_COLOR` says (`0` or `false`: off; anything else: on), else
 * only on a terminal.
 */
export function colorsWanted(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  if (env.FORCE_COLOR !== undefined) return env.FORCE_COLOR !== '0' && env.FORCE_COLOR !== 'false';
  return Boolean(stream.isTTY);
}

/** Builds the process's logger. Call it from `main.ts` only. */
export function createLogger(options: LoggerOptions): Logger & { flush(): Promise<void> } {
  const level = options.level ?? 'info';
  const consoleMode = options.console ?? 'pretty';
  const colors = options.colors ?? colorsWanted(process.stdout);
  const transports: winston.transport[] = [];
  if (consoleMode !== 'none') {
    const format =
      consoleMode === 'json'
        ? winston.format.json()
        : winston.format.printf((info) => formatPretty(info as Parameters<typeof formatPretty>[0], colors));
    transports.push(new winston.transports.Console({ format }));
  }
  if (options.dir) {
    const filename = path.join(options.dir, `${options.service}.jsonl`);
    // Logs name members, peers and paths: only the platform's user reads them.
    // A folder created here is 0700; the file is created 0600, and one left
    // by an older run under the umask is made so.
    mkdirPrivate(options.dir);
    if (existsSync(filename)) chmodSync(filename, 0o600);
    transports.push(
      new RotatingFile(
        filename,
        options.maxFileBytes ?? DEFAULTS.logMaxFileBytes,
        options.maxFiles ?? DEFAULTS.logMaxFiles,
        {
          format: winston.format.json(),
        },
      ),
    );
  }
  const inner = winston.createLogger({
    level,
    levels: { error: 0, warn: 1, info: 2, debug: 3 },
    format: winston.format.combine(winston.format.timestamp()),
    defaultMeta: { service: options.service },
    transports,
  });
  const logger = new WinstonLogger(inner, {});
  return Object.assign(logger, {
    flush: () =>
      new Promise<void>((resolve) => {
        inner.on('finish', () => resolve());
        inner.end();
      }),
  });
}

/** A logger that drops everything. */
export const nullLogger: Logger = {
  error: () => {},
  warn: () => {},
  info: () => {},
  debug: () => {},
  child: () => nullLogger,
};

export interface RateLimitedLogOptions {
  /** At most one record per peer and reason this often. @default DEFAULTS.badInputLogIntervalMs (10 000) */
  intervalMs?: number;
  /** (peer, reason) pairs remembered at once; beyond it the least recently logged is forgotten. @default 1 024 */
  maxKeys?: number;
}

/** Longest string field of a paced record, in UTF-16 units: a reason or a peer's string is cut to it. */
export const MAX_LOGGED_FIELD_CHARS = 1_024;

/** `text` cut to MAX_LOGGED_FIELD_CHARS: a peer's string never makes a record longer than that. */
export const boundLoggedText = (text: string): string =>
  text.length > MAX_LOGGED_FIELD_CHARS ? `${text.slice(0, MAX_LOGGED_FIELD_CHARS - 1)}…` : text;
const capText = boundLoggedText;

/**
 * Log records about a peer's bad input (a refused request, a bad frame), paced
 * so a hostile peer cannot flood the log: at most one warning per
 * `intervalMs` per (peer, reason); the next one written carries `suppressed`,
 * how many were left out since the one before. String fields are cut to
 * MAX_LOGGED_FIELD_CHARS; memory is bounded by `maxKeys`.
 */
export class RateLimitedLog {
  /** Per key: monotonic ms when the next record may be written, and the records left out meanwhile. */
  private readonly windows = new Map<string, { until: number; suppressed: number }>();
  private readonly intervalMs: number;
  private readonly maxKeys: number;

  constructor(
    private readonly logger: Logger,
    private readonly clock: Clock,
    options: RateLimitedLogOptions = {},
  ) {
    ({ intervalMs: this.intervalMs, maxKeys: this.maxKeys } = withDefaults(
      { intervalMs: DEFAULTS.badInputLogIntervalMs as number, maxKeys: 1_024 },
      options,
    ));
  }

  warn(peer: string | undefined, reason: string, message: string, fields: EventFields): void {
    const key = `${peer ?? '-'}\u0000${reason}`;
    const now = this.clock.monotonicNow();
    const window = this.windows.get(key);
    if (window && now < window.until) {
      window.suppressed += 1;
      return;
    }
    // Re-inserted, so the map's order is least recently logged first.
    this.windows.delete(key);
    this.windows.set(key, { until: now + this.intervalMs, suppressed: 0 });
    if (this.windows.size > this.maxKeys) {
      const oldest = this.windows.keys().next().value;
      if (oldest !== undefined) this.windows.delete(oldest);
    }
    const capped: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(fields))
      capped[name] = typeof value === 'string' ? capText(value) : value;
    // The key's reason is the record's `reason` unless the fields name one of their own.
    this.logger.warn(capText(message), {
      reason: capText(reason),
      ...(capped as EventFields),
      peer: peer === undefined ? undefined : capText(peer),
      suppressed: window?.suppressed ?? 0,
    });
  }
}
