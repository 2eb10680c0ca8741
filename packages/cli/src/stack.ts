import { existsSync } from 'node:fs';
import path from 'node:path';
import { readActionsAfter, readLastActions } from '@faultline/autoscaler';
import { createLocalIaas, type MemberInstance } from '@faultline/cloud-controller';
import {
  createLogger,
  createPgPool,
  ensureSecretFile,
  type FaultlineConfig,
  ID_PATTERN,
  type Logger,
  loadConfig,
  migrate,
  once,
  REPO_ROOT,
  sleep,
  systemClock,
} from '@faultline/core';
import type pg from 'pg';
import { ActionFeed } from './action-feed.js';
import { causalChain } from './causal-chain.js';
import { chaosHandler } from './chaos.js';
import { liveMembers } from './cluster-view.js';
import { type ConsoleOutput, guardConsole } from './console-output.js';
import { type ConsoleServer, startConsole } from './console-server.js';
import { startControl } from './control.js';
import { prepareEmbeddedPostgres } from './embedded-postgres.js';
import { UsageError } from './errors.js';
import { stopLeftoverPostmaster } from './leftover-postmaster.js';
import { maintenanceHandler } from './maintenance.js';
import { startOutputRotation } from './output-rotation.js';
import { issueBrokerPasswords, platformServices, reportExternalBrokers } from './platform-services.js';
import { linuxServiceTable, type ServiceProcessTable } from './process-table.js';
import { ServiceRecords, stopLeftovers } from './service-records.js';
import { layoutEnv, prepareStackLayout, type StackLayout, stackLayout } from './stack-layout.js';
import { StackLock } from './stack-lock.js';
import { stopStack } from './stack-shutdown.js';
import { degraded, formatStatus, stackStatus } from './status.js';
import { Supervisor } from './supervisor.js';

/**
 * The state folder (`.faultline`, its run folder holding the supervisor's
 * control file) of the running stack a command talks to (`stack status`,
 * `stack down`, `chaos`): `--state-dir`, else FAULTLINE_STATE_DIR, else the
 * nearest folder from the current one up that holds a running stack's control
 * file, else `.faultline` here. So they work from any folder below the
 * stack's, or from anywhere with the variable set. (`stack up` starts the
 * stack in the folder it runs in.)
 */
export function stateDirOf(given: string | undefined): string {
  const explicit = given ?? process.env.FAULTLINE_STATE_DIR;
  if (explicit) return path.resolve(explicit);
  for (let dir = process.cwd(); ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, '.faultline/run/control.json'))) return path.join(dir, '.faultline');
    if (path.dirname(dir) === dir) break;
  }
  return path.resolve('.faultline');
}

/** The run folder of a state folder. */
export const runDirOf = (stateDir: string) => path.join(stateDir, 'run');

/** The autoscaler spawns the first members meanwhile, before the status table is printed. */
const FIRST_STATUS_DELAY_MS = 3_000;
/** SIGTERM to SIGKILL for the members terminated on the way down. */
const MEMBER_TERMINATE_GRACE_MS = 3_000;
/** What a dead supervisor left running: its stop signal to SIGKILL. */
const LEFTOVER_GRACE_MS = 10_000;
/** Ctrl-C, `kill`, and the terminal going away: each stops the whole stack, members included. */
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
/** The supervised embedded PostgreSQL's service name. */
const POSTGRES = 'postgres';

export interface StackUpOptions {
  /** @default FAULTLINE_CONFIG, else infra/config/faultline.yaml */
  configPath?: string | undefined;
  /** Once up, the status as one JSON line (`{"up":true,"status":…}`) instead of the table. */
  json?: boolean;
}

/**
 * `faultline stack up`: PostgreSQL (embedded unless `database.url`), broker A
 * and B (none with `brokers.kind: external`), SP node 1 and 2, the autoscaler
 * pair — in order, each ready before the next, each supervised
 * (supervisor.ts) — then the status table. One stack per folder
 * (stack-lock.ts); what a supervisor that died left running is stopped
 * first. Ctrl-C, SIGTERM, SIGHUP or `stack down` stop everything,
 * members included, also while it is still starting (what is under way
 * finishes, nothing more starts). A service that exits with code 2 (its
 * configuration) stops the stack too: then this rejects with a
 * ServiceFailedError naming it and its reason.
 */
export async function stackUp({ configPath, json = false }: StackUpOptions): Promise<void> {
  // Here: the services find their run folder as `.faultline/run` of the folder they are started in.
  const runDir = runDirOf(path.resolve('.faultline'));
  const loaded: FaultlineConfig = loadConfig({ path: configPath });
  const clock = systemClock;
  const table = linuxServiceTable;
  // From the first line on: a reader of the console that goes away (`| tee`, a closed terminal) never ends the supervisor.
  const terminal = guardConsole();
  // Before anything of the folder is touched: a second `stack up` here stops at this line.
  const lock = await StackLock.acquire({ file: path.join(runDir, 'supervisor.lock'), table, clock });
  try {
    await runStack(loaded, configPath, lock, table, terminal, json, runDir);
  } finally {
    lock.release();
  }
}

async function runStack(
  loaded: FaultlineConfig,
  configPath: string | undefined,
  lock: StackLock,
  table: ServiceProcessTable,
  terminal: ConsoleOutput,
  json: boolean,
  runDir: string,
): Promise<void> {
  const configFile = path.resolve(
    configPath ?? process.env.FAULTLINE_CONFIG ?? path.resolve('infra/config/faultline.yaml'),
  );
  // Broker accounts without a password get a generated file (README "Secret files"); the services get its path.
  // External brokers' accounts are the operator's: each needs its password given (README "External brokers").
  const { config, env: secretEnv } = issueBrokerPasswords(loaded);
  const logDir = path.resolve(config.logging.dir);
  const logger = createLogger({ service: 'supervisor', ...config.logging, dir: logDir });
  if (lock.replaced) {
    logger.warn('the last supervisor of this folder died without stopping its stack: taking over', {
      event: 'stack.stale_lock',
      pid: lock.replaced.pid,
    });
  }
  // Generated on first start, reused after (README "Security"); the services read the same paths.
  for (const file of Object.values(config.security)) ensureSecretFile(path.resolve(file));
  // Run as root from a checkout the postgres and member users cannot reach, what they need moves (README "What members can reach").
  const layout = stackLayoutOf(config);
  const clock = systemClock;
  // Members' outputs and processes' .log captures: no logger of ours rotates them (README "Logs").
  const outputs = startOutputRotation({
    dir: logDir,
    maxFileBytes: config.logging.maxFileBytes,
    maxFiles: config.logging.maxFiles,
    intervalMs: config.logging.outputCheckIntervalMs,
    clock,
    logger,
  });
  const records = new ServiceRecords(path.join(runDir, 'services.json'), table);
  let failure: Error | undefined;
  const supervisor = new Supervisor({
    clock,
    logger,
    records,
    table,
    write: terminal.write,
    ...config.supervisor,
    // Exit code 2: restarting cannot fix a configuration; the stack stops and says why. Not once it
    // is stopping (Ctrl-C): what a service says on its way down is no reason for `stack up` to fail.
    onFatal: (error) => {
      if (!stopping) failure ??= error;
      void shutdown();
    },
  });
  let pool: pg.Pool | undefined;
  let control: Awaited<ReturnType<typeof startControl>> | undefined;
  let web: ConsoleServer | undefined;
  let stopping = false;
  let startup: Promise<void> = Promise.resolve();
  let finished: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    finished = resolve;
  });

  // Whatever has started, stopped in reverse: the members while the database still lists them, PostgreSQL
  // last (stack-shutdown.ts). Never rejects: each step's failure is logged and the next one runs.
  const shutdown = once(async () => {
    stopping = true;
    try {
      logger.info('stopping the stack', { event: 'stack.stopping', ...(failure ? { reason: failure.message } : {}) });
      // A start step under way finishes first; startup gives up at its next step.
      await startup.catch(() => {});
      // The console first: its pages must not take the database connections the members' stop needs.
      await web
        ?.close()
        .catch((error: unknown) =>
          logger.warn('the console did not close cleanly', { event: 'console.close_failed', error }),
        );
      const registry = pool;
      await stopStack({
        clock,
        logger,
        supervisor,
        autoscalers: config.autoscaler.nodes.map((node) => node.id),
        postgres: POSTGRES,
        readMembers: registry
          ? async () => (await liveMembers(registry)).flatMap((m) => (m.instance ? [m.instance] : []))
          : undefined,
        terminateMembers: (instances) => terminateMembers(instances, layout, logger),
        closeControl: async () => control?.close(),
        endPool: async () => pool?.end(),
      });
      logger.info('stack stopped', { event: 'stack.stopped' });
      await logger.flush().catch(() => {});
    } finally {
      await outputs.stop();
      finished();
    }
  });
  // From the start, before PostgreSQL: these signals are the stack's alone (see embedded-postgres.ts).
  // Kept to the end: a second one (Ctrl-C pressed twice, or timeout(1) passing the group's SIGINT on
  // to the group again) must not end the supervisor halfway through stopping, leaving the rest running.
  for (const signal of STOP_SIGNALS) process.on(signal, () => void shutdown());

  const start = async () => {
    prepareStackLayout(layout, logger);
    // What a supervisor that died (kill -9) left running: its services (pid and start time recorded), then
    // its PostgreSQL, with care (SIGINT, SIGQUIT; SIGKILL last, its backends first), and only if it is
    // this folder's or an orphan (leftover-postmaster.ts).
    const recorded = records.read();
    const left = await stopLeftovers(recorded, { table, clock, logger, graceMs: LEFTOVER_GRACE_MS, skip: [POSTGRES] });
    const embeddedDataDir = config.database.url
      ? undefined
      : (layout.pgDataDir ?? path.resolve(config.database.embeddedDataDir));
    const postmasters = await stopLeftoverPostmaster(embeddedDataDir, {
      table,
      clock,
      logger,
      graceMs: LEFTOVER_GRACE_MS,
      records: recorded.filter((r) => r.name === POSTGRES),
    });
    records.clear();
    if (left.length > 0 || postmasters.length > 0) {
      logger.warn('stopped what a dead supervisor left running', {
        event: 'stack.leftovers_stopped',
        services: [...left, ...(postmasters.length > 0 ? [POSTGRES] : [])],
      });
    }
    let url = config.database.url;
    if (!url) {
      const dataDir = embeddedDataDir ?? path.resolve(config.database.embeddedDataDir);
      const embedded = await prepareEmbeddedPostgres({
        dataDir,
        port: config.database.embeddedPort,
        logDir,
        // The mirror's package, and so its binaries, when the postgres user cannot reach the checkout's.
        runtimeDir: layout.mirror ? layout.runtimeDir : undefined,
        logger,
      });
      if (stopping) return;
      await supervisor.start(embedded.service);
      await embedded.ensureDatabase();
      url = embedded.url;
    }
    logger.info('database ready', { event: 'stack.database_ready', embedded: !config.database.url });
    // Outlives a PostgreSQL restart: a broken connection is dropped, the next query opens another.
    pool = createPgPool({ connectionString: url, logger });
    await migrate(pool, { logger });
    const autoscalerEnv = layoutEnv(layout, config.cloudController.local);
    await reportExternalBrokers(config, logger);
    for (const spec of await platformServices(config, { runDir, logDir, configFile, autoscalerEnv }, url, secretEnv)) {
      if (stopping) return;
      await supervisor.start(spec);
    }
    if (stopping) return;
    const registry = pool;
    const status = async () => stackStatus(config, registry, supervisor.list());
    let consoleError: string | undefined;
    if (config.console.enabled) {
      // An extra, not a part of the stack: a console that cannot listen (its port taken) is said, not fatal.
      web = await startConsole({
        host: config.console.host,
        port: config.console.port,
        status: async () => {
          const s = await status();
          return { ...s, degraded: degraded(s) };
        },
        explain: (memberId) => causalChain(registry, memberId),
        feed: new ActionFeed({
          readAfter: (afterId, limit) => readActionsAfter(registry, afterId, limit),
          readLatest: (limit) => readLastActions(registry, limit),
          pollIntervalMs: config.console.pollIntervalMs,
          clock,
          logger,
        }),
        clock,
        logger,
      }).catch((error: unknown) => {
        consoleError = (error as Error).message;
        logger.error('the console could not start', { event: 'console.start_failed', error });
        return undefined;
      });
    }
    const consoleUrl = web?.url;
    control = await startControl({
      runDir,
      handlers: {
        status,
        console: async () => ({
          url: consoleUrl ?? null,
          enabled: config.console.enabled,
          error: consoleError ?? null,
        }),
        explain: async (args) => {
          const memberId = args.memberId;
          if (typeof memberId !== 'string' || !ID_PATTERN.test(memberId)) throw new UsageError('not a member id');
          return (await causalChain(registry, memberId)) ?? null;
        },
        down: async () => {
          void shutdown();
          return 'stopping';
        },
        chaos: chaosHandler({ pool: registry, supervisor, spNodes: config.streamProcessor.nodes, clock }, logger),
        maintenance: maintenanceHandler({ pool: registry, clusters: config.clusters }, logger),
      },
      logger,
      clock,
    });
    await sleep(clock, FIRST_STATUS_DELAY_MS);
    if (stopping) return;
    const first = await status();
    const seeIt = consoleUrl
      ? `The console: ${consoleUrl}\n`
      : consoleError
        ? `The console could not start: ${consoleError}\n`
        : '';
    terminal.print(
      json
        ? `${JSON.stringify({ up: true, status: first, console: consoleUrl ?? null })}\n`
        : `\n${formatStatus(first)}\n\nThe stack is up. Ctrl-C (or faultline stack down) stops it.\n${seeIt}\n`,
    );
  };
  startup = start();
  try {
    await startup;
  } catch (error) {
    failure ??= error as Error;
    logger.error('the stack did not start', { event: 'stack.start_failed', error });
    await shutdown();
    throw failure;
  }
  await done;
  if (failure) throw failure;
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

/** The members the registry knows as not terminated, terminated through the local driver. */
async function terminateMembers(instances: MemberInstance[], layout: StackLayout, logger: Logger): Promise<void> {
  if (instances.length === 0) return;
  const iaas = createLocalIaas({ runDir: layout.membersDir, runtimeDir: layout.runtimeDir, logger });
  await iaas.adopt(instances);
  const results = await Promise.all(
    instances.map((i) => iaas.terminate(i.memberId, { graceMs: MEMBER_TERMINATE_GRACE_MS })),
  );
  logger.info('members terminated', { event: 'stack.members_terminated', count: results.length });
  await iaas.close();
}
