import { rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  type Clock,
  type HealthState,
  type Logger,
  type MetricsSource,
  RateLimitedLog,
  type ServedHttp,
  serveHealth,
} from '@faultline/core';
import { agentMetricsAddress, formatAgentMetricsPort } from '@faultline/protocol';

/** What the agent's metrics server is told; the agent's resolved options give every value. */
export interface AgentMetricsServerOptions {
  host: string;
  /** 0: a free port the OS picks. */
  port: number;
  /**
   * File in the member's own folder to record the port in (the driver checks
   * it and writes the Prometheus target itself); undefined: none is written.
   */
  portFile: string | undefined;
  metrics: MetricsSource;
  state: () => HealthState;
  clock: Clock;
  logger: Logger;
  /** Told of each failed write or removal of the port file (logged here), to count it. */
  onPortFileFailed: () => void;
  /** Told of each request refused for its method (a 405, logged here at most every 10 s), to count it. */
  onRefused: () => void;
  /** How old a served `/metrics` body may be. @default METRICS_MAX_AGE_MS */
  metricsMaxAgeMs?: number;
}

export interface AgentMetricsServer {
  /** The port it listens on (the OS's choice when asked for 0). */
  readonly port: number;
  /** The port file it wrote; undefined when it writes none or the write failed. */
  readonly portFile: string | undefined;
  /** Removes the port file, then stops listening. Idempotent. */
  close(): Promise<void>;
}

/**
 * A `/metrics` body is served for up to a second: a collection costs the agent
 * some 3.6 ms of CPU, so a client asking in a loop would otherwise starve the
 * event loop its stat collections run on.
 */
export const METRICS_MAX_AGE_MS = 1_000;

/**
 * `source`, collected at most once at a time (every request that arrives
 * while a collection runs gets its result) and served from the last body for
 * `maxAgeMs` after that collection began. A failed collection is not kept: its
 * waiters get the error, the next request collects again.
 */
export function cachedMetrics(source: MetricsSource, clock: Clock, maxAgeMs: number): MetricsSource {
  let last: { text: string; at: number } | undefined;
  let running: Promise<string> | undefined;
  return {
    get contentType() {
      return source.contentType;
    },
    metrics: () => {
      const now = clock.monotonicNow();
      if (last && now - last.at < maxAgeMs) return Promise.resolve(last.text);
      running ??= source.metrics().then(
        (text) => {
          last = { text, at: now };
          running = undefined;
          return text;
        },
        (error: unknown) => {
          running = undefined;
          throw error;
        },
      );
      return running;
    },
  };
}

/**
 * Writes `text` to `file` whole or not at all: to a file beside it first,
 * then renamed over it. The file is in the member's own folder and only says
 * which port the agent listens on; the driver reads it as untrusted.
 */
async function writeAtomically(file: string, text: string): Promise<void> {
  const aside = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    await rm(aside, { force: true });
    await writeFile(aside, text, { mode: 0o600, flag: 'wx' });
    await rename(aside, file);
  } catch (error) {
    await rm(aside, { force: true }).catch(() => {});
    throw error;
  }
}

/**
 * The agent's health routes and `/metrics` (README "Operations → Agent
 * metrics") on `host`:`port`, and the file in its own folder that records
 * that port: written once it listens, removed before it stops. It writes
 * nothing anywhere else: the local driver checks the port against the
 * agent's own sockets and writes the Prometheus target. Rejects only when it
 * cannot listen; a port file that cannot be written or removed is logged
 * (`agent.metrics_port_file_failed`) and counted, and the server serves on.
 */
export async function serveAgentMetrics(options: AgentMetricsServerOptions): Promise<AgentMetricsServer> {
  const { logger: log } = options;
  const refusals = new RateLimitedLog(log, options.clock);
  const served: ServedHttp = await serveHealth({
    host: options.host,
    port: options.port,
    state: options.state,
    metrics: cachedMetrics(options.metrics, options.clock, options.metricsMaxAgeMs ?? METRICS_MAX_AGE_MS),
    logger: log,
    service: 'agent',
    onRefused: (request) => {
      options.onRefused();
      refusals.warn(request.socket.remoteAddress, 'method_not_allowed', 'metrics request refused', {
        event: 'agent.metrics_request_refused',
        method: request.method,
        path: request.url?.slice(0, 64),
      });
    },
  });
  let portFile: string | undefined;
  if (options.portFile !== undefined) {
    const file = options.portFile;
    try {
      await writeAtomically(file, formatAgentMetricsPort(served.port));
      portFile = file;
    } catch (error) {
      options.onPortFileFailed();
      log.warn('metrics port file not written: the agent serves /metrics, but the driver names no target for it', {
        event: 'agent.metrics_port_file_failed',
        op: 'write',
        file,
        error,
      });
    }
  }
  log.info('serving health and metrics', {
    event: 'agent.metrics_serving',
    address: agentMetricsAddress(options.host, served.port),
    port: served.port,
    portFile,
  });
  let closing: Promise<void> | undefined;
  return {
    port: served.port,
    get portFile() {
      return portFile;
    },
    close: () => {
      closing ??= (async () => {
        if (portFile !== undefined) {
          const file = portFile;
          portFile = undefined;
          try {
            await rm(file, { force: true });
          } catch (error) {
            options.onPortFileFailed();
            log.warn('metrics port file not removed: the driver finds the port closed and names no target', {
              event: 'agent.metrics_port_file_failed',
              op: 'remove',
              file,
              error,
            });
          }
        }
        await served.close();
      })();
      return closing;
    },
  };
}
