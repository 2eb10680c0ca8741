import { ERROR_CODES, type ErrorCode, FaultlineError, type FaultlineErrorOptions } from '@faultline/core';

/*
 * The CLI's failures. `main.ts` prints each as one line (`faultline: <message>`)
 * and exits 1 (2 for a UsageError or a ServiceFailedError); the code is for callers and for the control endpoint, which
 * hands a failed action's code back to the CLI with its message.
 */

/** A command, chaos action or argument the CLI does not accept. */
export class UsageError extends FaultlineError {
  constructor(message: string) {
    super('FL_ERR_USAGE', message);
  }
}

/**
 * A call to the running stack's supervisor failed: no stack, no answer, or
 * the supervisor's own failure (its code when it sent one).
 */
export class ControlError extends FaultlineError {
  constructor(code: ErrorCode, message: string, options: FaultlineErrorOptions = {}) {
    super(code, message, options);
  }
}

/** `stack up` while another stack's supervisor is alive in the same folder (its lock names it). */
export class StackRunningError extends FaultlineError {
  /** `pid` undefined: another supervisor is taking the lock this very moment. */
  constructor(pid: number | undefined, lockFile: string) {
    super(
      'FL_ERR_STACK_RUNNING',
      pid === undefined
        ? `a stack is starting in this folder (${lockFile} is being written); stop it with: faultline stack down`
        : `a stack is already running (supervisor pid ${pid}, ${lockFile}); stop it with: faultline stack down`,
      { context: { pid, lockFile } },
    );
  }
}

/** A platform service that exited before it was ready, or was not ready in time. */
export class ServiceNotReadyError extends FaultlineError {
  constructor(service: string, reason: string) {
    super('FL_ERR_SERVICE_NOT_READY', `${service} ${reason}`, { context: { service } });
  }
}

/**
 * A platform service exited with a fatal code (2: its configuration is
 * invalid, runMain's ConfigError). Restarting cannot help: the stack stops and
 * `stack up` exits 2 with this message, which names the service and its reason
 * (the last lines it wrote to stderr).
 */
export class ServiceFailedError extends FaultlineError {
  constructor(service: string, exitCode: number, reason: string) {
    super(
      'FL_ERR_SERVICE_FAILED',
      `${service} exited with code ${exitCode} (configuration error)${reason ? `: ${reason}` : ''}; the stack stopped`,
      { context: { service, exitCode, reason } },
    );
  }
}

/**
 * A PostgreSQL runs on the stack's data folder that is neither a leftover of
 * this folder's stack nor an orphan: a live process, another supervisor,
 * runs it. Stopping it would pull the database from under someone else's stack.
 */
export class PostgresInUseError extends FaultlineError {
  constructor(pid: number, parent: number, dataDir: string) {
    super(
      'FL_ERR_POSTGRES_IN_USE',
      `a PostgreSQL (pid ${pid}) that another live process (pid ${parent}) runs serves ${dataDir}; ` +
        'stop that one (or give this stack another database.embeddedDataDir) and start again',
      { context: { pid, parent, dataDir } },
    );
  }
}

/** A chaos command with nothing to act on (no such running member, broker, SP node). */
export class ChaosTargetError extends FaultlineError {
  constructor(message: string) {
    super('FL_ERR_CHAOS_NO_TARGET', message);
  }
}

/** `faultline logs` with no logs folder, or no file for the service asked for. */
export class LogsNotFoundError extends FaultlineError {
  constructor(message: string) {
    super('FL_ERR_LOGS_NOT_FOUND', message);
  }
}

/** Whether `value` is a code of the error table (a code read off the wire). */
export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}
