import { randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import path from 'node:path';
import { isFaultlineError, type Logger } from '@faultline/core';
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
  /** One per action: `POST /<action>` runs `handlers[action]` with the JSON body. */
  handlers: Record<string, ControlHandler>;
  logger: Logger;
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

const controlFileOf = (runDir: string) => path.join(runDir, 'control.json');

/** The control file under `runDir`, if there is one (its supervisor may have died since). */
export function readControlFile(runDir: string): ControlFile | undefined {
  const file = controlFileOf(runDir);
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as ControlFile) : undefined;
}

/**
 * The supervisor's control endpoint: HTTP on 127.0.0.1, an ephemeral port,
 * every request carrying the token from the control file (only the user who
 * started the stack can read it). `POST /<action>` with a JSON body.
 */
export async function startControl({
  runDir,
  handlers,
  logger,
}: ControlServerOptions): Promise<{ port: number; close(): Promise<void> }> {
  const token = randomBytes(TOKEN_BYTES).toString('hex');
  const expected = Buffer.from(`Bearer ${token}`);
  const server = http.createServer((request, response) => {
    const reply = (status: number, body: ControlReply) =>
      response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    const given = Buffer.from(request.headers.authorization ?? '');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      logger.warn('control request refused: bad token', { event: 'control.request_refused', url: request.url });
      reply(401, { error: 'unauthorized' });
      return;
    }
    const action = (request.url ?? '').replace(/^\//, '');
    const handler = request.method === 'POST' ? handlers[action] : undefined;
    if (!handler) {
      reply(404, { error: `unknown action ${action}` });
      return;
    }
    let body = '';
    request.on('data', (chunk: Buffer) => {
      body += chunk.toString();
    });
    request.on('end', () => {
      let args: Record<string, unknown> = {};
      try {
        args = body ? (JSON.parse(body) as Record<string, unknown>) : {};
      } catch {
        reply(400, { error: 'body is not JSON' });
        return;
      }
      handler(args).then(
        (result) => reply(200, { result }),
        (error: unknown) =>
          reply(409, {
            error: error instanceof Error ? error.message : String(error),
            code: isFaultlineError(error) ? error.code : undefined,
          }),
      );
    });
  });
  server.on('error', (error) => logger.error('control server error', { event: 'control.server_error', error }));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  mkdirSync(runDir, { recursive: true, mode: 0o700 });
  writeFileSync(controlFileOf(runDir), JSON.stringify({ port, token, pid: process.pid } satisfies ControlFile), {
    mode: 0o600,
  });
  return {
    port,
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
