import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DEFAULTS, type LogLevel, REPO_ROOT, resolveConfig, withDefaults } from '@faultline/core';
import type { Endpoint } from '@faultline/protocol';
import { TEST_CONFIG_CREDENTIALS } from './brokers.js';
import {
  killAndWait,
  type OutputTail,
  onceExited,
  trackChild,
  trackTempDir,
  untilListening,
} from './child-processes.js';
import { freePort, LOOPBACK_HOST } from './ports.js';
import { testSecret, testSecrets } from './secrets.js';

const SP_MAIN = path.join(REPO_ROOT, 'packages/stream-processor/dist/main.js');

export interface SpPairOptions {
  databaseUrl: string;
  /** @default DEFAULTS.heartbeatIntervalMs (1 000: tests of the pair run at real timings) */
  heartbeatIntervalMs?: number;
  /** @default DEFAULTS.heartbeatMaxRetry (2) */
  heartbeatMaxRetry?: number;
  /** @default 'info' */
  logLevel?: LogLevel;
  /** `ledger` counts stats (the pair's own tests); `cep` runs the CEP monitor and publishes. @default 'ledger' */
  engine?: 'ledger' | 'cep';
  /** The broker pair the CEP publishes to and follows the topology on. */
  brokers?: readonly (Endpoint & { name: string })[];
  /** `cep` section of the config (faultTimeoutMs, summaryIntervalMs, …). */
  cep?: Record<string, number>;
  /** Largest Thrift and sync frame. @default the config's, DEFAULTS.maxFrameBytes (1 MiB) */
  maxFrameBytes?: number;
  /** `messaging` section timings (pingIntervalMs, resubscribeIntervalMs, republishIntervalMs). */
  messaging?: Record<string, number>;
  /**
   * The Thrift port's limits of the `streamProcessor` section (thriftMaxConnections,
   * thriftMaxConnectionsPerPeer, thriftIdleTimeoutMs, statTimestampWindowMs). @default the config's
   */
  thrift?: Record<string, number>;
  /** The `tls` section (README "TLS"): certificate paths of `thrift` and `mqtt`. @default none (plain TCP) */
  tls?: Record<string, { certFile: string; keyFile: string; caFile: string }>;
}

/** What `GET /status` of a node returns (the fields tests look at). */
export interface SpStatusJson {
  nodeId: string;
  role: 'PASSIVE' | 'ACTIVE' | 'STEPPING_DOWN';
  epoch?: number;
  thriftPort?: number;
  passive: { endpoint?: string; link: string; lagBatches: number; lagMs: number };
  following?: { nodeId: string; epoch: number; lastSeq: number; synced: boolean };
  counters: Record<string, number>;
  /** Batches refused, per reason (`credential_invalid`, `member_mismatch`, …). */
  refusals: Record<string, number>;
  /** The node's event-loop delay (ms): the max over the last 5–10 s, the p99 of the last whole 5 s window and of the last 12. */
  eventLoop: { maxDelayMs: number; p99DelayMs: number; minuteP99DelayMs: number };
  engine: Record<string, unknown>;
}

export type TestSecurity = ReturnType<typeof testSecrets>;

export interface TestSpNode {
  readonly nodeId: string;
  readonly thriftPort: number;
  readonly syncPort: number;
  readonly statusPort: number;
  /** The pair's secret files (`security` of its config): sign batches, call `/engine`, link as a peer. */
  readonly security: TestSecurity;
  readonly pid: number | undefined;
  /** undefined while the node does not answer. */
  status(): Promise<SpStatusJson | undefined>;
  /** `GET /engine`; `timeoutMs` (default 5 000): a large state takes longer to serialize and send. */
  engine(options?: { timeoutMs?: number }): Promise<unknown>;
  /** The node's JSON log records so far. */
  logs(): Record<string, unknown>[];
  /** The last bytes its current process wrote to stdout and stderr (a crash's stack is there, not in the log). */
  output(): string;
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** SIGSTOP / SIGCONT without waiting for anything. */
  signal(signal: NodeJS.Signals): void;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Two stream-processor nodes as real processes (the built main.js) sharing
 * one cluster database, on free loopback ports. Both are started; which one
 * becomes active is for the test to find out.
 */
export async function startSpPair(input: SpPairOptions): Promise<[TestSpNode, TestSpNode]> {
  const options = withDefaults(
    {
      heartbeatIntervalMs: DEFAULTS.heartbeatIntervalMs as number,
      heartbeatMaxRetry: DEFAULTS.heartbeatMaxRetry as number,
      logLevel: 'info' as LogLevel,
      engine: 'ledger' as 'ledger' | 'cep',
    },
    input,
  );
  const dir = await mkdtemp(path.join(os.tmpdir(), 'faultline-sp-'));
  const untrack = trackTempDir(dir);
  if (!existsSync(SP_MAIN))
    throw new Error(`${SP_MAIN} is missing: build first (npx tsc -b packages/stream-processor)`);
  const ports = await Promise.all(Array.from({ length: 6 }, () => freePort()));
  const nodes = ['sp-1', 'sp-2'].map((id, i) => ({
    id,
    host: LOOPBACK_HOST,
    thriftPort: ports[i * 3] as number,
    syncPort: ports[i * 3 + 1] as number,
    statusPort: ports[i * 3 + 2] as number,
  }));
  const security = testSecrets(dir);
  const config = {
    logging: { level: options.logLevel, dir: path.join(dir, 'logs') },
    security,
    database: { url: options.databaseUrl },
    tls: options.tls,
    // Left out (undefined), a key takes the config's default: the file never names it.
    brokers: { nodes: options.brokers, credentials: TEST_CONFIG_CREDENTIALS },
    messaging: { ...options.messaging, outboxDir: path.join(dir, 'outbox') },
    cep: { ...options.cep },
    streamProcessor: {
      heartbeatIntervalMs: options.heartbeatIntervalMs,
      heartbeatMaxRetry: options.heartbeatMaxRetry,
      maxFrameBytes: options.maxFrameBytes,
      ...options.thrift,
      engine: options.engine,
      nodes,
    },
  };
  resolveConfig(config, { source: 'startSpPair', env: {} });
  const configFile = path.join(dir, 'faultline.yaml');
  await writeFile(configFile, JSON.stringify(config, null, 2));
  let stopped = 0;
  const pair = nodes.map(
    (spec) =>
      new ProcessSpNode(spec, security, configFile, path.join(dir, 'logs', `${spec.id}.jsonl`), async () => {
        stopped += 1;
        if (stopped === 2) {
          await rm(dir, { recursive: true, force: true });
          untrack();
        }
      }),
  ) as [ProcessSpNode, ProcessSpNode];
  await Promise.all(pair.map((node) => node.start()));
  return pair;
}

class ProcessSpNode implements TestSpNode {
  private child: ChildProcess | undefined;
  private tail: OutputTail | undefined;
  private stopping: Promise<void> | undefined;
  readonly nodeId: string;
  readonly thriftPort: number;
  readonly syncPort: number;
  readonly statusPort: number;

  constructor(
    spec: { id: string; thriftPort: number; syncPort: number; statusPort: number },
    readonly security: TestSecurity,
    private readonly configFile: string,
    private readonly logFile: string,
    private readonly onStopped: () => Promise<void>,
  ) {
    this.nodeId = spec.id;
    this.thriftPort = spec.thriftPort;
    this.syncPort = spec.syncPort;
    this.statusPort = spec.statusPort;
  }

  get pid(): number | undefined {
    const child = this.child;
    return child && child.exitCode === null && child.signalCode === null ? child.pid : undefined;
  }

  async start(): Promise<void> {
    const child = spawn(process.execPath, [SP_MAIN, '--node', this.nodeId], {
      env: { ...process.env, FAULTLINE_CONFIG: this.configFile, DATABASE_URL: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    const output = trackChild(child);
    this.tail = output;
    await untilListening(child, LOOPBACK_HOST, this.statusPort, output, { timeoutMs: 20_000 });
  }

  readonly status = async (): Promise<SpStatusJson | undefined> => {
    try {
      const response = await fetch(`http://${LOOPBACK_HOST}:${this.statusPort}/status`, {
        signal: AbortSignal.timeout(1_000),
      });
      return (await response.json()) as SpStatusJson;
    } catch {
      return undefined;
    }
  };

  /** `GET /engine` with the pair's status token, as an operator's tool would call it; `member`: that member's part. */
  readonly engine = async (options: { timeoutMs?: number; member?: string } = {}): Promise<unknown> => {
    const query = options.member === undefined ? '' : `?member=${encodeURIComponent(options.member)}`;
    const response = await fetch(`http://${LOOPBACK_HOST}:${this.statusPort}/engine${query}`, {
      headers: { authorization: `Bearer ${testSecret(this.security.statusTokenFile).toString('utf8')}` },
      signal: AbortSignal.timeout(options.timeoutMs ?? 5_000),
    });
    if (!response.ok)
      throw new Error(`${this.nodeId} GET /engine${query}: ${response.status} ${await response.text()}`);
    return response.json();
  };

  readonly logs = (): Record<string, unknown>[] => {
    if (!existsSync(this.logFile)) return [];
    return readFileSync(this.logFile, 'utf8')
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  };

  readonly output = (): string => this.tail?.text() ?? '';

  readonly kill = (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> => killAndWait(this.child, signal);

  readonly signal = (signal: NodeJS.Signals): void => {
    this.child?.kill(signal);
  };

  readonly restart = async (): Promise<void> => {
    await this.kill('SIGKILL');
    await this.start();
  };

  readonly stop = (): Promise<void> => {
    this.stopping ??= (async () => {
      const child = this.child;
      if (child && this.pid !== undefined) {
        child.kill('SIGCONT');
        const exited = onceExited(child);
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
        await exited;
        clearTimeout(timer);
      }
      await this.onStopped();
    })();
    return this.stopping;
  };
}
