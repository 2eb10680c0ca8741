import { chmod, rename, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
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
import { agentTargetFileName, type MemberIdentity } from '@faultline/protocol';

/** What the agent's metrics server is told; the agent's resolved options give every value. */
export interface AgentMetricsServerOptions {
  host: string;
  /** 0: a free port the OS picks. */
  port: number;
  /** Folder of the host's agent target files; undefined: none is written. */
  targetsDir: string | undefined;
  member: MemberIdentity;
  metrics: MetricsSource;
  state: () => HealthState;
  clock: Clock;
  logger: Logger;
  /** Told of each failed write or removal of the target file (logged here), to count it. */
  onTargetFailed: () => void;
  /** Told of each request refused for its method (a 405, logged here at most every 10 s), to count it. */
  onRefused: () => void;
}

export interface AgentMetricsServer {
  /** The port it listens on (the OS's choice when asked for 0). */
  readonly port: number;
  /** The target file it wrote; undefined when it writes none or the write failed. */
  readonly targetFile: string | undefined;
  /** Removes the target file (Prometheus stops scraping it), then stops listening. Idempotent. */
  close(): Promise<void>;
}

/**
 * The `host:port` Prometheus scrapes for a server bound to `host`: a wildcard
 * bind (`0.0.0.0`, `::`) is scraped on loopback, an IPv6 address in brackets.
 */
export function targetAddress(host: string, port: number): string {
  const reachable = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return net.isIPv6(reachable) ? `[${reachable}]:${port}` : `${reachable}:${port}`;
}

/**
 * A Prometheus file_sd target group for the agent at `address`: the member's
 * identity as target labels, so every series scraped from it (Node's process
 * metrics too) carries them and the agent's own exposition stays small.
 */
export function targetGroup(address: string, member: MemberIdentity): string {
  const labels = {
    member: member.memberId,
    cluster: member.clusterId,
    cluster_instance: member.clusterInstanceId,
    network_partition: member.networkPartitionId,
    partition: member.partitionId,
  };
  return `${JSON.stringify([{ targets: [address], labels }])}\n`;
}

/**
 * Writes `text` to `file` whole or not at all: to a file beside it first
 * (named so no `*.json` pattern matches it), made readable by all (0644,
 * whatever the umask: Prometheus may run as another user), then renamed over
 * it, so Prometheus never reads half a file.
 */
async function writeAtomically(file: string, text: string): Promise<void> {
  const aside = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    await writeFile(aside, text, { mode: 0o644 });
    await chmod(aside, 0o644);
    await rename(aside, file);
  } catch (error) {
    await rm(aside, { force: true }).catch(() => {});
    throw error;
  }
}

/**
 * The agent's health routes and `/metrics` (README "Operations → Agent
 * metrics") on `host`:`port`, and its Prometheus target file: written once it
 * listens, removed before it stops. Rejects only when it cannot listen; a
 * target file that cannot be written or removed is logged
 * (`agent.metrics_target_failed`) and counted, and the server serves on.
 */
export async function serveAgentMetrics(options: AgentMetricsServerOptions): Promise<AgentMetricsServer> {
  const { logger: log, member } = options;
  const refusals = new RateLimitedLog(log, options.clock);
  const served: ServedHttp = await serveHealth({
    host: options.host,
    port: options.port,
    state: options.state,
    metrics: options.metrics,
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
  const address = targetAddress(options.host, served.port);
  let targetFile: string | undefined;
  if (options.targetsDir !== undefined) {
    const file = path.join(options.targetsDir, agentTargetFileName(member.memberId));
    try {
      await writeAtomically(file, targetGroup(address, member));
      targetFile = file;
    } catch (error) {
      options.onTargetFailed();
      log.warn('Prometheus target file not written: the agent serves /metrics, but file_sd will not find it', {
        event: 'agent.metrics_target_failed',
        op: 'write',
        file,
        error,
      });
    }
  }
  log.info('serving health and metrics', {
    event: 'agent.metrics_serving',
    address,
    port: served.port,
    targetFile,
  });
  let closing: Promise<void> | undefined;
  return {
    port: served.port,
    get targetFile() {
      return targetFile;
    },
    close: () => {
      closing ??= (async () => {
        if (targetFile !== undefined) {
          const file = targetFile;
          targetFile = undefined;
          try {
            await rm(file, { force: true });
          } catch (error) {
            options.onTargetFailed();
            log.warn('Prometheus target file not removed: it names a port nobody will answer on', {
              event: 'agent.metrics_target_failed',
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
