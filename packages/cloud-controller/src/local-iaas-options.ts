import path from 'node:path';
import {
  type Clock,
  ConfigError,
  DEFAULTS,
  err,
  type Logger,
  type LogLevel,
  nullLogger,
  ok,
  REPO_ROOT,
  type Result,
  systemClock,
  USER_NAME_PATTERN,
  withDefaults,
} from '@faultline/core';
import { type AgentSettings, agentSettingsSchema } from '@faultline/protocol';
import type { DriverAgentSettings } from './agent-settings.js';
import type { Launcher } from './launcher.js';
import { linuxProcessTable, type ProcessTable } from './proc-table.js';
import { linuxSocketTable, type SocketTable } from './socket-table.js';
import { describeIssues, issuesOf, MemberSpecError } from './validate.js';

/** Options of the local driver: every field but runDir optional, resolved once by resolveLocalIaasOptions(). */
export interface LocalIaasOptions {
  /**
   * Folder of the members' own folders (`member-<id>`: working folder and
   * HOME of its processes, ready file, the agent's outbox); created, mode
   * 0700, or 0711 when members run as the member user, who must be able to
   * pass through every folder above it.
   */
  runDir: string;
  /**
   * What every member's cartridge agent is told (`agentSettingsFrom(config)`).
   * Needed to spawn; a driver that only adopts and terminates (a CLI stop, a
   * test's cleanup) goes without. @default none
   */
  agent?: DriverAgentSettings;
  /**
   * The platform's member key (`security.memberKeyFile`): each member is
   * spawned with its credential issued under it (`issueMemberCredential`).
   * Needed to spawn, like `agent`. @default none
   */
  memberKey?: Buffer;
  /**
   * Folder of the agents' Prometheus file_sd target files
   * (`agent-<memberId>.json`, README "Operations → Agent metrics"): the
   * driver's alone (created, mode 0755, files 0644). discover() makes it match
   * the live members: a file for each whose agent listens on the port it
   * recorded in its own folder, nothing else. @default `<runDir>/agent-targets`
   */
  agentTargetsDir?: string;
  /**
   * Folder of the members' logs, the platform's (created 0700): `member-<id>.jsonl`,
   * the JSON lines and crash traces of its workload and agent. @default `<runDir>/logs`
   */
  logsDir?: string;
  /**
   * Run as root, the driver starts every member as this unprivileged user,
   * created when missing (`cloudController.local.memberUser`); otherwise
   * members run as the driver's own user. @default DEFAULTS.memberUser ('faultline-member')
   */
  memberUser?: string;
  /** Address the workloads listen on. @default '127.0.0.1' */
  host?: string;
  /** @default process.execPath */
  nodePath?: string;
  /**
   * Folder the members' scripts are run from: a checkout, or a runtime copy of
   * one with the same layout (`cloudController.local.runtimeDir`; run as root
   * from a checkout the member user cannot reach, `faultline stack up` makes
   * one). @default this checkout (REPO_ROOT)
   */
  runtimeDir?: string;
  /** @default `<runtimeDir>/packages/cloud-controller/dist/workload-main.js` */
  workloadMain?: string;
  /** @default `<runtimeDir>/packages/cartridge-agent/dist/main.js` */
  agentMain?: string;
  /** Longest wait for a new member to report ready. @default 10_000 */
  spawnTimeoutMs?: number;
  /** Grace between SIGTERM and SIGKILL when terminate() names none. @default 5_000 */
  defaultGraceMs?: number;
  /** How often a spawning or stopping member is looked at. @default 50 */
  pollMs?: number;
  /** Longest wait for the kernel to remove a SIGKILLed group. @default 5_000 */
  killWaitMs?: number;
  /**
   * Longest wait for a member's workload to answer `GET /healthz` in probe();
   * later is `failing`. @default 2_000 (the cartridge agent's own probe timeout)
   */
  probeTimeoutMs?: number;
  /**
   * Longest wait in restartAgent() for the new agent a member's workload
   * starts on request (README "Autoscaler → Second witness"); later is
   * `failed`. @default DEFAULTS.agentRestartTimeoutMs (10 000)
   */
  agentRestartTimeoutMs?: number;
  /**
   * Most instance records one discover() looks at (`<runDir>/instances`),
   * and most entries of the agent target folder its sync looks at; the rest
   * are left for a later call, logged and counted. @default 10_000
   */
  discoverMaxRecords?: number;
  /** The members' log level. @default 'info' */
  memberLogLevel?: LogLevel;
  /** Workload latency for specs that name none. @default DEFAULTS.workloadLatencyMs (20) */
  defaultLatencyMs?: number;
  /** Where a member's PATH, LANG, LC_*, TZ, FORCE_COLOR and NO_COLOR come from: nothing else of it. @default process.env */
  env?: NodeJS.ProcessEnv;
  /** @default systemClock */
  clock?: Clock;
  /** @default nullLogger */
  logger?: Logger;
  /** @default linuxProcessTable (procfs) */
  processTable?: ProcessTable;
  /** Where an agent's listening sockets are looked up. @default linuxSocketTable (procfs) */
  socketTable?: SocketTable;
  /** @default processLauncher (node child processes) */
  launcher?: Launcher;
}

export interface LocalIaasCounters {
  spawned: number;
  spawnFailed: number;
  /** Stopped within the grace period. */
  terminated: number;
  /** Needed SIGKILL. */
  killed: number;
  adopted: number;
  /** Handed to adopt() but no longer running. */
  adoptedGone: number;
  /** Specs and instances refused as malformed. */
  invalidInput: number;
  /** Running instances of an earlier life found by discover() that the driver did not know. */
  discovered: number;
  /** Records discover() found of members no longer running (or of spawns never finished): stopped and forgotten. */
  discoveredGone: number;
  /** Records discover() skipped as unreadable or malformed (logged, left in place). */
  recordsInvalid: number;
  /** discover() calls that found more records than discoverMaxRecords. */
  discoverTruncated: number;
  /** Instance records that could not be written or removed (logged). */
  recordFailed: number;
  /** probe() answers of a running member whose workload did not answer 200 in time. */
  probesFailing: number;
  /** restartAgent() calls that ended with a new agent recorded (`restarted`). */
  agentsRestarted: number;
  /** restartAgent() calls of a running member that ended without one (`failed`). */
  agentRestartsFailed: number;
  /**
   * Writes and removals in the agent target folder that failed, a folder it
   * could not use, a socket table too large to read whole (each logged).
   */
  targetFileFailed: number;
  /** Agent target files written (a new one, or one that said something else). */
  targetsWritten: number;
  /** Entries removed from the agent target folder: stopped members', dead agents', anything else found there. */
  targetsRemoved: number;
  /** Members refused a target (a port file not a port, a port not its agent's), logged once per member and reason. */
  targetsRefused: number;
  /** Times the agent target folder was found not the platform's own and taken back (logged). */
  targetsDirRepaired: number;
  /** Syncs that found more entries in the agent target folder than discoverMaxRecords. */
  targetsDirTruncated: number;
}

export interface ResolvedLocalIaasOptions extends Required<Omit<LocalIaasOptions, 'agent' | 'launcher' | 'memberKey'>> {
  agent: DriverAgentSettings | undefined;
  memberKey: Buffer | undefined;
  launcher: Launcher | undefined;
}

/** The driver's options with every default filled in; a ConfigError names a bad member user. */
export function resolveLocalIaasOptions(input: LocalIaasOptions): ResolvedLocalIaasOptions {
  const runtimeDir = input.runtimeDir ?? REPO_ROOT;
  const options = withDefaults(
    {
      logsDir: path.join(input.runDir, 'logs'),
      agentTargetsDir: path.join(input.runDir, 'agent-targets'),
      memberUser: DEFAULTS.memberUser as string,
      host: '127.0.0.1',
      nodePath: process.execPath,
      runtimeDir,
      workloadMain: path.join(runtimeDir, 'packages/cloud-controller/dist/workload-main.js'),
      agentMain: path.join(runtimeDir, 'packages/cartridge-agent/dist/main.js'),
      spawnTimeoutMs: 10_000,
      defaultGraceMs: 5_000,
      pollMs: 50,
      killWaitMs: 5_000,
      probeTimeoutMs: 2_000,
      agentRestartTimeoutMs: DEFAULTS.agentRestartTimeoutMs as number,
      discoverMaxRecords: 10_000,
      memberLogLevel: 'info' as LogLevel,
      defaultLatencyMs: DEFAULTS.workloadLatencyMs as number,
      env: process.env,
      clock: systemClock,
      logger: nullLogger,
      processTable: linuxProcessTable,
      socketTable: linuxSocketTable,
    },
    input,
  );
  if (!USER_NAME_PATTERN.test(options.memberUser)) {
    throw ConfigError.forKey('memberUser', `${JSON.stringify(options.memberUser)} is not a user name`);
  }
  // Absolute: a member's processes run in its own folder, where a relative path would name something of the member's.
  const absolute = {
    runDir: path.resolve(options.runDir),
    logsDir: path.resolve(options.logsDir),
    agentTargetsDir: path.resolve(options.agentTargetsDir),
    runtimeDir: path.resolve(options.runtimeDir),
    workloadMain: path.resolve(options.workloadMain),
    agentMain: path.resolve(options.agentMain),
  };
  return { ...options, ...absolute, agent: input.agent, memberKey: input.memberKey, launcher: input.launcher };
}

/**
 * The agent settings a member is spawned with, checked at each spawn like the
 * rest of the spec: a bad setting refuses the spawn (FL_ERR_MEMBER_SPEC_INVALID,
 * which the autoscaler backs off from) rather than stopping the driver's owner.
 */
export function checkAgentSettings(agent: AgentSettings, memberId: string): Result<AgentSettings, MemberSpecError> {
  const parsed = agentSettingsSchema.safeParse(agent);
  if (parsed.success) return ok(parsed.data);
  return err(new MemberSpecError('member spec', describeIssues(issuesOf(parsed.error, 'agent')), memberId));
}
