import path from 'node:path';
import { createLocalIaas } from '@faultline/cloud-controller';
import {
  createLogger,
  createPgPool,
  ensureSecretFile,
  type FaultlineConfig,
  type Logger,
  loadConfig,
  migrate,
  once,
  REPO_ROOT,
  sleep,
  systemClock,
} from '@faultline/core';
import type pg from 'pg';
import { chaosHandler } from './chaos.js';
import { liveMembers } from './cluster-view.js';
import { type ControlFile, readControlFile, startControl } from './control.js';
import { type StackPostgres, startEmbeddedPostgres } from './embedded-postgres.js';
import { StackRunningError } from './errors.js';
import { issueBrokerPasswords, platformServices } from './platform-services.js';
import { layoutEnv, prepareStackLayout, type StackLayout, stackLayout } from './stack-layout.js';
import { formatStatus, stackStatus } from './status.js';
import { Supervisor } from './supervisor.js';

export const RUN_DIR = path.resolve('.faultline/run');

/** The autoscaler spawns the first members meanwhile, before the status table is printed. */
const FIRST_STATUS_DELAY_MS = 3_000;
/** SIGTERM to SIGKILL for the members terminated on the way down. */
const MEMBER_TERMINATE_GRACE_MS = 3_000;
/** Ctrl-C, `kill`, and the terminal going away: each stops the whole stack, members included. */
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** The control file of a supervisor that is still alive, if any. */
function alreadyRunning(): ControlFile | undefined {
  const control = readControlFile(RUN_DIR);
  if (!control) return undefined;
  try {
    process.kill(control.pid, 0);
    return control;
  } catch {
    return undefined; // a stale file from a supervisor that died
  }
}

export interface StackUpOptions {
  /** @default FAULTLINE_CONFIG, else infra/config/faultline.yaml */
  configPath?: string | undefined;
}

/**
 * `faultline stack up`: PostgreSQL (embedded unless `database.url`), broker A
 * and B, SP node 1 and 2, the autoscaler — in order, each ready before the
 * next — then the status table. Ctrl-C, SIGTERM, SIGHUP or `stack down`
 * stop everything, members included, also while it is still starting (what
 * is under way finishes, nothing more starts).
 */
export async function stackUp({ configPath }: StackUpOptions): Promise<void> {
  const running = alreadyRunning();
  if (running) throw new StackRunningError(running.pid);
  const loaded: FaultlineConfig = loadConfig({ path: configPath });
  const configFile = path.resolve(
    configPath ?? process.env.FAULTLINE_CONFIG ?? path.resolve('infra/config/faultline.yaml'),
  );
  // Broker accounts without a password get a generated file (README "Secret files"); the services get its path.
  const { config, env: secretEnv } = issueBrokerPasswords(loaded);
  const logDir = path.resolve(config.logging.dir);
  const logger = createLogger({ service: 'supervisor', level: config.logging.level, dir: logDir });
  // Generated on first start, reused after (README "Security"); the services read the same paths.
  for (const file of Object.values(config.security)) ensureSecretFile(path.resolve(file));
  // Run as root from a checkout the postgres and member users cannot reach, what they need moves (README "What members can reach").
  const layout = stackLayoutOf(config);
  const clock = systemClock;
  const supervisor = new Supervisor({ clock, logger });
  let db: StackPostgres | undefined;
  let pool: pg.Pool | undefined;
  let control: Awaited<ReturnType<typeof startControl>> | undefined;
  let stopping = false;
  let startup: Promise<void> = Promise.resolve();
  let finished: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    finished = resolve;
  });

  // Whatever has started, stopped in reverse: the members while the database still lists them, PostgreSQL last.
  const shutdown = once(async () => {
    stopping = true;
    logger.info('stopping the stack', { event: 'stack.stopping' });
    // A start step under way finishes first; startup gives up at its next step.
    await startup.catch(() => {});
    await supervisor.stop('autoscaler');
    if (pool) await terminateMembers(pool, layout, logger);
    await supervisor.stopAll();
    await control?.close();
    await pool?.end();
    await db?.stop();
    logger.info('stack stopped', { event: 'stack.stopped' });
    await logger.flush();
    finished();
  });
  // From the start, before PostgreSQL: these signals are the stack's alone (see startEmbeddedPostgres).
  // Kept to the end: a second one (Ctrl-C pressed twice, or timeout(1) passing the group's SIGINT on
  // to the group again) must not end the supervisor halfway through stopping, leaving the rest running.
  for (const signal of STOP_SIGNALS) process.on(signal, () => void shutdown());

  const start = async () => {
    prepareStackLayout(layout, logger);
    db = config.database.url
      ? { url: config.database.url, stop: async () => {} }
      : await startEmbeddedPostgres({
          dataDir: layout.pgDataDir ?? config.database.embeddedDataDir,
          port: config.database.embeddedPort,
          // The mirror's package, and so its binaries, when the postgres user cannot reach the checkout's.
          runtimeDir: layout.mirror ? layout.runtimeDir : undefined,
          logger,
        });
    logger.info('database ready', { event: 'stack.database_ready', embedded: !config.database.url });
    pool = createPgPool({ connectionString: db.url, logger });
    await migrate(pool, { logger });
    const autoscalerEnv = layoutEnv(layout, config.cloudController.local);
    for (const spec of await platformServices(
      config,
      { runDir: RUN_DIR, logDir, configFile, autoscalerEnv },
      db.url,
      secretEnv,
    )) {
      if (stopping) return;
      await supervisor.start(spec);
    }
    if (stopping) return;
    const registry = pool;
    control = await startControl({
      runDir: RUN_DIR,
      handlers: {
        status: async () => stackStatus(config, registry),
        down: async () => {
          void shutdown();
          return 'stopping';
        },
        chaos: chaosHandler({ pool: registry, supervisor, spNodes: config.streamProcessor.nodes, clock }, logger),
      },
      logger,
      clock,
    });
    await sleep(clock, FIRST_STATUS_DELAY_MS);
    if (stopping) return;
    process.stdout.write(
      `\n${formatStatus(await stackStatus(config, registry))}\n\nThe stack is up. Ctrl-C (or faultline stack down) stops it.\n\n`,
    );
  };
  startup = start();
  try {
    await startup;
  } catch (error) {
    logger.error('the stack did not start', { event: 'stack.start_failed', error });
    await shutdown();
    throw error;
  }
  await done;
}

/**
 * Where this stack's PostgreSQL data, members' folders and their code are
 * (stack-layout.ts): derived from the configuration, the checkout and the
 * working directory, so every command of the same stack finds the same.
 */
export function stackLayoutOf(config: FaultlineConfig): StackLayout {
  return stackLayout({
    codeRoot: REPO_ROOT,
    stackDir: process.cwd(),
    pgDataDir: config.database.url ? undefined : path.resolve(config.database.embeddedDataDir),
    membersDir: path.resolve(config.cloudController.local.membersDir),
  });
}

/** Every member the registry knows as not terminated, terminated through the local driver. */
async function terminateMembers(pool: pg.Pool, layout: StackLayout, logger: Logger): Promise<void> {
  const members = await liveMembers(pool).catch(() => []);
  const instances = members.flatMap((m) => (m.instance ? [m.instance] : []));
  if (instances.length === 0) return;
  const iaas = createLocalIaas({ runDir: layout.membersDir, runtimeDir: layout.runtimeDir, logger });
  await iaas.adopt(instances);
  const results = await Promise.all(
    instances.map((i) => iaas.terminate(i.memberId, { graceMs: MEMBER_TERMINATE_GRACE_MS })),
  );
  logger.info('members terminated', { event: 'stack.members_terminated', count: results.length });
  await iaas.close();
}
