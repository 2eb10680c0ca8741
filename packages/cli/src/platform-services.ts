import path from 'node:path';
import { brokerUsers, mosquittoDirOf, writeMosquittoConfig } from '@faultline/broker';
import {
  BROKER_CREDENTIAL_ROLES,
  ensureSecretFile,
  envNameFor,
  type FaultlineConfig,
  generatedBrokerPasswordFile,
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
 * The stack's broker accounts: for each role the configuration gives neither
 * `password` nor `passwordFile`, a random password file is generated on the
 * first start (`.faultline/secrets/broker-<role>.password` under `baseDir`,
 * mode 0600 in a folder of mode 0700) and reused after. Returns the config
 * with those files set, and `FAULTLINE_BROKERS_CREDENTIALS_<ROLE>_PASSWORD_FILE`
 * for each, which the services get in their environment: paths only, never a
 * password. To rotate one, stop the stack, delete its file and start it again.
 */
export function issueBrokerPasswords(config: FaultlineConfig, baseDir = process.cwd()): IssuedBrokerPasswords {
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
 * The platform services of the stack, in start order: broker A and B, SP
 * node 1 and 2, the autoscaler pair (one service per `autoscaler.nodes`
 * entry, named by its id; the active one spawns the members). Each is a
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
  for (const node of config.brokers.nodes) {
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
