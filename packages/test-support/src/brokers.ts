import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, createWriteStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type BrokerUser, writeMosquittoConfig } from '@faultline/broker';
import {
  BROKER_CREDENTIAL_ROLES,
  ClosedError,
  type LogLevel,
  REPO_ROOT,
  resolveConfig,
  withDefaults,
} from '@faultline/core';
import {
  type CredentialIdentity,
  type Endpoint,
  issueMemberCredential,
  memberBrokerAccount,
  SERVICE_ROLES,
  type ServiceRole,
} from '@faultline/protocol';
import { TEST_MEMBER_KEY } from '@faultline/protocol/testing';
import { killAndWait, onceExited, trackChild, trackTempDir, untilListening } from './child-processes.js';
import { canConnect, freePort, LOOPBACK_HOST } from './ports.js';
import { writeTestMemberKey } from './secrets.js';

export type BrokerKind = 'aedes' | 'mosquitto';

/** A member's broker account under TEST_MEMBER_KEY: user name its member id, password its credential. */
export function testMemberAccount(member: CredentialIdentity): { username: string; password: string } {
  return memberBrokerAccount(member.memberId, issueMemberCredential(TEST_MEMBER_KEY, member));
}

/** The member TEST_CREDENTIALS.agent logs in as: an `agent` account is always a member's own. */
export const TEST_AGENT_MEMBER: CredentialIdentity = Object.freeze({
  memberId: 'agent',
  clusterId: 'test',
  networkPartitionId: 'np-1',
});

/**
 * The account of every role on every test broker, aedes or Mosquitto: the
 * platform roles' passwords, and for `agent` the member account of
 * TEST_AGENT_MEMBER (it may publish only `instance/status/agent/…`).
 */
export const TEST_CREDENTIALS: Readonly<Record<ServiceRole, { username: string; password: string }>> = Object.freeze(
  Object.fromEntries(
    SERVICE_ROLES.map((role) => [
      role,
      Object.freeze(
        role === 'agent' ? testMemberAccount(TEST_AGENT_MEMBER) : { username: role, password: `${role}-test-secret` },
      ),
    ]),
  ) as Record<ServiceRole, { username: string; password: string }>,
);

/** `brokers.credentials` of a test config: the platform roles' accounts of TEST_CREDENTIALS (members log in as themselves). */
export const TEST_CONFIG_CREDENTIALS: Readonly<
  Record<(typeof BROKER_CREDENTIAL_ROLES)[number], { username: string; password: string }>
> = Object.freeze(
  Object.fromEntries(BROKER_CREDENTIAL_ROLES.map((role) => [role, TEST_CREDENTIALS[role]])) as Record<
    (typeof BROKER_CREDENTIAL_ROLES)[number],
    { username: string; password: string }
  >,
);

/** What the product's clients take: `{ name, host, port }` of each broker. */
export function brokerEndpoints(brokers: readonly TestBroker[]): (Endpoint & { name: string })[] {
  return brokers.map((b) => ({ name: b.name, host: b.host, port: b.port }));
}

export interface TestBroker extends Readonly<Endpoint> {
  readonly name: string;
  readonly kind: BrokerKind;
  /** `mqtt://127.0.0.1:<port>` */
  readonly url: string;
  /** The broker process's pid; undefined while it is not running. */
  readonly pid: number | undefined;
  /** Sends `signal` (default SIGKILL; one that ends the process) and resolves once it has exited. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port (stopping a running one first); resolves once it accepts TCP connections. */
  restart(): Promise<void>;
  /** SIGTERM, then SIGKILL after 2 s; removes its temp folder. Idempotent; restart() is refused afterwards. */
  stop(): Promise<void>;
}

export interface StartBrokerOptions {
  /** @default env.FAULTLINE_TEST_BROKER_KIND, else 'aedes' */
  kind?: BrokerKind;
  /** @default 'a' */
  name?: string;
  /** @default a free loopback port, kept across restart() */
  port?: number;
  /** Folder for the broker's log file. @default a `logs` folder in the broker's temp folder */
  logDir?: string;
  /** aedes nodes' `logging.level`. @default 'warn' */
  logLevel?: LogLevel;
  /**
   * Members whose accounts (testMemberAccount) a Mosquitto broker holds, beside
   * TEST_AGENT_MEMBER's; aedes checks any member's login with TEST_MEMBER_KEY.
   * @default []
   */
  members?: readonly CredentialIdentity[];
}

const STOP_GRACE_MS = 2_000;
const BROKER_MAIN = path.join(REPO_ROOT, 'packages/broker/dist/main.js');
const MOSQUITTO_CANDIDATES = ['/usr/sbin/mosquitto', '/usr/local/sbin/mosquitto'];

/** The mosquitto binary: Debian's /usr/sbin first (not on every PATH), then PATH. */
function mosquittoPath(): string | undefined {
  const dirs = (process.env.PATH ?? '').split(path.delimiter).filter(Boolean);
  for (const file of [...MOSQUITTO_CANDIDATES, ...dirs.map((dir) => path.join(dir, 'mosquitto'))]) {
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here; next candidate
    }
  }
  return undefined;
}

export function mosquittoAvailable(): boolean {
  return mosquittoPath() !== undefined;
}

function defaultKind(): BrokerKind {
  const fromEnv = process.env.FAULTLINE_TEST_BROKER_KIND;
  if (fromEnv === undefined || fromEnv === '') return 'aedes';
  if (fromEnv === 'aedes' || fromEnv === 'mosquitto') return fromEnv;
  throw new Error(`FAULTLINE_TEST_BROKER_KIND must be aedes or mosquitto, not ${fromEnv}`);
}

function testUsers(members: readonly CredentialIdentity[] = []): BrokerUser[] {
  return [
    ...SERVICE_ROLES.map((role) => ({ ...TEST_CREDENTIALS[role], role })),
    ...members.map((member) => ({ ...testMemberAccount(member), role: 'agent' as const })),
  ];
}

interface Launch {
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  /** Mosquitto writes plain text we keep in a file; aedes nodes write their own JSON-lines file. */
  outputFile: string | undefined;
}

/** A broker to start, every option resolved; `dir` is its temp folder. */
interface BrokerPlan {
  kind: BrokerKind;
  name: string;
  port: number;
  dir: string;
  logDir: string;
  logLevel: LogLevel;
  members: readonly CredentialIdentity[];
}

async function prepare({ kind, name, port, dir, logDir, logLevel, members }: BrokerPlan): Promise<Launch> {
  await mkdir(logDir, { recursive: true });
  if (kind === 'mosquitto') {
    const command = mosquittoPath();
    if (!command) throw new Error('mosquitto is not installed (looked in /usr/sbin, /usr/local/sbin and PATH)');
    const users = testUsers(members);
    const { configFile } = await writeMosquittoConfig({ dir, name, host: LOOPBACK_HOST, port, users });
    return { command, args: ['-c', configFile], env: process.env, outputFile: path.join(logDir, `broker-${name}.log`) };
  }
  if (!existsSync(BROKER_MAIN)) {
    throw new Error(`${BROKER_MAIN} is missing: build first (npx tsc -b packages/broker packages/test-support)`);
  }
  const config = {
    logging: { level: logLevel, dir: logDir },
    brokers: { kind: 'aedes', nodes: [{ name, host: LOOPBACK_HOST, port }], credentials: TEST_CONFIG_CREDENTIALS },
    security: { memberKeyFile: writeTestMemberKey(path.join(dir, 'secrets', 'member.key')) },
  };
  // Validated here so a schema mismatch fails in the test, not as exit 2 of a child.
  resolveConfig(config, { source: 'test-support startBroker', env: {} });
  const configFile = path.join(dir, 'faultline.yaml');
  // JSON is YAML.
  await writeFile(configFile, JSON.stringify(config, null, 2));
  return {
    command: process.execPath,
    args: [BROKER_MAIN, '--name', name],
    env: { ...process.env, FAULTLINE_CONFIG: configFile },
    outputFile: undefined,
  };
}

class ProcessBroker implements TestBroker {
  readonly url: string;
  private child: ChildProcess | undefined;
  private stopped: Promise<void> | undefined;
  private readonly untrackDir: () => void;

  constructor(
    readonly name: string,
    readonly kind: BrokerKind,
    readonly port: number,
    private readonly dir: string,
    private readonly launch: Launch,
  ) {
    this.url = `mqtt://${LOOPBACK_HOST}:${port}`;
    this.untrackDir = trackTempDir(dir);
  }

  get host(): string {
    return LOOPBACK_HOST;
  }

  get pid(): number | undefined {
    const child = this.child;
    return child && child.exitCode === null && child.signalCode === null ? child.pid : undefined;
  }

  async start(): Promise<void> {
    const portTakenBefore = await canConnect(LOOPBACK_HOST, this.port);
    const child = spawn(this.launch.command, this.launch.args, {
      env: this.launch.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    const output = trackChild(child);
    if (this.launch.outputFile) {
      const file = createWriteStream(this.launch.outputFile, { flags: 'a' });
      child.stdout?.pipe(file, { end: false });
      child.stderr?.pipe(file, { end: false });
      child.once('close', () => file.end());
    }
    try {
      await untilListening(child, LOOPBACK_HOST, this.port, output, { portTakenBefore });
    } catch (error) {
      await this.terminate();
      throw new Error(
        `${this.kind} broker ${this.name} on port ${this.port} did not start: ${(error as Error).message}`,
      );
    }
  }

  // Arrow properties, so `afterAll(broker.stop)` and friends work unbound.
  readonly kill = (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> => killAndWait(this.child, signal);

  readonly restart = async (): Promise<void> => {
    if (this.stopped) throw new ClosedError(`test broker ${this.name}`);
    await this.terminate();
    await this.start();
  };

  readonly stop = (): Promise<void> => {
    this.stopped ??= (async () => {
      await this.terminate();
      await rm(this.dir, { recursive: true, force: true });
      this.untrackDir();
    })();
    return this.stopped;
  };

  /** SIGTERM, SIGKILL after STOP_GRACE_MS; resolves once the process is gone. */
  private async terminate(): Promise<void> {
    const child = this.child;
    if (!child || this.pid === undefined) return;
    const exited = onceExited(child);
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    await exited;
    clearTimeout(timer);
  }
}

/**
 * Starts one real broker process for a test: an aedes node
 * (`node packages/broker/dist/main.js --name <name>`) or Mosquitto, with
 * TEST_CREDENTIALS and the project's ACL. It is a separate process so a test
 * can kill -9 it; it never outlives the test run.
 */
export async function startBroker(input: StartBrokerOptions = {}): Promise<TestBroker> {
  const { name, logLevel } = withDefaults({ name: 'a', logLevel: 'warn' as LogLevel }, input);
  // Computed only when not given: the environment is read, a port is taken.
  const kind = input.kind ?? defaultKind();
  const port = input.port ?? (await freePort());
  const dir = await mkdtemp(path.join(os.tmpdir(), `faultline-broker-${name}-`));
  const logDir = input.logDir ?? path.join(dir, 'logs');
  let broker: ProcessBroker | undefined;
  try {
    const launch = await prepare({ kind, name, port, dir, logDir, logLevel, members: input.members ?? [] });
    broker = new ProcessBroker(name, kind, port, dir, launch);
    await broker.start();
    return broker;
  } catch (error) {
    if (broker) await broker.stop();
    else await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

/** Brokers `a` and `b` of one kind, as the stack runs them. */
export async function startBrokerPair(
  kind?: BrokerKind,
  options: Pick<StartBrokerOptions, 'members'> = {},
): Promise<[TestBroker, TestBroker]> {
  const results = await Promise.allSettled([
    startBroker({ ...options, kind, name: 'a' }),
    startBroker({ ...options, kind, name: 'b' }),
  ]);
  const started = results.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
  const failed = results.find((result) => result.status === 'rejected');
  if (failed) {
    await Promise.all(started.map((broker) => broker.stop()));
    throw failed.reason;
  }
  return started as [TestBroker, TestBroker];
}
