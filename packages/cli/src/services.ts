import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { writeMosquittoConfig } from '@faultline/broker';
import { type FaultlineConfig, REPO_ROOT } from '@faultline/core';
import type { ServiceSpec } from './supervisor.js';

const dist = (pkg: string, file = 'main.js') => path.join(REPO_ROOT, 'packages', pkg, 'dist', file);

export function portAnswers(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.setTimeout(500);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/** Ready once the service's own JSON log holds a record with this message. */
function logged(file: string, message: string): () => Promise<boolean> {
  return async () => existsSync(file) && readFileSync(file, 'utf8').includes(`"message":"${message}"`);
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
      services.push({ name, command: process.execPath, args: [dist('broker'), '--name', node.name], env, ready });
    }
  }
  for (const node of config.streamProcessor.nodes) {
    services.push({
      name: node.id,
      command: process.execPath,
      args: [dist('stream-processor'), '--node', node.id],
      env,
      ready: async () => {
        try {
          const response = await fetch(`http://127.0.0.1:${node.statusPort}/status`, {
            signal: AbortSignal.timeout(500),
          });
          return response.ok;
        } catch {
          return false;
        }
      },
    });
  }
  services.push({
    name: 'autoscaler',
    command: process.execPath,
    args: [dist('autoscaler')],
    env,
    ready: logged(path.join(paths.logDir, 'autoscaler.jsonl'), 'autoscaler started'),
  });
  return services;
}
