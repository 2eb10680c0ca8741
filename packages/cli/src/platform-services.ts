import path from 'node:path';
import { brokerUsers, mosquittoDirOf, writeMosquittoConfig } from '@faultline/broker';
import {
  BROKER_CREDENTIAL_ROLES,
  ConfigError,
  ensureSecretFile,
  envNameFor,
  type FaultlineConfig,
  generatedBrokerPasswordFile,
  type Logger,
  REPO_ROOT,
} from '@faultline/core';
import { autoscalerHealth, mqttAnswers, portAnswers, spStatus } from './probes.js';
import type { ServiceSpec } from './supervisor.js';

/** The built main of one of this repository's packages. */
const mainOf = (pkg: string) => path.join(REPO_ROOT, 'packages', pkg, 'dist', 'main.js');

/** What issueBrokerPasswords returns: the config naming the files, and the env variables that name them to the services. */
export interface IssuedBrokerPasswords {
  config: FaultlineConfig;
  env: Record<string, string>;
}

/**
 * The stack's broker accounts (with `brokers.kind: external` only checked, by
 * requireExternalBrokerPasswords): for each role the configuration gives neither
 * `password` nor `passwordFile`, a random password file is generated on the
 * first start (`.faultline/secrets/broker-<role>.password` under `baseDir`,
 * mode 0600 in a folder of mode 0700) and reused after. Returns the config
 * with those files set, and `FAULTLINE_BROKERS_CREDENTIALS_<ROLE>_PASSWORD_FILE`
 * for each, which the services get in their environment: paths only, never a
 * password. To rotate one, stop the stack, delete its file and start it again.
 */
export function issueBrokerPasswords(config: FaultlineConfig, baseDir = process.cwd()): IssuedBrokerPasswords {
  if (config.brokers.kind === 'external') {
    requireExternalBrokerPasswords(config);
    return { config, env: {} };
  }
  const credentials = { ...config.brokers.credentials };
  const env: Record<string, string> = {};
  for (const role of BROKER_CREDENTIAL_ROLES) {
    const credential = credentials[role];
    if (credential.password !== undefined || credential.passwordFile !== undefined) continue;
    const file = path.resolve(baseDir, generatedBrokerPasswordFile(role));
    ensureSecretFile(file);
    credentials[role] = { username: credential.username, passwordFile: file };
    env[envNameFor(['brokers', 'credentials', role, 'passwordFile'])] = file;
  }
  return { config: { ...config, brokers: { ...config.brokers, credentials } }, env };
}

/**
 * With `brokers.kind: external` the accounts live on brokers the stack does
 * not run, so it cannot make up their passwords: every role must have
 * `password` or `passwordFile` (here or in its environment variable), the
 * password of the account the operator created (README "External brokers").
 * A ConfigError naming each role without one (`stack up` exits 2) otherwise.
 * Checked here rather than in the schema, which does not see a file that
 * only an environment variable names until the file itself is valid.
 */
export function requireExternalBrokerPasswords(config: FaultlineConfig): void {
  if (config.brokers.kind !== 'external') return;
  const missing = BROKER_CREDENTIAL_ROLES.filter((role) => {
    const credential = config.brokers.credentials[role];
    return credential.password === undefined && credential.passwordFile === undefined;
  });
  if (missing.length === 0) return;
  const issues = missing.map((role) => ({
    key: `brokers.credentials.${role}`,
    reason:
      `brokers.kind is external: the stack runs no broker, so it cannot generate this account's password; ` +
      `set brokers.credentials.${role}.passwordFile (or ${envNameFor(['brokers', 'credentials', role, 'passwordFile'])}) ` +
      `or .password to the password of the account "${config.brokers.credentials[role].username}" on your brokers`,
  }));
  throw new ConfigError(
    'FL_ERR_CONFIG_INVALID',
    ['invalid configuration:', ...issues.map((issue) => `  - ${issue.key}: ${issue.reason}`)].join('\n'),
    { issues },
  );
}

/**
 * `brokers.kind: external`: says which brokers the services will use, and
 * warns about each that does not accept a connection now. Never waits for one
 * and never fails: the services connect (and reconnect) themselves, and
 * `stack status` keeps probing them.
 */
export async function reportExternalBrokers(config: FaultlineConfig, logger: Logger): Promise<void> {
  if (config.brokers.kind !== 'external') return;
  const nodes = config.brokers.nodes;
  const answers = await Promise.all(nodes.map((node) => portAnswers(node.host, node.port)));
  logger.info('external brokers: the stack starts none, the services connect to these', {
    event: 'stack.external_brokers',
    brokers: nodes.map((node) => `${node.name}@${node.host}:${node.port}`),
  });
  nodes.forEach((node, i) => {
    if (answers[i]) return;
    logger.warn('an external broker does not accept connections; the services keep trying', {
      event: 'stack.external_broker_down',
      broker: node.name,
      host: node.host,
      port: node.port,
    });
  });
}

export interface StackPaths {
  /** `.faultline/run`: control file, Mosquitto configs. */
  runDir: string;
  logDir: string;
  configFile: string;
  /**
   * Configuration overrides for the autoscaler alone: where the members'
   * folders and scripts moved (`layoutEnv` of the stack's layout). @default none
   */
  autoscalerEnv?: Readonly<Record<string, string>>;
}

/**
 * The platform services of the stack, in start order: broker A and B (none
 * with `brokers.kind: external`), SP node 1 and 2, the autoscaler pair (one
 * service per `autoscaler.nodes` entry, named by its id; the active one
 * spawns the members). Each is a
 * process of this repository's built packages (or Mosquitto), started with
 * the same configuration file, the database URL and `secretEnv` (the
 * password files of issueBrokerPasswords); the autoscalers also with
 * `paths.autoscalerEnv`. No password is in any argv or env. Ready and alive
 * through what each serves: an aedes broker answers an MQTT CONNECT (a
 * Mosquitto one its port), an SP node its `GET /status` naming it, an
 * autoscaler node its `GET /health` naming it. Mosquitto gets a minimal
 * environment, not the supervisor's.
 */
export async function platformServices(
  config: FaultlineConfig,
  paths: StackPaths,
  databaseUrl: string,
  secretEnv: Readonly<Record<string, string>> = {},
): Promise<ServiceSpec[]> {
  const env = {
    FAULTLINE_CONFIG: paths.configFile,
    DATABASE_URL: databaseUrl,
    ...secretEnv,
    // The supervisor shows every service's console: keep their colors.
    ...(process.stdout.isTTY ? { FORCE_COLOR: '1' } : {}),
  };
  const services: ServiceSpec[] = [];
  // External brokers are someone else's to run: the services connect to them, `stack status` probes them.
  const brokerNodes = config.brokers.kind === 'external' ? [] : config.brokers.nodes;
  for (const node of brokerNodes) {
    const name = `broker-${node.name}`;
    const ready = (signal: AbortSignal) => portAnswers(node.host, node.port, signal);
    if (config.brokers.kind === 'mosquitto') {
      // The same accounts as aedes, read by the same function; hashed into the file, never in argv.
      const users = brokerUsers(config);
      const { configFile } = await writeMosquittoConfig({
        dir: mosquittoDirOf(paths.runDir, node.name),
        name: node.name,
        host: node.host,
        port: node.port,
        users,
        logDest: 'stdout',
        // tls.mqtt (README "TLS"): the listener speaks mqtts only.
        ...(config.tls.mqtt ? { tls: config.tls.mqtt } : {}),
      });
      services.push({
        name,
        command: 'mosquitto',
        args: ['-c', configFile],
        // Not the supervisor's whole environment: PATH, the locale, TZ (service-spec.ts).
        inheritEnv: false,
        ready,
        // Mosquitto logs every connection (two lines for a refused probe): it is asked for its port
        // only, and found hung by its process state (the supervisor's own check, SIGSTOP).
        live: ready,
        // Mosquitto's exit codes are its own: any death is restarted.
        fatalExitCodes: [],
        outputFile: path.join(paths.logDir, `${name}.log`),
      });
    } else {
      services.push({
        name,
        command: process.execPath,
        args: [mainOf('broker'), '--name', node.name],
        env,
        ready,
        // An MQTT CONNECT: the kernel of a paused broker still accepts the connection, aedes answers it.
        live: (signal) => mqttAnswers(node.host, node.port, signal),
      });
    }
  }
  for (const node of config.streamProcessor.nodes) {
    services.push({
      name: node.id,
      command: process.execPath,
      args: [mainOf('stream-processor'), '--node', node.id],
      env,
      // Its status naming this node: not another process that took the port.
      ready: async (signal) => (await spStatus(node, signal))?.nodeId === node.id,
    });
  }
  for (const node of config.autoscaler.nodes) {
    services.push({
      name: node.id,
      command: process.execPath,
      args: [mainOf('autoscaler'), '--node', node.id],
      env: { ...env, ...paths.autoscalerEnv },
      // 200 naming this node while its event loop turns, active or standby.
      ready: async (signal) => (await autoscalerHealth(node, signal)) !== undefined,
    });
  }
  return services;
}
