import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { writeMosquittoConfig } from '@faultline/broker';
import { type FaultlineConfig, REPO_ROOT } from '@faultline/core';
import { portAnswers, spStatus } from './probes.js';
import type { ServiceSpec } from './supervisor.js';

/** The built main of one of this repository's packages. */
const mainOf = (pkg: string) => path.join(REPO_ROOT, 'packages', pkg, 'dist', 'main.js');

/** How long a readiness probe of an SP node waits for its status call. */
const SP_READY_PROBE_TIMEOUT_MS = 500;

/** Ready once the service's own JSON log holds a record with this event key. */
function logged(file: string, event: string): () => Promise<boolean> {
  return async () => existsSync(file) && readFileSync(file, 'utf8').includes(`"event":"${event}"`);
}

export interface StackPaths {
  /** `.faultline/run`: control file, Mosquitto configs, member state. */
  runDir: string;
  logDir: string;
  configFile: string;
}

/**
 * The platform services of the stack, in start order: broker A and B, SP
 * node 1 and 2, the autoscaler (which then spawns the members). Each is a
 * process of this repository's built packages (or Mosquitto), started with
 * the same configuration file and the database URL.
 */
export async function platformServices(
  config: FaultlineConfig,
  paths: StackPaths,
  databaseUrl: string,
): Promise<ServiceSpec[]> {
  const env = {
    FAULTLINE_CONFIG: paths.configFile,
    DATABASE_URL: databaseUrl,
    // The supervisor shows every service's console: keep their colors.
    ...(process.stdout.isTTY ? { FORCE_COLOR: '1' } : {}),
  };
  const services: ServiceSpec[] = [];
  for (const node of config.brokers.nodes) {
    const name = `broker-${node.name}`;
    const ready = () => portAnswers(node.host, node.port);
    if (config.brokers.kind === 'mosquitto') {
      const users = Object.entries(config.brokers.credentials).map(([role, c]) => ({ ...c, role: role as 'sp' }));
      const { configFile } = await writeMosquittoConfig({
        dir: path.join(paths.runDir, name),
        name: node.name,
        host: node.host,
        port: node.port,
        users,
        logDest: 'stdout',
      });
      services.push({
        name,
        command: 'mosquitto',
        args: ['-c', configFile],
        ready,
        outputFile: path.join(paths.logDir, `${name}.log`),
      });
    } else {
      services.push({ name, command: process.execPath, args: [mainOf('broker'), '--name', node.name], env, ready });
    }
  }
  for (const node of config.streamProcessor.nodes) {
    services.push({
      name: node.id,
      command: process.execPath,
      args: [mainOf('stream-processor'), '--node', node.id],
      env,
      ready: async () => (await spStatus(node.statusPort, SP_READY_PROBE_TIMEOUT_MS)) !== undefined,
    });
  }
  services.push({
    name: 'autoscaler',
    command: process.execPath,
    args: [mainOf('autoscaler')],
    env,
    ready: logged(path.join(paths.logDir, 'autoscaler.jsonl'), 'autoscaler.started'),
  });
  return services;
}
