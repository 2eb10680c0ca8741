import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import { type Clock, ID_PATTERN, type Logger, type TimerHandle } from '@faultline/core';
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import type { ActionFeed, FedAction, FeedEvent } from './action-feed.js';
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
/** Causal chains read at once (three registry queries each); more get a 503 (the pool is the supervisor's). */
const MAX_EXPLAINS = 4;

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
  readonly counts: {
    pagesRefused: number;
    hostsRefused: number;
    slowPagesDropped: number;
    livePages: number;
    explainsRefused: number;
  };
  close(): Promise<void>;
}

/**
 * The names a browser may reach the console by (its `Host` header, port
 * aside): loopback's, and the bound address; bound to a wildcard address,
 * also this machine's name and each of its interfaces' addresses. Any other
 * name is a page elsewhere that rebound its DNS name to this machine.
 */
function hostNames(bound: string): Set<string> {
  const names = new Set(['localhost', '127.0.0.1', '[::1]', urlHost(bound)]);
  if (bound === '0.0.0.0' || bound === '::' || bound === '[::]') {
    names.add(os.hostname().toLowerCase());
    for (const list of Object.values(os.networkInterfaces()))
      for (const address of list ?? [])
        names.add(address.family === 'IPv6' ? `[${address.address.split('%')[0]}]` : address.address);
  }
  return names;
}

/**
 * The stack's web console (docs/operations.md, "The console"): the page, its
 * JSON (`/api/state`, `/api/members/:id`) and its live timeline of the
 * autoscaler's actions as server-sent events (`/api/events`; a reconnecting
 * page sends Last-Event-ID and gets what it missed). Read-only: nothing on it
 * acts on the stack. A request naming another host than this console's is
 * refused (421; hostNames), so a web page elsewhere cannot read it through
 * DNS rebinding; every answer carries a strict Content-Security-Policy, and the
 * page writes what it shows as text, never as HTML.
 */
export async function startConsole(options: ConsoleServerOptions): Promise<ConsoleServer> {
  const { clock, logger, feed } = options;
  const counts = { pagesRefused: 0, hostsRefused: 0, slowPagesDropped: 0, livePages: 0, explainsRefused: 0 };
  // Event ids are `<boot>.<delivery>`: a page that reconnects to another life of the console gets all it keeps.
  const boot = randomBytes(4).toString('hex');
  let explaining = 0;
  const pages = new Set<ServerResponse>();
  const app: FastifyInstance = Fastify({
    logger: false,
    bodyLimit: 1024,
    requestTimeout: 10_000,
    forceCloseConnections: true,
    return503OnClosing: true,
  });
  let allowedHosts = new Set<string>();

  app.addHook('onRequest', async (request, reply) => {
    const host = (request.headers.host ?? '').toLowerCase();
    if (!allowedHosts.has(host)) {
      counts.hostsRefused += 1;
      logger.warn('console request for another host refused', {
        event: 'console.host_refused',
        host: host.slice(0, 100),
      });
      return reply.code(421).headers(SECURITY_HEADERS).send({ error: 'misdirected request' });
    }
    reply.headers(SECURITY_HEADERS);
  });

  // `at`: when the build finished (monotonic), undefined while it runs.
  let cached: { at: number | undefined; value: Promise<unknown> } | undefined;
  app.get('/api/state', async (_request, reply) => {
    const at = cached?.at;
    if (!cached || (at !== undefined && clock.monotonicNow() - at >= STATE_TTL_MS)) {
      const value = options.status();
      const entry: { at: number | undefined; value: Promise<unknown> } = { at: undefined, value };
      cached = entry;
      value.then(
        () => {
          entry.at = clock.monotonicNow();
        },
        // A failed build is not kept: the next request tries again.
        () => {
          if (cached === entry) cached = undefined;
        },
      );
    }
    reply.header('cache-control', 'no-store');
    return { now: clock.now(), status: await cached.value };
  });

  app.get<{ Params: { memberId: string } }>('/api/members/:memberId', async (request, reply) => {
    const { memberId } = request.params;
    reply.header('cache-control', 'no-store');
    if (!ID_PATTERN.test(memberId)) return reply.code(400).send({ error: 'not a member id' });
    if (explaining >= MAX_EXPLAINS) {
      counts.explainsRefused += 1;
      return reply.code(503).header('retry-after', '1').send({ error: 'busy: try again' });
    }
    explaining += 1;
    try {
      const chain = await options.explain(memberId);
      if (!chain) return reply.code(404).send({ error: 'the registry knows no such member' });
      return chain;
    } finally {
      explaining -= 1;
    }
  });

  app.get('/api/events', async (request, reply) => {
    if (pages.size >= MAX_LIVE_PAGES) {
      counts.pagesRefused += 1;
      return reply.code(503).header('retry-after', '5').send({ error: 'too many live pages' });
    }
    // Nothing before the feed's first read: a page resuming now would miss the history it brings.
    await feed.ready();
    if (request.raw.destroyed) return reply;
    const [lastBoot, lastSeq] = String(request.headers['last-event-id'] ?? '').split('.');
    const last = lastBoot === boot ? Number(lastSeq) : Number.NaN;
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
    const send = (actions: readonly FedAction[]) => {
      if (raw.writableLength > MAX_BUFFERED_BYTES) {
        counts.slowPagesDropped += 1;
        logger.warn('a console page reads too slowly: disconnected', { event: 'console.slow_page' });
        raw.destroy();
        return;
      }
      // JSON keeps each event on one `data:` line; the id lets a reconnecting page resume.
      raw.write(
        actions.map(({ seq, ...a }) => `id: ${boot}.${seq}\nevent: action\ndata: ${JSON.stringify(a)}\n\n`).join(''),
      );
    };
    const onEvent = (event: FeedEvent) => {
      if (event.type === 'actions') send(event.actions);
      else raw.write('event: reset\ndata: {}\n\n');
    };
    const beat = () => {
      raw.write(': keepalive\n\n');
      keepalive = clock.setTimeout(beat, KEEPALIVE_MS);
    };
    raw.write('retry: 2000\n\n');
    send(feed.since(Number.isSafeInteger(last) && last >= 0 ? last : undefined));
    const unsubscribe = feed.subscribe(onEvent);
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
  allowedHosts = new Set([...hostNames(options.host)].map((h) => `${h}:${port}`.toLowerCase()));
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
