import { randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import path from 'node:path';
import type { Logger } from '@faultline/core';

/** Where a running supervisor can be reached; written mode 0600 under `.faultline/run/`. */
export interface ControlFile {
  port: number;
  token: string;
  pid: number;
}

export type ControlHandler = (args: Record<string, unknown>) => Promise<unknown>;

/** A clear, one-line failure for the CLI to print (exit 1). */
export class ControlError extends Error {}

const fileOf = (runDir: string) => path.join(runDir, 'control.json');

/**
 * The supervisor's control endpoint: HTTP on 127.0.0.1, an ephemeral port,
 * every request carrying the token from the control file (only the user who
 * started the stack can read it). `POST /<action>` with a JSON body.
 */
export async function startControl(
  runDir: string,
  handlers: Record<string, ControlHandler>,
  logger: Logger,
): Promise<{ port: number; close(): Promise<void> }> {
  const token = randomBytes(24).toString('hex');
  const expected = Buffer.from(`Bearer ${token}`);
  const server = http.createServer((request, response) => {
    const reply = (status: number, body: unknown) =>
      response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    const given = Buffer.from(request.headers.authorization ?? '');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      logger.warn('control request refused: bad token', { url: request.url });
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
        (error: unknown) => reply(409, { error: error instanceof Error ? error.message : String(error) }),
      );
    });
  });
  server.on('error', (error) => logger.error('control server error', { error }));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  mkdirSync(runDir, { recursive: true, mode: 0o700 });
  writeFileSync(fileOf(runDir), JSON.stringify({ port, token, pid: process.pid } satisfies ControlFile), {
    mode: 0o600,
  });
  return {
    port,
    close: async () => {
      rmSync(fileOf(runDir), { force: true });
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Calls the running supervisor; a ControlError with one clear line when there is none. */
export async function callControl(
  runDir: string,
  action: string,
  args: Record<string, unknown> = {},
): Promise<unknown> {
  const file = fileOf(runDir);
  if (!existsSync(file)) throw new ControlError(`no stack is running (no ${file}); start one with: npm run stack`);
  const control = JSON.parse(readFileSync(file, 'utf8')) as ControlFile;
  let response: Response;
  try {
    response = await fetch(`http://127.0.0.1:${control.port}/${action}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${control.token}`, 'content-type': 'application/json' },
      body: JSON.stringify(args),
      signal: AbortSignal.timeout(60_000),
    });
  } catch {
    throw new ControlError(`the stack's supervisor (pid ${control.pid}) does not answer; is it still running?`);
  }
  const body = (await response.json()) as { result?: unknown; error?: string };
  if (!response.ok) throw new ControlError(body.error ?? `control call failed (${response.status})`);
  return body.result;
}
