import { closeSync, constants, openSync, readSync } from 'node:fs';
import { open, readFile, rename } from 'node:fs/promises';
import path from 'node:path';
import { type Logger, nullLogger } from '@faultline/core';
import { type CredentialIdentity, issueMemberCredential, memberBrokerAccount } from '@faultline/protocol';
import { MEMBER_ACCOUNTS_MARKER, MOSQUITTO_PID_FILE, mosquittoPasswordHash } from './mosquitto-config.js';

export interface MosquittoMemberAccountsOptions {
  /** Each Mosquitto broker's folder (writeMosquittoConfig's `dir`): its passwd, mosquitto.conf and pid file. */
  dirs: readonly string[];
  /** The platform's member key (`security.memberKeyFile`): a member's password is its credential. */
  memberKey: Buffer;
  /** Platform user names (`brokers.credentials`): a member with one of these ids gets no account. */
  reservedUsernames: readonly string[];
  /** @default nullLogger */
  logger?: Logger;
}

/** What a sync did, for tests and logs. */
export interface MemberAccountsCounters {
  /** Password files rewritten (the member set of a broker changed, or its last reload failed). */
  written: number;
  /** SIGHUPs sent (Mosquitto then rereads its password_file). */
  reloads: number;
  /** Brokers a sync could not update (file or signal failed); the next sync writes and signals again. */
  failures: number;
  /** Members refused an account because their id is a platform user name. */
  reserved: number;
}

/**
 * Members' broker accounts on Mosquitto (README "Trust boundary"). aedes checks
 * a member's login with the member key directly; Mosquitto can only read a
 * password_file, so this keeps that file's member part equal to the members
 * the driver runs: each member's user name is its member id and its password
 * its credential, hashed as mosquitto_passwd does. The acl_file's `pattern`
 * lines (`%u`) then bind each account to `instance/status/<memberId>/…`.
 *
 * A changed file is replaced atomically (0600) and Mosquitto is told with
 * SIGHUP, to the pid of its pid file only when that process is the Mosquitto
 * started with this folder's config (a reused pid is never signalled). A
 * broker that is down simply reads the file when it starts.
 */
export class MosquittoMemberAccounts {
  readonly counters: MemberAccountsCounters = { written: 0, reloads: 0, failures: 0, reserved: 0 };
  /** `memberId\ncredential` → its password_file line (hashing costs ~0.1 ms: each member once). */
  private readonly lines = new Map<string, string>();
  private readonly log: Logger;
  private readonly reserved: ReadonlySet<string>;
  /**
   * Folders whose file this process wrote and whose Mosquitto (if one runs)
   * took the SIGHUP: the first sync of each writes whatever the file holds (a
   * new key changes every password), and a write or signal that failed is
   * done again by the next sync even when the member set is unchanged.
   */
  private readonly inStep = new Set<string>();
  /** Syncs run one at a time, each with the newest set: a slow file write never interleaves with the next. */
  private running: Promise<void> = Promise.resolve();

  constructor(private readonly options: MosquittoMemberAccountsOptions) {
    this.log = (options.logger ?? nullLogger).child({ component: 'mosquitto-member-accounts' });
    this.reserved = new Set(options.reservedUsernames);
  }

  /** Makes the brokers accept exactly these members (level-triggered: the whole set each time). */
  sync(members: readonly CredentialIdentity[]): Promise<void> {
    const next = this.running.then(() => this.syncNow(members));
    this.running = next.catch(() => undefined);
    return next;
  }

  private async syncNow(members: readonly CredentialIdentity[]): Promise<void> {
    const wanted = new Map<string, string>();
    for (const member of members) {
      if (this.reserved.has(member.memberId)) {
        this.counters.reserved += 1;
        this.log.warn('member id is a platform user name: no broker account', {
          event: 'broker.member_account_reserved',
          memberId: member.memberId,
        });
        continue;
      }
      const { username, password } = memberBrokerAccount(
        member.memberId,
        issueMemberCredential(this.options.memberKey, member),
      );
      const key = `${username}\n${password}`;
      let line = this.lines.get(key);
      if (line === undefined) {
        line = `${username}:${mosquittoPasswordHash(password)}`;
        this.lines.set(key, line);
      }
      wanted.set(key, line);
    }
    // Forget the hashes of members gone, so the cache is bounded by the live set.
    for (const key of this.lines.keys()) if (!wanted.has(key)) this.lines.delete(key);
    const memberPart = [...wanted.values()].sort();
    for (const dir of this.options.dirs) await this.syncBroker(dir, memberPart);
  }

  private async syncBroker(dir: string, memberLines: readonly string[]): Promise<void> {
    const file = path.join(dir, 'passwd');
    try {
      const current = await readFile(file, 'utf8');
      const marker = current.indexOf(`${MEMBER_ACCOUNTS_MARKER}\n`);
      const platform = marker === -1 ? current : current.slice(0, marker);
      const currentMembers = marker === -1 ? [] : membersOf(current.slice(marker));
      if (this.inStep.has(dir) && sameUsers(currentMembers, memberLines)) return;
      this.inStep.delete(dir);
      const text = `${platform}${MEMBER_ACCOUNTS_MARKER}\n${memberLines.map((line) => `${line}\n`).join('')}`;
      await writeAtomically(file, text);
      this.counters.written += 1;
      if (this.reload(dir)) this.counters.reloads += 1;
      this.inStep.add(dir);
      this.log.info('member broker accounts updated', {
        event: 'broker.member_accounts_updated',
        dir,
        members: memberLines.length,
      });
    } catch (error) {
      this.counters.failures += 1;
      this.log.warn('member broker accounts not updated; the next sync tries again', {
        event: 'broker.member_accounts_failed',
        dir,
        error,
      });
    }
  }

  /**
   * SIGHUP to this folder's Mosquitto, if it runs; false when there is none.
   * Throws when the signal cannot be sent (the caller counts a failure).
   */
  private reload(dir: string): boolean {
    const pid = readPid(path.join(dir, MOSQUITTO_PID_FILE));
    if (pid === undefined) return false;
    // writeMosquittoConfig's paths are absolute, and so is what `mosquitto -c` is given.
    const configFile = path.join(dir, 'mosquitto.conf');
    const cmdline = readHead(`/proc/${pid}/cmdline`, MAX_CMDLINE_BYTES)?.split('\0') ?? [];
    const isOurs = path.basename(cmdline[0] ?? '') === 'mosquitto' && cmdline.includes(configFile);
    if (!isOurs) return false;
    process.kill(pid, 'SIGHUP');
    return true;
  }
}

/** The user:hash lines after the marker (the marker line itself and any other comment skipped). */
function membersOf(part: string): string[] {
  return part.split('\n').filter((line) => line !== '' && !line.startsWith('#'));
}

/**
 * Whether two member parts hold the same accounts. Hashes are salted, so
 * lines are compared by user name; a changed credential (a new member key)
 * comes with a new process, whose first sync writes every line.
 */
function sameUsers(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const users = new Set(a.map((line) => line.slice(0, line.indexOf(':'))));
  return b.every((line) => users.has(line.slice(0, line.indexOf(':'))));
}

/** `mosquitto -c <configFile>` and more: enough for any path (PATH_MAX is 4096). */
const MAX_CMDLINE_BYTES = 16 * 1024;
/** Linux's PID_MAX_LIMIT (2^22). */
const MAX_PID = 4_194_304;

/**
 * The first `maxBytes` bytes of `file` as UTF-8; undefined when it cannot be
 * read. Never reads more, and never blocks (a FIFO in its place reads as nothing).
 */
function readHead(file: string, maxBytes: number): string | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
    const buffer = Buffer.alloc(maxBytes);
    let length = 0;
    while (length < maxBytes) {
      const n = readSync(fd, buffer, length, maxBytes - length, null);
      if (n === 0) break;
      length += n;
    }
    return buffer.toString('utf8', 0, length);
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** The pid a pid file names: decimal digits and a line break, 2..PID_MAX_LIMIT; anything else is no pid. */
function readPid(file: string): number | undefined {
  const text = readHead(file, 16)?.trim();
  if (text === undefined || !/^[0-9]{1,7}$/.test(text)) return undefined;
  const pid = Number(text);
  return pid > 1 && pid <= MAX_PID ? pid : undefined;
}

/** Writes a sibling temp file (0600) and renames it over `file`: Mosquitto never reads half a file. */
async function writeAtomically(file: string, text: string): Promise<void> {
  const temp = `${file}.${process.pid}.tmp`;
  const handle = await open(temp, 'w', 0o600);
  try {
    await handle.chmod(0o600);
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temp, file);
}
