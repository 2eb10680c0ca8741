import { randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import path from 'node:path';
import { type Clock, isFaultlineError, type Logger, RateLimitedLog, systemClock } from '@faultline/core';
import { ControlError, isErrorCode } from './errors.js';

/** Where a running supervisor can be reached; written mode 0600 under `.faultline/run/`. */
export interface ControlFile {
  port: number;
  token: string;
  pid: number;
}

export type ControlHandler = (args: Record<string, unknown>) => Promise<unknown>;

export interface ControlServerOptions {
  /** `.faultline/run`: the control file goes there. */
  runDir: string;
  /**
   * One per action: `POST /<action>` runs the handler with the JSON body.
   * Only the object's own entries are actions (`/constructor`, `/__proto__`,
   * `/toString` are unknown actions, like any other name).
   */
  handlers: Readonly<Record<string, ControlHandler>>;
  logger: Logger;
  /** Paces the refusal log records. @default systemClock */
  clock?: Clock;
}

/** What the endpoint has answered since it started; every refusal is in exactly one of these. */
export interface ControlCounters {
  /** Every request, answered or refused. */
  requests: number;
  /** Actions run to a result (200). */
  served: number;
  /** No or a wrong token (401). */
  badToken: number;
  /** Not a POST (405), or an action the supervisor does not have (404). */
  unknownAction: number;
  /** A body that is not a JSON object or is too large, or arguments the action refuses (400, 413). */
  badRequest: number;
  /** An action that failed while carrying out a valid request (409). */
  failed: number;
}

export interface ControlServer {
  port: number;
  readonly counters: Readonly<ControlCounters>;
  close(): Promise<void>;
}

/** What the endpoint answers: a result, or a failure with its message and, when it has one, its code. */
interface ControlReply {
  result?: unknown;
  error?: string;
  code?: string;
}

/** Bytes of randomness in the token. */
const TOKEN_BYTES = 24;
/** A control call (a chaos action, `stack down`) not answered by then counts as no answer. */
const CALL_TIMEOUT_MS = 60_000;
/** Largest request body: a control call's arguments are a few short strings. */
const MAX_BODY_BYTES = 64 * 1024;
/** Longest action name quoted back in a reply or a log record. */
const MAX_QUOTED_ACTION = 128;

const controlFileOf = (runDir: string) => path.join(runDir, 'control.json');

/** The control file under `runDir`, if there is one (its supervisor may have died since). */
export function readControlFile(runDir: string): ControlFile | undefined {
  const file = controlFileOf(runDir);
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as ControlFile) : undefined;
}

/** How long `stack down` waits for the supervisor to have stopped everything and exited. */
const STOP_WAIT_MS = 120_000;

/**
 * Resolves once the supervisor `pid` (read from its control file before it
 * was asked to stop) has exited: it exits last, once every service and member
 * has stopped. Rejects after STOP_WAIT_MS (FL_ERR_STACK_STOP_TIMEOUT).
 */
export async function waitStopped(pid: number | undefined, clock: Clock = systemClock): Promise<{ ms: number }> {
  const started = clock.monotonicNow();
  const alive = () => {
    if (pid === undefined) return false;
    try {
      process.kill(pid, 0);
    } catch {
      // ESRCH: gone. EPERM: the pid is another user's now: ours is gone too.
      return false;
    }
    // Exited but not yet reaped by its parent (a zombie): gone.
    try {
      return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
    } catch {
      return false;
    }
  };
  while (alive()) {
    if (clock.monotonicNow() - started > STOP_WAIT_MS) {
      throw new ControlError(
        'FL_ERR_STACK_STOP_TIMEOUT',
        `the stack's supervisor (pid ${pid}) is still running ${STOP_WAIT_MS / 1000} s after it was asked to stop`,
        { context: { pid } },
      );
    }
    await new Promise<void>((resolve) => clock.setTimeout(() => resolve(), 100));
  }
  return { ms: Math.round(clock.monotonicNow() - started) };
}

/** The request's path without the leading `/` or a query: the action asked for. */
function actionOf(url: string | undefined): string {
  const pathPart = (url ?? '').split('?', 1)[0] ?? '';
  return pathPart.replace(/^\//, '');
}

/**
 * The supervisor's control endpoint: HTTP on 127.0.0.1, an ephemeral port,
 * every request carrying the token from the control file (only the user who
 * started the stack can read it). `POST /<action>` with a JSON object as the
 * body. A refusal never runs anything: 401 without the token, 405 for another
 * method, 404 for an action the supervisor does not have, 400 for a body that
 * is not a JSON object or arguments the action refuses (`FL_ERR_USAGE`), 413
 * above 64 KiB; each is counted and logged (`control.request_refused`, at most
 * once per 10 s per reason).
 */
export async function startControl({ runDir, handlers, logger, clock }: ControlServerOptions): Promise<ControlServer> {
  const token = randomBytes(TOKEN_BYTES).toString('hex');
  const expected = Buffer.from(`Bearer ${token}`);
  // Own entries only: a plain object would also "have" constructor, toString, __proto__.
  const actions = new Map<string, ControlHandler>(Object.entries(handlers));
  const counters: ControlCounters = {
    requests: 0,
    served: 0,
    badToken: 0,
    unknownAction: 0,
    badRequest: 0,
    failed: 0,
  };
  const refusals = new RateLimitedLog(logger, clock ?? systemClock);
  const server = http.createServer((request, response) => {
    counters.requests += 1;
    const action = actionOf(request.url);
    const quoted = action.slice(0, MAX_QUOTED_ACTION);
    const reply = (status: number, body: ControlReply, headers: Record<string, string> = {}) => {
      if (!response.headersSent) {
        response.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
      }
    };
    const refuse = (counter: Exclude<keyof ControlCounters, 'requests' | 'served' | 'failed'>, reason: string) => {
      counters[counter] += 1;
      refusals.warn(request.socket.remoteAddress ?? 'unknown', reason, 'control request refused', {
        event: 'control.request_refused',
        reason,
        method: request.method,
        action: quoted,
      });
    };
    const given = Buffer.from(request.headers.authorization ?? '');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      refuse('badToken', 'bad_token');
      reply(401, { error: 'unauthorized' });
      return;
    }
    if (request.method !== 'POST') {
      refuse('unknownAction', 'method_not_allowed');
      reply(405, { error: 'method not allowed' }, { allow: 'POST' });
      return;
    }
    const handler = actions.get(action);
    if (!handler) {
      refuse('unknownAction', 'unknown_action');
      reply(404, { error: `unknown action ${quoted}` });
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      // Past the limit the rest is read and dropped, so the caller still gets the 413.
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    request.on('end', () => {
      if (size > MAX_BODY_BYTES) {
        refuse('badRequest', 'body_too_large');
        reply(413, { error: `body larger than ${MAX_BODY_BYTES} bytes` });
        return;
      }
      let args: unknown;
      try {
        args = size === 0 ? {} : JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        args = undefined;
      }
      if (typeof args !== 'object' || args === null || Array.isArray(args)) {
        refuse('badRequest', 'body_not_object');
        reply(400, { error: 'body is not a JSON object' });
        return;
      }
      // A handler that throws before its promise exists fails the call, never the supervisor.
      Promise.resolve()
        .then(() => handler(args as Record<string, unknown>))
        .then(
          (result) => {
            counters.served += 1;
            reply(200, { result });
          },
          (error: unknown) => {
            const code = isFaultlineError(error) ? error.code : undefined;
            const message = error instanceof Error ? error.message : String(error);
            if (code === 'FL_ERR_USAGE') {
              refuse('badRequest', 'bad_arguments');
              reply(400, { error: message, code });
              return;
            }
            counters.failed += 1;
            reply(409, { error: message, code });
          },
        );
    });
    request.on('error', () => response.destroy());
  });
  server.on('error', (error) => logger.error('control server error', { event: 'control.server_error', error }));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  mkdirSync(runDir, { recursive: true, mode: 0o700 });
  // The mode of an existing folder or file would be kept as it is: made so either way.
  chmodSync(runDir, 0o700);
  rmSync(controlFileOf(runDir), { force: true });
  writeFileSync(controlFileOf(runDir), JSON.stringify({ port, token, pid: process.pid } satisfies ControlFile), {
    mode: 0o600,
    flag: 'wx',
  });
  return {
    port,
    counters,
    close: async () => {
      rmSync(controlFileOf(runDir), { force: true });
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Calls the running supervisor; a ControlError with one clear line when there is none or the call fails. */
export async function callControl(
  runDir: string,
  action: string,
  args: Record<string, unknown> = {},
): Promise<unknown> {
  const control = readControlFile(runDir);
  if (!control) {
    const file = controlFileOf(runDir);
    throw new ControlError(
      'FL_ERR_STACK_NOT_RUNNING',
      `no stack is running (no ${file}); start one with: npm run stack`,
      {
        context: { file },
      },
    );
  }
  let response: Response;
  try {
    response = await fetch(`http://127.0.0.1:${control.port}/${action}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${control.token}`, 'content-type': 'application/json' },
      body: JSON.stringify(args),
      signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
    });
  } catch (cause) {
    throw new ControlError(
      'FL_ERR_STACK_NOT_RUNNING',
      `the stack's supervisor (pid ${control.pid}) does not answer; is it still running?`,
      { context: { pid: control.pid }, cause },
    );
  }
  const body = (await response.json()) as ControlReply;
  if (!response.ok) {
    throw new ControlError(
      isErrorCode(body.code) ? body.code : 'FL_ERR_CONTROL_FAILED',
      body.error ?? `control call failed (${response.status})`,
      { context: { action, status: response.status } },
    );
  }
  return body.result;
}
