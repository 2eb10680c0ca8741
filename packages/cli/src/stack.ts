import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { createLocalIaas } from '@faultline/cloud-controller';
import {
  createLogger,
  createPgPool,
  type FaultlineConfig,
  loadConfig,
  migrate,
  once,
  systemClock,
} from '@faultline/core';
import { CHAOS_ACTIONS, type ChaosAction, runChaos } from './chaos.js';
import { liveMembers } from './cluster-view.js';
import { type ControlFile, startControl } from './control.js';
import { startEmbeddedPostgres } from './postgres.js';
import { platformServices } from './services.js';
import { formatStatus, stackStatus } from './status.js';
import { Supervisor } from './supervisor.js';

export const RUN_DIR = path.resolve('.faultline/run');

function alreadyRunning(): ControlFile | undefined {
  const file = path.join(RUN_DIR, 'control.json');
  if (!existsSync(file)) return undefined;
  const control = JSON.parse(readFileSync(file, 'utf8')) as ControlFile;
  try {
    process.kill(control.pid, 0);
    return control;
  } catch {
    return undefined; // a stale file from a supervisor that died
  }
}

/**
 * `faultline stack up`: PostgreSQL (embedded unless `database.url`), broker A
 * and B, SP node 1 and 2, the autoscaler — in order, each ready before the
 * next — then the status table. Ctrl-C, SIGTERM or `stack down` stop
 * everything, members included.
 */
export async function stackUp(options: { configPath?: string }): Promise<void> {
  const running = alreadyRunning();
  if (running)
    throw new Error(`a stack is already running (supervisor pid ${running.pid}); stop it with: faultline stack down`);
  const config: FaultlineConfig = loadConfig(options.configPath ? { path: options.configPath } : {});
  const configFile = path.resolve(
    options.configPath ?? process.env.FAULTLINE_CONFIG ?? path.resolve('infra/config/faultline.yaml'),
  );
  const logDir = path.resolve(config.logging.dir);
  const logger = createLogger({ service: 'supervisor', level: config.logging.level, dir: logDir });
  const clock = systemClock;
  const db = config.database.url
    ? { url: config.database.url, stop: async () => {} }
    : await startEmbeddedPostgres({
        dataDir: config.database.embeddedDataDir,
        port: config.database.embeddedPort,
        logger,
      });
  logger.info('database ready', { embedded: !config.database.url });
  const pool = createPgPool({ connectionString: db.url, logger });
  await migrate(pool, { logger });
  const supervisor = new Supervisor({ clock, logger });
  let finished: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    finished = resolve;
  });

  const shutdown = once(async () => {
    logger.info('stopping the stack');
    await supervisor.stop('autoscaler');
    await terminateMembers(pool, logger);
    await supervisor.stopAll();
    await control?.close();
    await pool.end();
    await db.stop();
    logger.info('stack stopped');
    await logger.flush();
    finished();
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void shutdown());

  let control: Awaited<ReturnType<typeof startControl>> | undefined;
  try {
    for (const spec of await platformServices(config, { runDir: RUN_DIR, logDir, configFile }, db.url)) {
      await supervisor.start(spec);
    }
    control = await startControl(
      RUN_DIR,
      {
        status: async () => stackStatus(config, pool),
        down: async () => {
          void shutdown();
          return 'stopping';
        },
        chaos: async (args) => {
          const action = String(args.action) as ChaosAction;
          if (!CHAOS_ACTIONS.includes(action)) throw new Error(`unknown chaos action ${action}`);
          const result = await runChaos(
            action,
            {
              ...(args.target ? { target: String(args.target) } : {}),
              ...(args.seconds ? { seconds: Number(args.seconds) } : {}),
            },
            { pool, supervisor, spNodes: config.streamProcessor.nodes, clock },
          );
          logger.warn(`chaos: ${result}`, { chaos: action });
          return result;
        },
      },
      logger,
    );
    // Give the autoscaler a moment to spawn the first members before the table.
    await new Promise((resolve) => clock.setTimeout(() => resolve(undefined), 3_000));
    process.stdout.write(
      `\n${formatStatus(await stackStatus(config, pool))}\n\nThe stack is up. Ctrl-C (or faultline stack down) stops it.\n\n`,
    );
  } catch (error) {
    logger.error('the stack did not start', { error });
    await shutdown();
    throw error;
  }
  await done;
}

/** Every member the registry knows as not terminated, terminated through the local driver. */
async function terminateMembers(pool: import('pg').Pool, logger: import('@faultline/core').Logger): Promise<void> {
  const members = await liveMembers(pool).catch(() => []);
  const instances = members.flatMap((m) => (m.instance ? [m.instance] : []));
  if (instances.length === 0) return;
  const iaas = createLocalIaas({ runDir: path.join(RUN_DIR, 'members'), logger });
  await iaas.adopt(instances);
  const results = await Promise.all(instances.map((i) => iaas.terminate(i.memberId, { graceMs: 3_000 })));
  logger.info('members terminated', { count: results.length });
  await iaas.close();
}
