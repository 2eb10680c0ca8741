import type { ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { ActionEntry } from '@faultline/autoscaler';
import { type Clock, ID_PATTERN, type Logger, type TimerHandle } from '@faultline/core';
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import type { ActionFeed } from './action-feed.js';
import type { CausalChain } from './causal-chain.js';
import { urlHost } from './probes.js';

/** The page's files: plain HTML, CSS and an ES module, served as they are (no build step). */
export const CONSOLE_ASSETS = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'console');

/** Live pages (event streams) at once; one more is refused (503) until one closes. */
export const MAX_LIVE_PAGES = 32;
/** A page that reads its stream slower than this is disconnected (it reconnects where it left off). */
const MAX_BUFFERED_BYTES = 1024 * 1024;
/** A comment line on each stream this often, so proxies and the browser keep it open. */
const KEEPALIVE_MS = 15_000;
/** `/api/state` is built at most once per this; pages polling together share one build. */
const STATE_TTL_MS = 1_000;

const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

export interface ConsoleServerOptions {
  host: string;
  /** 0: the system picks one. */
  port: number;
  /** The stack's status (the same as `faultline stack status --json`). */
  status: () => Promise<unknown>;
  /** A member's causal chain, or undefined when the registry does not know it. */
  explain: (memberId: string) => Promise<CausalChain | undefined>;
  feed: ActionFeed;
  clock: Clock;
  logger: Logger;
}

export interface ConsoleServer {
  /** `http://host:port/`, as a browser on this machine reaches it. */
  readonly url: string;
  readonly counts: { pagesRefused: number; hostsRefused: number; slowPagesDropped: number; livePages: number };
  close(): Promise<void>;
}

/**
 * The stack's web console (docs/operations.md, "The console"): the page, its
 * JSON (`/api/state`, `/api/members/:id`) and its live timeline of the
 * autoscaler's actions as server-sent events (`/api/events`; a reconnecting
 * page sends Last-Event-ID and gets what it missed). Read-only: nothing on it
 * acts on the stack. A request naming another host than this console's is
 * refused (421), so a web page elsewhere cannot read it through DNS
 * rebinding; every answer carries a strict Content-Security-Policy, and the
 * page writes what it shows as text, never as HTML.
 */
export async function startConsole(options: ConsoleServerOptions): Promise<ConsoleServer> {
  const { clock, logger, feed } = options;
  const counts = { pagesRefused: 0, hostsRefused: 0, slowPagesDropped: 0, livePages: 0 };
  const pages = new Set<ServerResponse>();
  const app: FastifyInstance = Fastify({
    logger: false,
    bodyLimit: 1024,
    requestTimeout: 10_000,
    forceCloseConnections: true,
    return503OnClosing: true,
  });
  let allowedHosts = new Set<string>();
  const anyHost = options.host === '0.0.0.0' || options.host === '::';

  app.addHook('onRequest', async (request, reply) => {
    const host = (request.headers.host ?? '').toLowerCase();
    if (!anyHost && !allowedHosts.has(host)) {
      counts.hostsRefused += 1;
      logger.warn('console request for another host refused', {
        event: 'console.host_refused',
        host: host.slice(0, 100),
      });
      return reply.code(421).headers(SECURITY_HEADERS).send({ error: 'misdirected request' });
    }
    reply.headers(SECURITY_HEADERS);
  });

  let cached: { at: number; value: Promise<unknown> } | undefined;
  app.get('/api/state', async (_request, reply) => {
    const now = clock.now();
    if (!cached || now - cached.at >= STATE_TTL_MS) {
      const value = options.status();
      cached = { at: now, value };
      // A failed build is not kept: the next request tries again.
      value.catch(() => {
        if (cached?.value === value) cached = undefined;
      });
    }
    reply.header('cache-control', 'no-store');
    return { now: clock.now(), status: await cached.value };
  });

  app.get<{ Params: { memberId: string } }>('/api/members/:memberId', async (request, reply) => {
    const { memberId } = request.params;
    reply.header('cache-control', 'no-store');
    if (!ID_PATTERN.test(memberId)) return reply.code(400).send({ error: 'not a member id' });
    const chain = await options.explain(memberId);
    if (!chain) return reply.code(404).send({ error: 'the registry knows no such member' });
    return chain;
  });

  app.get('/api/events', (request, reply) => {
    if (pages.size >= MAX_LIVE_PAGES) {
      counts.pagesRefused += 1;
      return reply.code(503).header('retry-after', '5').send({ error: 'too many live pages' });
    }
    const last = Number(request.headers['last-event-id']);
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, {
      ...SECURITY_HEADERS,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
    });
    pages.add(raw);
    counts.livePages = pages.size;
    let keepalive: TimerHandle | undefined;
    const send = (actions: readonly ActionEntry[]) => {
      if (raw.writableLength > MAX_BUFFERED_BYTES) {
        counts.slowPagesDropped += 1;
        logger.warn('a console page reads too slowly: disconnected', { event: 'console.slow_page' });
        raw.destroy();
        return;
      }
      // JSON keeps each event on one `data:` line; the id lets a reconnecting page resume.
      raw.write(actions.map((a) => `id: ${a.id}\nevent: action\ndata: ${JSON.stringify(a)}\n\n`).join(''));
    };
    const beat = () => {
      raw.write(': keepalive\n\n');
      keepalive = clock.setTimeout(beat, KEEPALIVE_MS);
    };
    raw.write('retry: 2000\n\n');
    send(feed.since(Number.isSafeInteger(last) && last >= 0 ? last : undefined));
    const unsubscribe = feed.subscribe(send);
    keepalive = clock.setTimeout(beat, KEEPALIVE_MS);
    raw.on('close', () => {
      unsubscribe();
      if (keepalive !== undefined) clock.clearTimeout(keepalive);
      pages.delete(raw);
      counts.livePages = pages.size;
    });
  });

  app.get('/health', async () => ({ status: 'ok' }));

  await app.register(fastifyStatic, { root: CONSOLE_ASSETS, index: 'index.html', wildcard: false });

  app.setErrorHandler((error: FastifyError, _request, reply) => {
    const status = error.statusCode && error.statusCode < 500 ? error.statusCode : 500;
    if (status === 500) logger.error('console request failed', { event: 'console.request_failed', error });
    reply.code(status).send({ error: status === 500 ? 'internal error' : error.message });
  });

  try {
    await app.listen({ host: options.host, port: options.port });
  } catch (error) {
    await app.close();
    throw error;
  }
  const { port } = app.server.address() as AddressInfo;
  const reachable = urlHost(options.host);
  allowedHosts = new Set([reachable, 'localhost', '127.0.0.1', '[::1]'].flatMap((h) => [`${h}:${port}`.toLowerCase()]));
  const url = `http://${reachable}:${port}/`;
  feed.start();
  logger.info('console serving', { event: 'console.listening', url });
  return {
    url,
    counts,
    close: async () => {
      for (const page of pages) page.destroy();
      await feed.close();
      await app.close();
    },
  };
}
