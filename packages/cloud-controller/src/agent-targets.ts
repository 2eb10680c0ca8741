import { randomBytes } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { constants } from 'node:fs';
import { lstat, mkdir, open, opendir, rename, rmdir, unlink } from 'node:fs/promises';
import { BlockList, isIP } from 'node:net';
import path from 'node:path';
import type { Logger } from '@faultline/core';
import { agentMetricsAddress, isId, parseAgentMetricsPort } from '@faultline/protocol';
import type { LocalIaasCounters } from './local-iaas-options.js';
import type { LocalInstance } from './local-instance.js';
import { processState } from './member-processes.js';
import type { ProcessTable } from './proc-table.js';
import type { ListeningSocket, SocketListing, SocketTable } from './socket-table.js';

/*
 * The Prometheus file_sd target files of the members' agents (README
 * "Operations → Agent metrics"). The folder and every file in it are the
 * driver's: a member only records, in its own folder, the port its agent
 * listens on. Each sync makes the folder say exactly what the driver can
 * vouch for: one file per live member whose recorded port is a listening
 * socket of that member's recorded agent process, naming the configured
 * host, that port and the driver's own labels for the member. Anything else
 * in the folder (a dead agent's file, another name, a temp file, a link, a
 * folder) is removed.
 */

/** The name of a member's target file; file_sd globs `*.json` in the folder. */
export function agentTargetFileName(memberId: string): string {
  return `agent-${memberId}.json`;
}

/** The name of the file in a member's own folder its agent records its metrics port in. */
export const AGENT_METRICS_PORT_FILE = 'agent-metrics-port';

/** A port file holds a port and a newline; a larger file is not one. */
const MAX_PORT_FILE_BYTES = 16;
/** A target file of the driver's is a few hundred bytes. */
const MAX_TARGET_FILE_BYTES = 4_096;
/** The open descriptors of an agent looked at for its socket (an agent holds a few dozen). */
export const MAX_AGENT_DESCRIPTORS = 1_024;

/** The file_sd target group of a member's agent: its address and the driver's labels for the member. */
export function agentTargetGroup(address: string, member: LocalInstance): string {
  const labels = {
    member: member.memberId,
    cluster: member.clusterId,
    cluster_instance: member.clusterInstanceId,
    network_partition: member.networkPartitionId,
    partition: member.partitionId,
  };
  return `${JSON.stringify([{ targets: [address], labels }])}\n`;
}

/**
 * The port a member's port file records, undefined when there is none (its
 * agent has not listened yet, or serves no metrics), or why it is refused.
 * The file is the member's, so it is read as the ready file is: no link
 * followed, no FIFO blocked on, one link only, a few bytes at most.
 */
export async function readAgentPortFile(file: string): Promise<number | string | undefined> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? undefined : `its port file cannot be opened (${code})`;
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) return 'its port file is not a regular file';
    if (stat.nlink !== 1) return `its port file has ${stat.nlink} links`;
    const { bytesRead, buffer } = await handle.read(
      Buffer.alloc(MAX_PORT_FILE_BYTES + 1),
      0,
      MAX_PORT_FILE_BYTES + 1,
      0,
    );
    if (bytesRead > MAX_PORT_FILE_BYTES) return `its port file is larger than ${MAX_PORT_FILE_BYTES} bytes`;
    const port = parseAgentMetricsPort(buffer.toString('latin1', 0, bytesRead));
    return port.ok ? port.value : `its port file holds ${port.error}`;
  } finally {
    await handle.close();
  }
}

export interface AgentTargetsOptions {
  /** The targets folder (`agentTargetsDir`). */
  dir: string;
  /** The port file of a member (in its own folder). */
  portFileOf: (memberId: string) => string;
  /**
   * The configured `agent.metricsHost` when agents serve metrics; null when
   * they do not (`agent.metrics: false`): no member gets a target.
   */
  host: string | null;
  /** The driver's user: the folder and its files must be its own. Undefined: not checked. */
  platformUid: number | undefined;
  platformGid: number | undefined;
  /** Most entries of the folder one sync looks at; the rest are left for a later one. */
  maxEntries: number;
  table: ProcessTable;
  sockets: SocketTable;
  log: Logger;
  counters: LocalIaasCounters;
  /** False once the driver is closed: a sync under way then writes and removes nothing more. */
  isOpen: () => boolean;
}

export interface AgentTargetsSync {
  /** Members with a target file after it (written now or already right). */
  targets: string[];
  /** Entries removed from the folder. */
  removed: string[];
  /** Members refused a target, with why. */
  refused: Record<string, string>;
}

export interface AgentTargets {
  /**
   * Makes the folder match `live` (the members running now): a target file
   * for each whose agent's port checks out, nothing else. Members for which
   * `current` turns false meanwhile (a terminate began) get none. Never
   * throws: each failure is logged and counted.
   */
  sync(live: readonly LocalInstance[], current: (memberId: string) => boolean): Promise<AgentTargetsSync>;
  /** Removes a member's target file (a terminated member). Never throws. */
  remove(memberId: string): Promise<void>;
}

const errorCode = (error: unknown) => (error as NodeJS.ErrnoException).code ?? String(error);

/** The addresses a socket may be bound to for a target on `host`: the literal itself, or what a name resolves to. */
async function boundAddresses(host: string): Promise<BlockList | string> {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  const list = new BlockList();
  const family = isIP(bare);
  if (family !== 0) {
    list.addAddress(bare, family === 4 ? 'ipv4' : 'ipv6');
    return list;
  }
  try {
    for (const found of await lookup(bare, { all: true })) {
      list.addAddress(found.address, found.family === 4 ? 'ipv4' : 'ipv6');
    }
    return list;
  } catch (error) {
    return `agent.metricsHost ${host} does not resolve (${errorCode(error)})`;
  }
}

export function agentTargets(options: AgentTargetsOptions): AgentTargets {
  const { dir, log, counters } = options;
  /** The reason each member was last refused for, so a refusal is logged and counted once, not at every sync. */
  const refusals = new Map<string, string>();
  let running: Promise<AgentTargetsSync> | undefined;

  const failed = (op: string, fields: Record<string, unknown>) => {
    counters.targetFileFailed += 1;
    log.warn('agent target folder or file not updated', { event: 'local_iaas.target_file_failed', op, ...fields });
  };

  /**
   * The folder, the driver's own, mode 0755, created when missing. One left
   * by an earlier version (the member user's, which every member could write)
   * is taken back: its owner and mode are changed through a descriptor of the
   * folder itself (no link followed), and the sweep then removes what members
   * put in it. False when it cannot be made so (logged).
   */
  const prepareDir = async (): Promise<boolean> => {
    try {
      await mkdir(dir, { mode: 0o755 });
    } catch (error) {
      const code = errorCode(error);
      // ENOENT: no members' folder yet, so no member either.
      if (code === 'ENOENT') return false;
      if (code !== 'EEXIST') {
        failed('mkdir', { dir, error });
        return false;
      }
    }
    let handle: Awaited<ReturnType<typeof open>> | undefined;
    try {
      handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
      const stat = await handle.stat();
      const owner = { uid: options.platformUid, gid: options.platformGid };
      if (owner.uid !== undefined && owner.gid !== undefined && (stat.uid !== owner.uid || stat.gid !== owner.gid)) {
        await handle.chown(owner.uid, owner.gid);
        // Another owner (the member user, as an earlier version made it) is news; only a group (a setgid parent) is not.
        if (stat.uid !== owner.uid) {
          counters.targetsDirRepaired += 1;
          log.warn('agent target folder was not the platform’s: taken back', {
            event: 'local_iaas.target_dir_repaired',
            dir,
            uid: stat.uid,
            gid: stat.gid,
          });
        }
      }
      // Whatever the umask made it or anyone changed it to: Prometheus lists it, only the driver writes it.
      if ((stat.mode & 0o7777) !== 0o755) {
        await handle.chmod(0o755);
        log.debug('agent target folder mode set', {
          event: 'local_iaas.target_dir_mode',
          dir,
          was: stat.mode & 0o7777,
        });
      }
      return true;
    } catch (error) {
      // ELOOP: a link; ENOTDIR: a file. Not ours to remove: said, and no target is written.
      failed('prepare', { dir, error });
      return false;
    } finally {
      await handle?.close();
    }
  };

  const refuse = (memberId: string, reason: string, fields: Record<string, unknown> = {}) => {
    if (refusals.get(memberId) === reason) return;
    refusals.set(memberId, reason);
    counters.targetsRefused += 1;
    log.warn('agent metrics target refused', { event: 'local_iaas.target_refused', memberId, reason, ...fields });
  };

  /** The text already in a member's target file when it is exactly the driver's own file; else undefined. */
  const currentText = async (file: string): Promise<string | undefined> => {
    let handle: Awaited<ReturnType<typeof open>>;
    try {
      handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch {
      return undefined;
    }
    try {
      const stat = await handle.stat();
      if (!stat.isFile() || stat.nlink !== 1 || (stat.mode & 0o7777) !== 0o644) return undefined;
      if (options.platformUid !== undefined && stat.uid !== options.platformUid) return undefined;
      const { bytesRead, buffer } = await handle.read(
        Buffer.alloc(MAX_TARGET_FILE_BYTES + 1),
        0,
        MAX_TARGET_FILE_BYTES + 1,
        0,
      );
      return bytesRead > MAX_TARGET_FILE_BYTES ? undefined : buffer.toString('utf8', 0, bytesRead);
    } finally {
      await handle.close();
    }
  };

  /**
   * Writes `text` as `name` whole or not at all: to a new file beside it
   * (O_EXCL and O_NOFOLLOW: never an existing file or a link), mode 0644
   * whatever the umask, then renamed over whatever had the name (rename
   * replaces a link, never follows it).
   */
  const writeTarget = async (name: string, text: string): Promise<boolean> => {
    const file = path.join(dir, name);
    const aside = path.join(dir, `.${name}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
    try {
      const handle = await open(
        aside,
        constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
        0o644,
      );
      try {
        await handle.chmod(0o644);
        await handle.writeFile(text);
      } finally {
        await handle.close();
      }
      // A folder under the name (left by an earlier version) cannot be renamed over: an empty one goes first.
      if ((await lstat(file).catch(() => undefined))?.isDirectory()) await rmdir(file);
      await rename(aside, file);
      return true;
    } catch (error) {
      await unlink(aside).catch(() => {});
      failed('write', { file, error });
      return false;
    }
  };

  /** Removes one entry of the folder: a file or link is unlinked (never followed), a folder only when empty. */
  const removeEntry = async (name: string, reason: string): Promise<boolean> => {
    const file = path.join(dir, name);
    try {
      try {
        await unlink(file);
      } catch (error) {
        const code = errorCode(error);
        if (code === 'ENOENT') return false;
        if (code !== 'EISDIR' && code !== 'EPERM') throw error;
        await rmdir(file);
      }
      counters.targetsRemoved += 1;
      log.info('agent target folder entry removed', { event: 'local_iaas.target_removed', name, reason });
      return true;
    } catch (error) {
      failed('remove', { file, reason, error });
      return false;
    }
  };

  /** Whether `port` is a listening socket among the agent's own descriptors, bound where its target says. */
  const ownsPort = (socket: ListeningSocket, port: number, inodes: Set<number>, bound: BlockList) =>
    socket.port === port && inodes.has(socket.inode) && bound.check(socket.address, socket.family);

  const run = async (live: readonly LocalInstance[], current: (memberId: string) => boolean) => {
    const result: AgentTargetsSync = { targets: [], removed: [], refused: {} };
    if (!(await prepareDir())) return result;
    const wanted = new Map<string, string>();
    const host = options.host;
    const bound = host === null ? undefined : await boundAddresses(host);
    let listing: SocketListing | undefined;
    for (const member of live) {
      const { memberId } = member;
      // Ids are checked when a member is spawned or read back; a name made of anything else is never written.
      if (!isId(memberId) || bound === undefined || !current(memberId)) continue;
      const refused = (reason: string, fields: Record<string, unknown> = {}) => {
        result.refused[memberId] = reason;
        refuse(memberId, reason, fields);
      };
      if (typeof bound === 'string') {
        refused(bound);
        continue;
      }
      const { handle } = member;
      const agent = handle.agent;
      if (processState(options.table, handle, agent) === 'gone' || !agent) {
        refused('its agent is not running');
        continue;
      }
      const port = await readAgentPortFile(options.portFileOf(memberId));
      // No port recorded: its agent does not serve metrics (yet). Nothing to refuse, nothing to name.
      if (port === undefined) {
        refusals.delete(memberId);
        continue;
      }
      if (typeof port === 'string') {
        refused(port);
        continue;
      }
      const inodes = await options.sockets.socketInodes(agent.pid, MAX_AGENT_DESCRIPTORS);
      // Read after the descriptors: the pid still names the same agent, not a process that took it meanwhile.
      if (processState(options.table, handle, agent) === 'gone') {
        refused('its agent is not running');
        continue;
      }
      if (typeof inodes === 'string') {
        refused(`its agent's sockets cannot be told: ${inodes}`, { port, agentPid: agent.pid });
        continue;
      }
      if (!listing) {
        listing = await options.sockets.listening();
        if (listing.truncated) {
          counters.targetFileFailed += 1;
          log.warn('socket table larger than the driver reads: agents whose socket is past it get no target', {
            event: 'local_iaas.socket_table_truncated',
          });
        }
      }
      const sockets = listing.sockets;
      if (!sockets.some((socket) => ownsPort(socket, port, inodes, bound))) {
        refused(`port ${port} is not a socket its agent listens on at ${host}`, { port, agentPid: agent.pid });
        continue;
      }
      refusals.delete(memberId);
      wanted.set(agentTargetFileName(memberId), agentTargetGroup(agentMetricsAddress(host as string, port), member));
    }
    for (const [name, text] of wanted) {
      const memberId = name.slice('agent-'.length, -'.json'.length);
      // A terminate that began meanwhile removes the file itself: none is written behind it.
      if (!current(memberId)) {
        wanted.delete(name);
        continue;
      }
      if ((await currentText(path.join(dir, name))) === text) {
        result.targets.push(memberId);
        continue;
      }
      if (await writeTarget(name, text)) {
        counters.targetsWritten += 1;
        result.targets.push(memberId);
        log.info('agent metrics target written', {
          event: 'local_iaas.target_written',
          memberId,
          target: JSON.parse(text)[0].targets[0],
        });
      } else {
        wanted.delete(name);
      }
    }
    // A driver closed meanwhile (its node stepped down) leaves the folder to the one that acts now.
    if (!options.isOpen()) return result;
    // Then the sweep: whatever the folder holds but the files just vouched for.
    const liveIds = new Set(live.map((m) => m.memberId));
    let folder: Awaited<ReturnType<typeof opendir>>;
    try {
      folder = await opendir(dir);
    } catch (error) {
      failed('list', { dir, error });
      return result;
    }
    const stale: [string, string][] = [];
    let seen = 0;
    try {
      for (let entry = await folder.read(); entry !== null; entry = await folder.read()) {
        if (++seen > options.maxEntries) {
          counters.targetsDirTruncated += 1;
          log.warn('more entries in the agent target folder than one sync looks at: the rest wait for the next', {
            event: 'local_iaas.target_dir_truncated',
            dir,
            maxEntries: options.maxEntries,
          });
          break;
        }
        const { name } = entry;
        if (wanted.has(name) && entry.isFile()) continue;
        const named = /^agent-(.+)\.json$/.exec(name)?.[1];
        const reason = name.endsWith('.tmp')
          ? 'a temp file'
          : named === undefined || !isId(named)
            ? 'not a target file of the driver’s'
            : !liveIds.has(named)
              ? 'its member is not running'
              : 'its member has no valid target';
        stale.push([name, reason]);
      }
    } finally {
      await folder.close().catch(() => {});
    }
    // Only a sync writes here, one at a time, so nothing listed as stale was written since.
    for (const [name, reason] of stale) if (await removeEntry(name, reason)) result.removed.push(name);
    for (const memberId of refusals.keys()) if (!liveIds.has(memberId)) refusals.delete(memberId);
    return result;
  };

  return {
    sync: (live, current) => {
      // One at a time: a discover() while one runs gets that one's result.
      running ??= run(live, current)
        .catch((error: unknown) => {
          failed('sync', { dir, error });
          return { targets: [], removed: [], refused: {} };
        })
        .finally(() => {
          running = undefined;
        });
      return running;
    },
    remove: async (memberId) => {
      refusals.delete(memberId);
      const file = path.join(dir, agentTargetFileName(memberId));
      try {
        await unlink(file);
        counters.targetsRemoved += 1;
      } catch (error) {
        if (errorCode(error) !== 'ENOENT') failed('remove', { file, error });
      }
    },
  };
}
