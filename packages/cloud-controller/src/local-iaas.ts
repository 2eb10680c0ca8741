import path from 'node:path';
import { ClosedError, ConfigError, DEFAULTS, FaultlineError, mkdirPrivate, once, sleep } from '@faultline/core';
import { encodeMemberEnv, issueMemberCredential, memberIdentityOf } from '@faultline/protocol';
import { memberAgentSettings } from './agent-settings.js';
import { AGENT_METRICS_PORT_FILE, type AgentTargetsSync, agentTargets } from './agent-targets.js';
import { getHealthz, getStatus } from './healthz-probe.js';
import type {
  AdoptResult,
  AgentRestartResult,
  Iaas,
  MemberInstance,
  MemberSpec,
  ProbeAnswer,
  TerminateOptions,
  TerminateResult,
} from './iaas.js';
import {
  type InstanceRecord,
  listRecords,
  memberIdOfRecord,
  RECORDS_FOLDER,
  readRecord,
  recordName,
  removeRecord,
  writeRecord,
} from './instance-records.js';
import {
  AGENT_RESTART_SIGNAL,
  DRAIN_SIGNAL,
  processLauncher,
  type ReadyReport,
  readReadyFile,
  SpawnError,
} from './launcher.js';
import {
  checkAgentSettings,
  type LocalIaasCounters,
  type LocalIaasOptions,
  resolveLocalIaasOptions,
} from './local-iaas-options.js';
import { checkInstance, goneReason, type LocalInstance } from './local-instance.js';
import { type LocalHandle, ownsGroup, type ProcessRef, processState, stopGroup } from './member-processes.js';
import { assertProcfs, linuxProcessTable } from './proc-table.js';
import { type MemberSpecError, validateSpec } from './validate.js';

export interface LocalIaas extends Iaas {
  readonly counters: Readonly<LocalIaasCounters>;
  /**
   * Makes the agent target folder match the members running now (README
   * "Operations → Agent metrics"); discover() runs it after each listing. A
   * driver without agent settings leaves the folder alone. Never rejects.
   */
  syncAgentTargets(): Promise<AgentTargetsSync>;
}

export class MemberExistsError extends FaultlineError {
  constructor(memberId: string) {
    super('FL_ERR_MEMBER_EXISTS', `member ${memberId} already exists`, { context: { memberId } });
  }
}

/**
 * The only variables of the driver's environment a member gets, besides the
 * member environment (`encodeMemberEnv`): where programs are and how text and
 * time are shown. Everything else (DATABASE_URL, FAULTLINE_*, *_PASSWORD_FILE,
 * NODE_OPTIONS, whatever the platform's user has set) stays with the platform.
 */
const MEMBER_PASSED_ENV: readonly string[] = [
  'PATH',
  'LANG',
  'LC_ALL',
  'LC_CTYPE',
  'LC_MESSAGES',
  'TZ',
  'FORCE_COLOR',
  'NO_COLOR',
];

/**
 * While restartAgent() waits for the new agent, the request is sent again this
 * often: a workload that had not yet seen its agent exit when the first came
 * answers the next (a request when the agent runs starts nothing).
 */
const AGENT_RESTART_RESEND_MS = 1_000;

/** PATH for a member when the driver has none. */
const DEFAULT_PATH = '/usr/local/bin:/usr/bin:/bin';

/** A member's environment but the member variables: the allow-listed few of `base`, and HOME its own folder. */
function memberBaseEnv(base: NodeJS.ProcessEnv, home: string): Record<string, string> {
  const env: Record<string, string> = { PATH: DEFAULT_PATH };
  for (const key of MEMBER_PASSED_ENV) {
    const value = base[key];
    if (value !== undefined && value !== '') env[key] = value;
  }
  env.HOME = home;
  return env;
}

/**
 * The local-process driver (README "Members: cloud controller, workload and
 * cartridge agent"): every member is its own process group of two processes,
 * the workload (group leader) and its cartridge agent. Liveness is the
 * workload's pid *and* its start time, so a reused pid is never taken for a
 * member. Run as root, members run as `memberUser` with an allow-listed
 * environment and a folder of their own (README "What members can reach").
 *
 * Every member it spawns is recorded in `<runDir>/instances` (see
 * instance-records.ts) before its processes start, so discover() in a later
 * life finds it even when no registry row names it.
 *
 * The Prometheus target files of the members' agents are the driver's too
 * (agent-targets.ts): an agent only records its port in its own folder, and
 * each discover() writes a target for a member only when that port is a
 * socket its recorded agent process listens on.
 */
export function createLocalIaas(input: LocalIaasOptions): LocalIaas {
  const options = resolveLocalIaasOptions(input);
  const { clock, processTable: table } = options;
  if (table === linuxProcessTable) assertProcfs(table);
  const log = options.logger.child({ component: 'local-iaas' });
  const launcher =
    options.launcher ??
    processLauncher({
      nodePath: options.nodePath,
      workloadMain: options.workloadMain,
      agentMain: options.agentMain,
      memberUser: options.memberUser,
      memberReads: [
        ...(options.agent?.thriftCaFile ? [{ path: options.agent.thriftCaFile, what: 'the Thrift CA file' }] : []),
        ...(options.agent?.mqttCaFile ? [{ path: options.agent.mqttCaFile, what: 'the MQTT CA file' }] : []),
      ],
      clock,
      log,
      spawnTimeoutMs: options.spawnTimeoutMs,
      pollMs: options.pollMs,
    });
  const counters: LocalIaasCounters = {
    spawned: 0,
    spawnFailed: 0,
    terminated: 0,
    killed: 0,
    adopted: 0,
    adoptedGone: 0,
    invalidInput: 0,
    discovered: 0,
    discoveredGone: 0,
    recordsInvalid: 0,
    discoverTruncated: 0,
    recordFailed: 0,
    probesFailing: 0,
    agentsRestarted: 0,
    agentRestartsFailed: 0,
    targetFileFailed: 0,
    targetsWritten: 0,
    targetsRemoved: 0,
    targetsRefused: 0,
    targetsDirRepaired: 0,
    targetsDirTruncated: 0,
  };
  const recordsDir = path.join(options.runDir, RECORDS_FOLDER);
  /** Records must be the platform's own: written by this user, never by a member. */
  const platformUid = process.geteuid?.();
  const members = new Map<string, LocalInstance>();
  const spawning = new Set<string>();
  const stopping = new Map<string, Promise<TerminateResult>>();
  const restarting = new Map<string, Promise<AgentRestartResult>>();
  let closed = false;

  const ensureOpen = () => {
    if (closed) throw new ClosedError('local iaas');
  };

  const stop = (instance: { handle: LocalHandle }, graceMs: number) =>
    stopGroup(instance.handle, { table, clock, log, graceMs, pollMs: options.pollMs, killWaitMs: options.killWaitMs });

  /** Forgets a member's record; a failure is logged and counted (discover() finds the member gone later). */
  const unrecord = (memberId: string) => {
    const problem = removeRecord(recordsDir, memberId);
    if (problem === undefined) return;
    counters.recordFailed += 1;
    log.warn('instance record not removed', { event: 'local_iaas.record_failed', memberId, op: 'remove', problem });
  };

  /** The folder of a member's own files, its processes' working folder and HOME. */
  const workDirOf = (memberId: string) => path.join(options.runDir, `member-${memberId}`);

  const targets = agentTargets({
    dir: options.agentTargetsDir,
    portFileOf: (memberId) => path.join(workDirOf(memberId), AGENT_METRICS_PORT_FILE),
    host:
      options.agent?.metrics === false ? null : (options.agent?.metricsHost ?? (DEFAULTS.agentMetricsHost as string)),
    platformUid,
    platformGid: process.getegid?.(),
    maxEntries: options.discoverMaxRecords,
    table,
    sockets: options.socketTable,
    log,
    counters,
    isOpen: () => !closed,
  });

  /** Removes the target file of a member that no longer runs (a failure is logged and counted). */
  const removeTarget = (memberId: string) => targets.remove(memberId);

  /** The members it knows whose workload still runs (or is stopped). */
  const liveMembers = () =>
    [...members.values()].filter(
      (instance) => processState(table, instance.handle, instance.handle.workload) !== 'gone',
    );

  /** A member a target may be written for: known, not being stopped, the driver open. */
  const targetable = (memberId: string) => members.has(memberId) && !stopping.has(memberId) && !closed;

  const syncAgentTargets = async (): Promise<AgentTargetsSync> =>
    // No agent settings (a driver that only adopts and terminates): the folder is left to the driver that spawns.
    options.agent === undefined || closed
      ? { targets: [], removed: [], refused: {} }
      : targets.sync(
          liveMembers().filter((instance) => targetable(instance.memberId)),
          targetable,
        );

  /** Records a member in its current state; false (logged, counted) when the write failed. */
  const record = (entry: InstanceRecord): boolean => {
    try {
      writeRecord(recordsDir, entry);
      return true;
    } catch (error) {
      counters.recordFailed += 1;
      log.warn('instance record not written', {
        event: 'local_iaas.record_failed',
        memberId: entry.memberId,
        op: 'write',
        error,
      });
      return false;
    }
  };

  /**
   * A member id an earlier life recorded whose instance still runs: spawning
   * it again would overwrite the record of a running member and lose it.
   */
  const recordedRunning = async (memberId: string): Promise<boolean> => {
    const found = await readRecord(path.join(recordsDir, recordName(memberId)), platformUid);
    return found.ok && found.record.handle !== null && ownsGroup(table, found.record.handle);
  };

  const spawn = async (spec: MemberSpec): Promise<MemberInstance> => {
    ensureOpen();
    const checked = validateSpec(spec);
    const refuse: (error: MemberSpecError) => never = (error) => {
      counters.invalidInput += 1;
      log.warn('member spec refused', {
        event: 'local_iaas.spec_refused',
        memberId: error.context.memberId,
        issues: error.issues,
      });
      throw error;
    };
    if (!checked.ok) refuse(checked.error);
    if (!options.agent) throw ConfigError.forKey('agent', 'the local driver needs agent settings to spawn a member');
    if (!options.memberKey) {
      throw ConfigError.forKey('security.memberKeyFile', 'the local driver needs the member key to spawn a member');
    }
    const { memberId, workload: workloadSpec } = checked.value;
    // Its own cluster's probes (README "Probes"), checked with the rest: a bad one refuses the spawn.
    const agentChecked = checkAgentSettings(memberAgentSettings(options.agent, checked.value.clusterId), memberId);
    if (!agentChecked.ok) refuse(agentChecked.error);
    const agentSettings = agentChecked.value;
    if (members.has(memberId) || spawning.has(memberId)) throw new MemberExistsError(memberId);
    spawning.add(memberId);
    /** The workload's group once it has a pid: what a failed spawn must stop. */
    let started: LocalHandle | undefined;
    try {
      // Still running from an earlier life (discover() finds it): never started twice, never unrecorded.
      if (await recordedRunning(memberId)) throw new MemberExistsError(memberId);
      // Platform folders: 0700 when created here (the launcher opens runDir to the member user as far as needed).
      mkdirPrivate(options.runDir);
      mkdirPrivate(options.logsDir);
      // Everything the member writes is in its own folder; the prefix keeps it apart from a `logs` folder in runDir.
      const workDir = workDirOf(memberId);
      const readyFile = path.join(workDir, 'ready.json');
      const env = {
        ...memberBaseEnv(options.env, workDir),
        ...encodeMemberEnv({
          member: checked.value,
          // Issued here and handed to the member's processes only: never in the instance, the registry or a log.
          credential: issueMemberCredential(options.memberKey, checked.value),
          agent: agentSettings,
          workload: {
            host: options.host,
            latencyMs: workloadSpec?.latencyMs ?? options.defaultLatencyMs,
            readyFile,
            agentMain: options.agentMain,
          },
          outboxDir: path.join(workDir, 'outbox'),
          // README "Operations → Agent metrics": its agent records its port there; the driver names the target.
          metricsPortFile: agentSettings.metrics === false ? undefined : path.join(workDir, AGENT_METRICS_PORT_FILE),
          // No log folder: the member logs JSON lines to stdout, the file below, which the driver opens.
          logDir: undefined,
          logLevel: options.memberLogLevel,
        }),
      };
      // The platform's file in the platform's logs folder; `faultline logs --service member-<id>` shows it.
      const outputFile = path.join(options.logsDir, `member-${memberId}.jsonl`);
      const entry: InstanceRecord = {
        ...memberIdentityOf(checked.value),
        cartridgeType: checked.value.cartridgeType,
        driver: 'local',
        spawnedAt: clock.now(),
        address: null,
        handle: null,
      };
      // Recorded before any process starts: a spawn that fails here starts nothing (the throw is a SpawnError below).
      writeRecord(recordsDir, entry);
      const onStarted = (pid: number) => {
        // The same tick as the spawn: the record names the group before the driver could die.
        const stat = table.stat(pid);
        started = {
          bootId: table.bootId(),
          pgid: pid,
          workload: { pid, startTime: stat?.startTime ?? 0 },
          agent: null,
        };
        entry.handle = started;
        writeRecord(recordsDir, entry);
      };
      const report = await launcher.launch({ memberId, env, workDir, readyFile, outputFile, onStarted });
      const workloadStat = table.stat(report.pid);
      const agentStat = table.stat(report.agentPid);
      const instance: LocalInstance = {
        ...memberIdentityOf(checked.value),
        cartridgeType: checked.value.cartridgeType,
        driver: 'local',
        spawnedAt: entry.spawnedAt,
        address: { host: options.host, port: report.port },
        handle: {
          bootId: table.bootId(),
          pgid: report.pid,
          workload: { pid: report.pid, startTime: workloadStat?.startTime ?? 0 },
          agent: agentStat ? { pid: report.agentPid, startTime: agentStat.startTime } : null,
        },
      };
      // The workload must lead its own group, or terminate would miss its agent.
      const problem = !workloadStat
        ? 'workload exited right after reporting ready'
        : workloadStat.pgid !== report.pid
          ? `workload is not a group leader (pgid ${workloadStat.pgid})`
          : !agentStat || agentStat.pgid !== report.pid
            ? `cartridge agent exited at once or left the group (see ${outputFile})`
            : closed
              ? 'the driver was closed meanwhile'
              : undefined;
      started = instance.handle;
      if (problem) throw new SpawnError(memberId, problem);
      // A record without its address is still found (discover() reads the ready file): a failed write is no failed spawn.
      record(instance);
      started = undefined;
      members.set(memberId, instance);
      counters.spawned += 1;
      log.info('member spawned', {
        event: 'local_iaas.member_spawned',
        memberId,
        pgid: report.pid,
        agentPid: report.agentPid,
        port: report.port,
      });
      return structuredClone(instance);
    } catch (error) {
      // Whatever of it started is stopped; its record goes with it, unless something of it is stuck.
      const outcome = started ? await stop({ handle: started }, 0) : 'already-gone';
      if (outcome !== 'stuck' && !(error instanceof MemberExistsError)) {
        unrecord(memberId);
        await removeTarget(memberId);
      }
      counters.spawnFailed += 1;
      log.error('member spawn failed', { event: 'local_iaas.spawn_failed', memberId, error });
      // A folder that cannot be created, a custom launcher's failure: still a failed spawn, with its code.
      if (error instanceof FaultlineError) throw error;
      throw new SpawnError(memberId, error instanceof Error ? error.message : String(error), error);
    } finally {
      spawning.delete(memberId);
    }
  };

  const terminate = (memberId: string, terminateOptions: TerminateOptions = {}): Promise<TerminateResult> => {
    if (closed) return Promise.reject(new ClosedError('local iaas'));
    const running = stopping.get(memberId);
    if (running) return running;
    const started = clock.monotonicNow();
    const instance = members.get(memberId);
    if (!instance) return Promise.resolve({ memberId, outcome: 'unknown', elapsedMs: 0 });
    const graceMs = terminateOptions.graceMs ?? options.defaultGraceMs;
    const drainMs = terminateOptions.drainMs ?? 0;
    const result = (async (): Promise<TerminateResult> => {
      const { signal } = terminateOptions;
      const drain = drainMs > 0 ? await drainWorkload(memberId, instance, drainMs, signal) : undefined;
      // The caller closes (a deposed or stopping autoscaler): a draining member is left as it is; one
      // stopped without a drain is stopped all the same.
      if (drainMs > 0 && signal?.aborted) throw new ClosedError('terminate (drain aborted)');
      const outcome = await stop(instance, graceMs);
      if (outcome !== 'stuck') {
        members.delete(memberId);
        unrecord(memberId);
        await removeTarget(memberId);
      }
      if (outcome === 'terminated') counters.terminated += 1;
      if (outcome === 'killed') counters.killed += 1;
      const elapsedMs = clock.monotonicNow() - started;
      log.info('member terminated', {
        event: 'local_iaas.member_terminated',
        memberId,
        outcome,
        elapsedMs,
        pgid: instance.handle.pgid,
        ...(drain === undefined ? {} : { drain }),
      });
      return { memberId, outcome, elapsedMs, ...(drain === undefined ? {} : { drain }) };
    })().finally(() => stopping.delete(memberId));
    stopping.set(memberId, result);
    return result;
  };

  /**
   * A member's graceful drain before its stop (README "Autoscaler → Graceful
   * drain"): DRAIN_SIGNAL to its workload's pid (checked by start time, never
   * a reused pid; sent again each second, the workload handles a repeat as
   * one), then `GET /drain` every pollMs until it answers 200 (idle), the
   * workload is gone or stopped, or `drainMs` has passed on the clock. The
   * workload is not trusted: only the status line is read, and whatever it
   * answers the wait ends by the deadline. An aborted `signal` ends it at
   * the next poll. Never rejects.
   */
  const drainWorkload = async (
    memberId: string,
    instance: LocalInstance,
    drainMs: number,
    signal: AbortSignal | undefined,
  ): Promise<'idle' | 'timeout' | 'skipped'> => {
    const { handle } = instance;
    const deadline = clock.monotonicNow() + drainMs;
    let sentAt: number | undefined;
    log.info('member draining', { event: 'local_iaas.member_draining', memberId, drainMs });
    for (;;) {
      if (closed || signal?.aborted || processState(table, handle, handle.workload) !== 'running') return 'skipped';
      const now = clock.monotonicNow();
      if (now >= deadline) {
        log.warn('member drain timed out, stopping it', { event: 'local_iaas.drain_timeout', memberId, drainMs });
        return 'timeout';
      }
      if (sentAt === undefined || now - sentAt >= AGENT_RESTART_RESEND_MS) {
        let delivered = false;
        try {
          // The pid is the workload's: processState has just checked its start time.
          delivered = table.kill(handle.workload.pid, DRAIN_SIGNAL);
        } catch (error) {
          log.warn('member workload cannot be signalled to drain', {
            event: 'local_iaas.drain_signal_failed',
            memberId,
            error,
          });
          return 'skipped';
        }
        if (!delivered) return 'skipped';
        sentAt = now;
      }
      const answer = await getStatus(
        instance.address,
        '/drain',
        Math.max(1, Math.min(options.probeTimeoutMs, deadline - now)),
        clock,
      );
      if (answer.status === 200) {
        log.info('member drained', {
          event: 'local_iaas.member_drained',
          memberId,
          elapsedMs: clock.monotonicNow() - (deadline - drainMs),
        });
        return 'idle';
      }
      await sleep(clock, options.pollMs);
    }
  };

  const adopt = async (instances: readonly unknown[]): Promise<AdoptResult> => {
    ensureOpen();
    const result: AdoptResult = { adopted: [], gone: [], invalid: [] };
    for (const [index, value] of instances.entries()) {
      const checked = checkInstance(value);
      if (!checked.ok) {
        counters.invalidInput += 1;
        result.invalid.push({ index, memberId: checked.memberId, reason: checked.reason });
        log.warn('member instance refused', {
          event: 'local_iaas.instance_refused',
          index,
          memberId: checked.memberId,
          reason: checked.reason,
        });
        continue;
      }
      const instance = checked.instance;
      const known = members.get(instance.memberId);
      if (known) {
        result.adopted.push(structuredClone(known));
        continue;
      }
      const reason = goneReason(table, instance.handle);
      if (reason === undefined) {
        members.set(instance.memberId, instance);
        // A row of a driver that kept no records: recorded now, so a later life can discover it.
        if (!(await readRecord(path.join(recordsDir, recordName(instance.memberId)), platformUid)).ok) record(instance);
        counters.adopted += 1;
        result.adopted.push(structuredClone(instance));
        log.info('member adopted', {
          event: 'local_iaas.member_adopted',
          memberId: instance.memberId,
          pgid: instance.handle.pgid,
        });
        continue;
      }
      counters.adoptedGone += 1;
      result.gone.push({ memberId: instance.memberId, reason });
      log.info('member gone while the driver was away', {
        event: 'local_iaas.member_gone',
        memberId: instance.memberId,
        reason,
      });
      // Its instance is gone but its agent may linger in the group: nobody would ever stop it otherwise.
      const outcome = ownsGroup(table, instance.handle) ? await stop(instance, options.defaultGraceMs) : 'already-gone';
      if (outcome !== 'stuck') await removeTarget(instance.memberId);
    }
    return result;
  };

  /** A record discover() cannot use: logged and counted, left where it is (evidence, not a member). */
  const skipRecord = (name: string, reason: string) => {
    counters.recordsInvalid += 1;
    log.warn('instance record skipped', { event: 'local_iaas.record_invalid', record: name, reason });
  };

  /** What is left of a recorded member that does not run (or never got ready) is stopped; then it is forgotten. */
  const dropRecorded = async (entry: InstanceRecord, reason: string) => {
    const outcome =
      entry.handle && ownsGroup(table, entry.handle) ? await stop({ handle: entry.handle }, 0) : 'already-gone';
    if (outcome !== 'stuck') {
      unrecord(entry.memberId);
      await removeTarget(entry.memberId);
    }
    counters.discoveredGone += 1;
    log.info('recorded member found not running', {
      event: 'local_iaas.discovered_gone',
      memberId: entry.memberId,
      reason,
      outcome,
    });
  };

  /**
   * The instance of a running record. A record written before the workload
   * was ready has no address: the ready file (the member's, so read as
   * untrusted) gives its port if it names the recorded workload.
   */
  const instanceOf = async (entry: InstanceRecord & { handle: LocalHandle }): Promise<LocalInstance | string> => {
    if (entry.address) {
      const checked = checkInstance(entry);
      return checked.ok ? checked.instance : checked.reason;
    }
    const report = await readReadyFile(path.join(options.runDir, `member-${entry.memberId}`, 'ready.json'));
    if (report === undefined || typeof report === 'string')
      return `it never reported ready (${report ?? 'no ready file'})`;
    if (report.pid !== entry.handle.pgid) return `its ready report names pid ${report.pid}`;
    const agent = table.stat(report.agentPid);
    const handle: LocalHandle = {
      ...entry.handle,
      agent: agent && agent.pgid === entry.handle.pgid ? { pid: report.agentPid, startTime: agent.startTime } : null,
    };
    const checked = checkInstance({ ...entry, handle, address: { host: options.host, port: report.port } });
    return checked.ok ? checked.instance : checked.reason;
  };

  const discover = async (): Promise<MemberInstance[]> => {
    ensureOpen();
    const running = liveMembers();
    const listing = listRecords(recordsDir, options.discoverMaxRecords, platformUid);
    if (listing.problem) {
      counters.recordsInvalid += 1;
      log.error('instance records folder not read', {
        event: 'local_iaas.records_unreadable',
        dir: recordsDir,
        problem: listing.problem,
      });
    }
    if (listing.truncated) {
      counters.discoverTruncated += 1;
      log.warn('more instance records than discoverMaxRecords: the rest are left for a later discover', {
        event: 'local_iaas.discover_truncated',
        discoverMaxRecords: options.discoverMaxRecords,
      });
    }
    const busy = (memberId: string) => members.has(memberId) || spawning.has(memberId) || stopping.has(memberId);
    for (const name of listing.names) {
      // Files being written aside (`.tmp`) are not records yet.
      if (name.endsWith('.tmp')) continue;
      const memberId = memberIdOfRecord(name);
      if (memberId === undefined) {
        skipRecord(name, 'not a record name');
        continue;
      }
      if (busy(memberId)) continue;
      const read = await readRecord(path.join(recordsDir, name), platformUid);
      if (!read.ok) {
        skipRecord(name, read.reason);
        continue;
      }
      const entry = read.record;
      if (entry.memberId !== memberId) {
        skipRecord(name, `it names member ${entry.memberId}`);
        continue;
      }
      // The reads above awaited: a spawn, adopt or terminate of this member may have begun meanwhile.
      if (busy(memberId) || closed) continue;
      if (!entry.handle) {
        // Recorded, but the earlier life died before its workload started.
        await dropRecorded(entry, 'its spawn never started a process');
        continue;
      }
      const gone = goneReason(table, entry.handle);
      if (gone !== undefined) {
        await dropRecorded(entry, gone);
        continue;
      }
      const instance = await instanceOf({ ...entry, handle: entry.handle });
      if (busy(memberId) || closed) continue;
      if (typeof instance === 'string') {
        // A spawn its driver never saw through: nobody waits for it, nobody would ever stop it.
        await dropRecorded(entry, instance);
        continue;
      }
      members.set(memberId, instance);
      if (!entry.address) record(instance);
      counters.discovered += 1;
      running.push(instance);
      log.info('member of an earlier life found running', {
        event: 'local_iaas.member_discovered',
        memberId,
        pgid: instance.handle.pgid,
      });
    }
    // The periodic path (the autoscaler discovers every monitor interval): the target folder follows the members.
    await syncAgentTargets();
    return running.map((instance) => structuredClone(instance));
  };

  const probe = async (memberId: string): Promise<ProbeAnswer> => {
    ensureOpen();
    const instance = members.get(memberId);
    if (!instance || processState(table, instance.handle, instance.handle.workload) === 'gone') return 'gone';
    const answer = await getHealthz(instance.address, options.probeTimeoutMs, clock);
    if (answer.status === 200) return 'answering';
    counters.probesFailing += 1;
    log.info('member probe failing', {
      event: 'local_iaas.probe_failing',
      memberId,
      status: answer.status,
      reason: answer.status === undefined ? answer.reason : `HTTP ${answer.status}`,
    });
    return 'failing';
  };

  /**
   * The agent process `ref` names when it is alive and in the member's group
   * (a process of another group, or a zombie, is no agent of this member).
   */
  const liveAgent = (handle: LocalHandle, ref: ProcessRef | null): ProcessRef | undefined => {
    if (!ref || ref.pid === handle.workload.pid || processState(table, handle, ref) === 'gone') return undefined;
    return table.stat(ref.pid)?.pgid === handle.pgid ? ref : undefined;
  };

  /** The agent a ready report of the member's workload names, when it is alive in the member's group. */
  const reportedAgent = (handle: LocalHandle, report: ReadyReport | string | undefined): ProcessRef | undefined => {
    if (typeof report !== 'object' || report.pid !== handle.workload.pid) return undefined;
    const stat = table.stat(report.agentPid);
    // The workload's own child only: the report is the member's to write, the process tree is not.
    if (!stat || stat.ppid !== handle.workload.pid) return undefined;
    return liveAgent(handle, { pid: report.agentPid, startTime: stat.startTime });
  };

  /**
   * The member's instance as it is now, with `agent` its agent: recorded
   * (memory and record file) and returned, unless the member was terminated
   * or forgotten meanwhile.
   */
  const keepAgent = (
    instance: LocalInstance,
    agent: ProcessRef,
    started: number,
    how: string,
  ): AgentRestartResult | undefined => {
    if (members.get(instance.memberId) !== instance || stopping.has(instance.memberId) || closed) return undefined;
    const updated: LocalInstance = { ...instance, handle: { ...instance.handle, agent } };
    members.set(instance.memberId, updated);
    record(updated);
    counters.agentsRestarted += 1;
    log.info('member agent restarted', {
      event: 'local_iaas.agent_restarted',
      memberId: instance.memberId,
      agentPid: agent.pid,
      previousAgentPid: instance.handle.agent?.pid ?? null,
      how,
      elapsedMs: clock.monotonicNow() - started,
    });
    return {
      outcome: 'restarted',
      instance: structuredClone(updated),
      reason: `${how}: a new agent (pid ${agent.pid}) runs in its process group`,
    };
  };

  /**
   * One restart of a member's agent (README "Autoscaler → Second witness"),
   * decided from what runs now: the workload by pid and start time, the
   * recorded agent, the agent the workload's ready report names. The workload
   * is asked (AGENT_RESTART_SIGNAL to its pid, never to a reused one) and
   * starts an agent only if its own is gone; the driver waits, polling, on
   * its clock, for a report naming a live agent of the group.
   */
  const restartOnce = async (memberId: string): Promise<AgentRestartResult> => {
    const started = clock.monotonicNow();
    const instance = members.get(memberId);
    if (!instance) return { outcome: 'gone', reason: 'the driver does not know it' };
    const { handle } = instance;
    const failed = (reason: string): AgentRestartResult => {
      counters.agentRestartsFailed += 1;
      log.warn('member agent not restarted', { event: 'local_iaas.agent_restart_failed', memberId, reason });
      return { outcome: 'failed', reason };
    };
    /** Why the member can no longer be repaired, or undefined while it can. */
    const lost = (): AgentRestartResult | undefined => {
      if (closed) return failed('the driver was closed meanwhile');
      if (members.get(memberId) !== instance || stopping.has(memberId)) return failed('it is being terminated');
      const state = processState(table, handle, handle.workload);
      if (state === 'gone') return { outcome: 'gone', reason: goneReason(table, handle) ?? 'the workload exited' };
      if (state === 'stopped') return failed('its workload is stopped (SIGSTOP): it cannot start an agent');
      return undefined;
    };
    const early = lost();
    if (early) return early;
    const recorded = liveAgent(handle, handle.agent);
    if (recorded) return { outcome: 'running', reason: `its agent (pid ${recorded.pid}) still runs: none was started` };
    const readyFile = path.join(workDirOf(memberId), 'ready.json');
    const first = await readReadyFile(readyFile);
    // Started by an earlier request whose answer was lost (a driver that died meanwhile): that one is kept.
    const already = reportedAgent(handle, first);
    if (already)
      return (
        keepAgent(instance, already, started, 'found started earlier') ?? lost() ?? failed('it was forgotten meanwhile')
      );
    if (typeof first !== 'object') return failed(`its ready report cannot be read (${first ?? 'no ready file'})`);
    if (first.pid !== handle.workload.pid) return failed(`its ready report names pid ${first.pid}`);
    if (first.agentRestarts === undefined)
      return failed('its workload cannot start a new agent (it was started by an earlier version)');
    const deadline = started + options.agentRestartTimeoutMs;
    let sentAt: number | undefined;
    for (;;) {
      const stopped = lost();
      if (stopped) return stopped;
      const now = clock.monotonicNow();
      if (sentAt === undefined || now - sentAt >= AGENT_RESTART_RESEND_MS) {
        // The pid is the workload's: lost() has just checked its start time.
        let delivered: boolean;
        try {
          delivered = table.kill(handle.workload.pid, AGENT_RESTART_SIGNAL);
        } catch (error) {
          return failed(`its workload cannot be signalled (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
        }
        if (!delivered) return { outcome: 'gone', reason: 'the workload exited' };
        sentAt = now;
      }
      await sleep(clock, options.pollMs);
      const agent = reportedAgent(handle, await readReadyFile(readyFile));
      if (agent)
        return (
          keepAgent(instance, agent, started, 'its workload started one') ??
          lost() ??
          failed('it was forgotten meanwhile')
        );
      if (clock.monotonicNow() >= deadline)
        return failed(`no new agent reported within ${options.agentRestartTimeoutMs} ms`);
    }
  };

  /** One restart per member at a time: a request while one is under way shares its answer. */
  const restartAgent = (memberId: string): Promise<AgentRestartResult> => {
    if (closed) return Promise.reject(new ClosedError('local iaas'));
    const running = restarting.get(memberId);
    if (running) return running;
    const result = restartOnce(memberId).finally(() => restarting.delete(memberId));
    restarting.set(memberId, result);
    return result;
  };

  return {
    name: 'local',
    counters,
    syncAgentTargets: async () => {
      ensureOpen();
      return syncAgentTargets();
    },
    spawn,
    terminate,
    adopt,
    discover,
    probe,
    restartAgent,
    isRunning: async (memberId) => {
      ensureOpen();
      const instance = members.get(memberId);
      return instance !== undefined && processState(table, instance.handle, instance.handle.workload) !== 'gone';
    },
    list: async () => {
      ensureOpen();
      return [...members.values()].map((instance) => structuredClone(instance));
    },
    close: once(async () => {
      closed = true;
      // Members keep running; only stops and agent restarts already under way are finished.
      await Promise.allSettled([...stopping.values(), ...restarting.values()]);
    }),
  };
}
