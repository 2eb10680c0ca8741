import { withDefaults } from '@faultline/core';
import { BROKER_NODE_DEFAULTS } from './broker-node-options.js';
import type { BrokerUser } from './users.js';

/**
 * The switch that runs Mosquitto instead of aedes: the same users and the same
 * ACL (from @faultline/protocol), written in Mosquitto 2.x's file formats.
 */
export interface MosquittoConfigOptions {
  /** Folder for mosquitto.conf, passwd and acl; created if missing. */
  dir: string;
  /** The node's name in the pair, for the header comment. @default BROKER_NODE_DEFAULTS.name ('broker') */
  name?: string;
  /** @default BROKER_NODE_DEFAULTS.host ('127.0.0.1') */
  host?: string;
  /** A fixed port: Mosquitto has no way to report an ephemeral one. */
  port: number;
  users: readonly BrokerUser[];
  /** Where Mosquitto writes its log. @default 'stderr' */
  logDest?: 'stdout' | 'stderr';
  /**
   * The `user` option. Mosquitto started as root switches to this user before
   * it reads password_file and acl_file (checked with 2.0.11), so files in a
   * root-only temp folder become unreadable under the default `mosquitto` user.
   * @default 'root' when this process runs as root, else not written (ignored for non-root)
   */
  runAsUser?: string;
  /**
   * PEM files of the listener's certificate, key and CA: it then speaks MQTT
   * over TLS only (mqtts). @default undefined (plain TCP)
   */
  tls?: MosquittoTlsFiles;
}

export interface MosquittoTlsFiles {
  certFile: string;
  keyFile: string;
  caFile: string;
}

/** Every option set; `runAsUser` and `tls` stay undefined when their lines are not written. */
export type ResolvedMosquittoConfigOptions = Required<Omit<MosquittoConfigOptions, 'runAsUser' | 'tls'>> & {
  runAsUser: string | undefined;
  tls: MosquittoTlsFiles | undefined;
};

export function resolveMosquittoConfigOptions(input: MosquittoConfigOptions): ResolvedMosquittoConfigOptions {
  return withDefaults(
    {
      ...BROKER_NODE_DEFAULTS,
      logDest: 'stderr' as 'stdout' | 'stderr',
      runAsUser: process.getuid?.() === 0 ? 'root' : undefined,
      tls: undefined as MosquittoTlsFiles | undefined,
    },
    input,
  );
}
