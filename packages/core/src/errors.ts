/**
 * One table of every error code Faultline raises (fastify's lib/errors.js is
 * the model). Each code is stable: callers and operators match on `code`,
 * never on message text. The README's "Error codes" table is checked against
 * this object by errors.test.ts, so code and docs cannot drift apart.
 */
export const ERROR_CODES = {
  FL_ERR_CONFIG_NOT_FOUND: 'The configuration file does not exist or cannot be read.',
  FL_ERR_CONFIG_INVALID:
    'The configuration is not valid YAML, or a key fails validation; the message names each key and the reason.',
  FL_ERR_ENVELOPE_INVALID:
    'An MQTT payload is not a valid event envelope: not JSON, unknown type, or a missing or malformed field.',
  FL_ERR_ENVELOPE_TOO_LARGE: 'An MQTT payload is larger than the envelope size limit; it is dropped unread.',
  FL_ERR_BATCH_INVALID: 'A Thrift health-stat batch cannot be decoded or has missing fields or out-of-range values.',
  FL_ERR_MIGRATION_FAILED: 'A SQL migration failed and was rolled back; the database is left as it was.',
  FL_ERR_MIGRATION_CHANGED: 'A migration file was edited after it was applied (its checksum no longer matches).',
  FL_ERR_CLOSED: 'A component was used after close().',
  FL_ERR_SUBSCRIBE_REFUSED:
    'A broker refused a subscription (SUBACK 0x80): the credentials lack the ACL for that filter.',
  FL_ERR_CONNECTION_LOST: 'The connection to a broker ended before an operation (publish, subscribe) completed.',
  FL_ERR_ACCESS_REFUSED:
    'A broker refused a client: a CONNECT without valid credentials, or a PUBLISH its role may not make (the connection is closed).',
  FL_ERR_NOT_STARTED: 'A component was used before start() finished (a publish before the outbox is open).',
  FL_ERR_OUTBOX_WRITE_FAILED:
    "A publisher's outbox could not write or fsync a message whole (a full disk, an I/O error): publish() fails, the message is not durable, and the torn bytes are cut off the file.",
  FL_ERR_OUTBOX_FULL:
    "A publisher's outbox is at its bound (`messaging.outboxMaxBytes`): a summary is refused once only MemberFaults and actions are left to drop, anything else past twice the bound (also while that much waits on a stalled disk).",
  FL_ERR_ALREADY_STARTED: 'start() was called on a component that is already starting or running; start it once.',
  FL_ERR_MEMBER_SPEC_INVALID:
    'A member spec, or a member instance handed back for adoption, is malformed; the message names each field.',
  FL_ERR_MEMBER_EXISTS:
    'A member with this id is already known to the cloud controller; spawn refuses to start it twice.',
  FL_ERR_SPAWN_FAILED:
    "A member's processes could not be started or did not report ready in time; whatever had started was killed.",
  FL_ERR_MEMBER_ISOLATION:
    "The local driver runs as root but cannot run members as its member user: the user could not be looked up or created, is root, or cannot reach the Node binary, the member scripts or the members' folder; the message names what and how to fix it.",
  FL_ERR_RELOCATION_FAILED:
    "Run as root from a checkout (or a `.faultline` folder) the `postgres` and member users cannot pass through, `faultline stack up` (or `npm test`, for the runtime copy) could not set up the root-owned folder it moves what they need to (the runtime copy, the database's data, the members' folders): it could not be created or written, or is not root's alone; the message names the folder and what to do.",
  FL_ERR_PLATFORM_UNSUPPORTED:
    'The local cloud-controller driver needs Linux /proc (process start times, process groups); this platform has none.',
  FL_ERR_CALL_TIMEOUT: 'A remote call (a Thrift publish, a workload probe) got no answer within its deadline.',
  FL_ERR_REGISTRY_FAILED:
    "The autoscaler's member registry in PostgreSQL could not be read or written; a failed write is retried at the next monitor tick.",
  FL_ERR_USAGE:
    'A `faultline` command, chaos action or argument is unknown or missing; the message says what is accepted.',
  FL_ERR_STACK_RUNNING:
    '`faultline stack up` found a stack already running in this folder: its lock (`.faultline/run/supervisor.lock`) names a live supervisor, by pid and start time.',
  FL_ERR_STACK_NOT_RUNNING:
    'No stack answers: the control file under `.faultline/run` is missing, or the supervisor it names does not respond.',
  FL_ERR_STACK_STOP_TIMEOUT:
    '`faultline stack down` asked the supervisor to stop, and it was still running after the wait (2 minutes); `--no-wait` returns at once.',
  FL_ERR_CONTROL_FAILED:
    "The running stack's supervisor refused a control call or could not carry it out; the message is the supervisor's.",
  FL_ERR_SERVICE_NOT_READY:
    'A platform service the stack supervisor started exited before it was ready, or was not ready within its deadline.',
  FL_ERR_SERVICE_FAILED:
    'A platform service exited with code 2 (its configuration is invalid): the supervisor does not restart it but stops the stack, and `faultline stack up` exits 2 naming the service and its reason.',
  FL_ERR_POSTGRES_IN_USE:
    "`faultline stack up` found a PostgreSQL running on the embedded data folder that is neither this folder's leftover (its pid and start time are not in `.faultline/run/services.json`) nor an orphan (its parent is a live process, another supervisor): it is not stopped; the message names its pid and its parent's.",
  FL_ERR_CHAOS_NO_TARGET:
    'A chaos command found nothing to act on: no running member, agent, broker or SP node matches.',
  FL_ERR_LOGS_NOT_FOUND:
    '`faultline logs` found no log to show: the logs folder does not exist yet, or no file for that service.',
  FL_ERR_FENCED:
    'A node that does not hold its lease (deposed, paused past it, or never acquired) tried to write to the registry or act on the infrastructure; it was refused.',
  FL_ERR_STATE_INVALID:
    "A query engine's state from the peer SP node (the snapshot a passive imports) is malformed; the message names the first bad field, and nothing of it is applied.",
} as const satisfies Record<`FL_ERR_${string}`, string>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface FaultlineErrorOptions {
  /** Readable, structured facts about the failure (keys, ids, paths). */
  context?: Record<string, unknown>;
  cause?: unknown;
}

/** Base class of every Faultline error: a stable `code`, context fields, a cause. */
export class FaultlineError extends Error {
  readonly code: ErrorCode;
  readonly context: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, options: FaultlineErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.context = options.context ?? {};
  }
}

export interface ConfigIssue {
  /** Dotted path of the offending key, e.g. `cep.faultTimeoutMs`. */
  key: string;
  reason: string;
}

/** The configuration cannot be used. `main.ts` turns it into exit code 2. */
export class ConfigError extends FaultlineError {
  readonly issues: readonly ConfigIssue[];

  constructor(
    code: 'FL_ERR_CONFIG_NOT_FOUND' | 'FL_ERR_CONFIG_INVALID',
    message: string,
    options: FaultlineErrorOptions & { issues?: ConfigIssue[] } = {},
  ) {
    super(code, message, options);
    this.issues = options.issues ?? [];
  }

  /** One bad key: `<key>: <reason>`, the key in `issues` (a main exits 2 naming it). */
  static forKey(key: string, reason: string, context?: Record<string, unknown>): ConfigError {
    return new ConfigError('FL_ERR_CONFIG_INVALID', `${key}: ${reason}`, {
      issues: [{ key, reason }],
      ...(context ? { context } : {}),
    });
  }
}

export class MigrationError extends FaultlineError {}

export class ClosedError extends FaultlineError {
  constructor(component: string) {
    super('FL_ERR_CLOSED', `${component} is closed`, { context: { component } });
  }
}

/**
 * Run as root from a checkout the `postgres` and member users cannot reach,
 * the root-owned folder what they need is moved to could not be set up
 * (relocation.ts: the stack's, or the tests'): the message names the folder
 * and what to do.
 */
export class RelocationError extends FaultlineError {
  constructor(message: string, context: Record<string, unknown>, cause?: unknown) {
    super('FL_ERR_RELOCATION_FAILED', message, { context, cause });
  }
}

export function isFaultlineError(value: unknown): value is FaultlineError {
  return value instanceof FaultlineError;
}
