import { lstatSync, readdirSync, type Stats } from 'node:fs';
import path from 'node:path';
import { brokerUsers, type MosquittoConfigFiles, writeMosquittoConfig } from '@faultline/broker';
import type { FaultlineConfig } from '@faultline/core';
import { UsageError } from './errors.js';

/** What `faultline config mosquitto` wrote, and how to start a Mosquitto with it. */
export interface MosquittoExport extends MosquittoConfigFiles {
  /** The broker node (`brokers.nodes[].name`) the files are for. */
  node: string;
  /** Where its listener listens: the node's host and port. */
  listener: string;
  /** `mosquitto -c <configFile>` */
  command: string;
}

export interface MosquittoExportOptions {
  /** A name of `brokers.nodes`. */
  node: string | undefined;
  /** The folder to write into (mode 0700; the files 0600); created if missing. */
  dir: string | undefined;
}

/**
 * The folder is made 0700 and its files written: an existing one must be
 * the caller's own, a real folder (not a link) and empty, so no file of
 * someone else's (an /etc folder, a link planted in /tmp) is changed or
 * overwritten. Missing: created.
 */
function refuseUnsafeDir(dir: string): void {
  let stat: Stats;
  try {
    stat = lstatSync(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  if (stat.isSymbolicLink() || !stat.isDirectory())
    throw new UsageError(`--dir ${dir} is not a folder (a link or a file): give a new folder`);
  if (process.getuid && stat.uid !== process.getuid())
    throw new UsageError(`--dir ${dir} belongs to another user: give a folder of your own, or a new one`);
  if (readdirSync(dir).length > 0)
    throw new UsageError(`--dir ${dir} is not empty: give a new folder (nothing there is overwritten)`);
}

/**
 * `faultline config mosquitto --node NAME --dir DIR`: the files of broker
 * node NAME for a Mosquitto its operator runs (`brokers.kind: external`,
 * README "External brokers"), the same writeMosquittoConfig the stack uses
 * for its own: `mosquitto.conf` (one listener on the node's host and port,
 * mqtts with `tls.mqtt`'s certificate when it is set, no anonymous clients),
 * `passwd` (the platform roles' accounts from `brokers.credentials`, hashed;
 * no member account) and `acl` (each role's topics, the members' `pattern`
 * lines). A password the configuration does not give is a ConfigError
 * naming its key; no password is printed.
 */
export async function exportMosquittoConfig(
  config: FaultlineConfig,
  options: MosquittoExportOptions,
): Promise<MosquittoExport> {
  const names = config.brokers.nodes.map((n) => n.name);
  if (options.node === undefined) throw new UsageError(`give --node NAME, one of: ${names.join(', ')}`);
  const node = config.brokers.nodes.find((n) => n.name === options.node);
  if (!node) {
    throw new UsageError(
      `no broker node ${JSON.stringify(options.node.slice(0, 64))} in brokers.nodes (configured: ${names.join(', ')})`,
    );
  }
  if (options.dir === undefined || options.dir === '') throw new UsageError('give --dir DIR, the folder to write into');
  const dir = path.resolve(options.dir);
  refuseUnsafeDir(dir);
  const files = await writeMosquittoConfig({
    dir,
    name: node.name,
    host: node.host,
    port: node.port,
    users: brokerUsers(config),
    ...(config.tls.mqtt ? { tls: config.tls.mqtt } : {}),
  });
  return {
    node: node.name,
    listener: `${node.host}:${node.port}`,
    ...files,
    command: `mosquitto -c ${files.configFile}`,
  };
}

/** The lines `faultline config mosquitto` prints without --json. */
export function describeMosquittoExport(written: MosquittoExport): string {
  return [
    `wrote ${written.configFile}, ${written.passwordFile} and ${written.aclFile} (broker ${written.node}, listener ${written.listener})`,
    `start it with: ${written.command}`,
    'its passwd holds the platform accounts only: members cannot log in to it (README "External brokers")',
  ].join('\n');
}
