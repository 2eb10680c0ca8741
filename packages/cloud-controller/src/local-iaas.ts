import path from 'node:path';
import { ClosedError, ConfigError, FaultlineError, mkdirPrivate, once } from '@faultline/core';
import { encodeMemberEnv, issueMemberCredential, memberIdentityOf } from '@faultline/protocol';
import type { AdoptResult, Iaas, MemberInstance, MemberSpec, TerminateOptions, TerminateResult } from './iaas.js';
import { processLauncher, SpawnError } from './launcher.js';
import {
  checkAgentSettings,
  type LocalIaasCounters,
  type LocalIaasOptions,
  resolveLocalIaasOptions,
} from './local-iaas-options.js';
import { checkInstance, goneReason, type LocalInstance } from './local-instance.js';
import { ownsGroup, processState, stopGroup } from './member-processes.js';
import { assertProcfs, linuxProcessTable } from './proc-table.js';
import { type MemberSpecError, validateSpec } from './validate.js';

export interface LocalIaas extends Iaas {
  readonly counters: Readonly<LocalIaasCounters>;
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
  };
  const members = new Map<string, LocalInstance>();
  const spawning = new Set<string>();
  const stopping = new Map<string, Promise<TerminateResult>>();
  let closed = false;

  const ensureOpen = () => {
    if (closed) throw new ClosedError('local iaas');
  };

  const stop = (instance: LocalInstance, graceMs: number) =>
    stopGroup(instance.handle, { table, clock, log, graceMs, pollMs: options.pollMs, killWaitMs: options.killWaitMs });

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
    const agentChecked = checkAgentSettings(options.agent, memberId);
    if (!agentChecked.ok) refuse(agentChecked.error);
    const agentSettings = agentChecked.value;
    if (members.has(memberId) || spawning.has(memberId)) throw new MemberExistsError(memberId);
    spawning.add(memberId);
    try {
      // Platform folders: 0700 when created here (the launcher opens runDir to the member user as far as needed).
      mkdirPrivate(options.runDir);
      mkdirPrivate(options.logsDir);
      // Everything the member writes is in its own folder; the prefix keeps it apart from a `logs` folder in runDir.
      const workDir = path.join(options.runDir, `member-${memberId}`);
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
          // No log folder: the member logs JSON lines to stdout, the file below, which the driver opens.
          logDir: undefined,
          logLevel: options.memberLogLevel,
        }),
      };
      // The platform's file in the platform's logs folder; `faultline logs --service member-<id>` shows it.
      const outputFile = path.join(options.logsDir, `member-${memberId}.jsonl`);
      const report = await launcher.launch({ memberId, env, workDir, readyFile, outputFile });
      const workloadStat = table.stat(report.pid);
      const agentStat = table.stat(report.agentPid);
      const instance: LocalInstance = {
        ...memberIdentityOf(checked.value),
        cartridgeType: checked.value.cartridgeType,
        driver: 'local',
        spawnedAt: clock.now(),
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
      if (problem) {
        await stop(instance, 0);
        throw new SpawnError(memberId, problem);
      }
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
    const result = (async (): Promise<TerminateResult> => {
      const outcome = await stop(instance, graceMs);
      if (outcome !== 'stuck') members.delete(memberId);
      if (outcome === 'terminated') counters.terminated += 1;
      if (outcome === 'killed') counters.killed += 1;
      const elapsedMs = clock.monotonicNow() - started;
      log.info('member terminated', {
        event: 'local_iaas.member_terminated',
        memberId,
        outcome,
        elapsedMs,
        pgid: instance.handle.pgid,
      });
      return { memberId, outcome, elapsedMs };
    })().finally(() => stopping.delete(memberId));
    stopping.set(memberId, result);
    return result;
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
      if (ownsGroup(table, instance.handle)) await stop(instance, options.defaultGraceMs);
    }
    return result;
  };

  return {
    name: 'local',
    counters,
    spawn,
    terminate,
    adopt,
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
      // Members keep running; only stops already under way are finished.
      await Promise.allSettled([...stopping.values()]);
    }),
  };
}
