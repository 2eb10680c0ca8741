import { ERROR_CODES, type ErrorCode, FaultlineError, type FaultlineErrorOptions } from '@faultline/core';

/*
 * The CLI's failures. `main.ts` prints each as one line (`faultline: <message>`)
 * and exits 1; the code is for callers and for the control endpoint, which
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

/** `stack up` while another stack's supervisor is alive. */
export class StackRunningError extends FaultlineError {
  constructor(pid: number) {
    super(
      'FL_ERR_STACK_RUNNING',
      `a stack is already running (supervisor pid ${pid}); stop it with: faultline stack down`,
      { context: { pid } },
    );
  }
}

/** A platform service that exited before it was ready, or was not ready in time. */
export class ServiceNotReadyError extends FaultlineError {
  constructor(service: string, reason: string) {
    super('FL_ERR_SERVICE_NOT_READY', `${service} ${reason}`, { context: { service } });
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
