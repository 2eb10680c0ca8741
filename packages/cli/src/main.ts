#!/usr/bin/env node
/**
 * The `faultline` command: `stack up|down|status`, `console`, `explain`, `logs`, `chaos …`, `maintenance …`,
 * `config …`.
 * Errors are one clear line on stderr and a non-zero exit; a bad
 * configuration or a bad argument exits 2 (naming the key or the argument),
 * before anything is contacted (and `stack up` when a platform service
 * exits 2, naming it and its reason). What it prints from elsewhere (the
 * supervisor's answers, error messages) has its control characters escaped.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  ConfigError,
  colorsWanted,
  configJsonSchema,
  escapeControlChars,
  ID_PATTERN,
  loadConfig,
  RELOCATION_ROOT,
  systemClock,
} from '@faultline/core';
import { stringify } from 'yaml';
import { type CausalChain, formatChain } from './causal-chain.js';
import { CHAOS_ACTIONS, isChaosAction, PAUSE_SECONDS_MAX, PAUSE_SECONDS_MIN, parseChaosRequest } from './chaos.js';
import { callControl, readControlFile, waitStopped } from './control.js';
import { ControlError, ServiceFailedError, UsageError } from './errors.js';
import { showLogs } from './logs.js';
import { commandUser, formatMaintenance, type MaintenanceAnswer, parseMaintenanceRequest } from './maintenance.js';
import { describeMosquittoExport, exportMosquittoConfig } from './mosquitto-export.js';
import { requireExternalBrokerPasswords } from './platform-services.js';
import { runDirOf, stackUp, stateDirOf } from './stack.js';
import { degraded, formatStatus, type StackStatus } from './status.js';

const HELP: Record<string, string> = {
  main: `faultline: run the Faultline stack and break it on purpose

Usage:
  faultline stack up [--config FILE]     start the full stack (npm run stack)
  faultline stack down [--no-wait]       stop a running stack, members included; returns once stopped
  faultline stack status                 services (pid, state, restarts), SP roles and epoch, brokers,
                                         clusters, last autoscaler actions; exit 3 when degraded
  faultline console                      the URL of the stack's web console (live state, timeline, causal chains)
  faultline explain MEMBER               a member's causal chain: last stat, fault, decision, terminate,
                                         spawn of its replacement, replacement active
  faultline logs [--service NAME] [--follow]
  faultline chaos ACTION [TARGET]        kill-member [ID], kill-agent [ID], hang-member [ID],
                                         kill-broker a|b, kill-sp active|passive,
                                         pause-sp active [--seconds N]
  faultline maintenance on|off CLUSTER [MEMBER] [--reason TEXT]
                                         faults there logged and shown, not acted on; for a cluster
                                         the minimum and scaling rules pause too
  faultline maintenance status           what is in maintenance, since when, by whom, why
  faultline config validate|show|schema [--config FILE]
  faultline config mosquitto --node NAME --dir DIR [--config FILE]
  faultline --version

Every command takes -h/--help and --json (machine-readable output). stack status|down, console,
explain, chaos and maintenance
find the running stack by --state-dir DIR (its .faultline folder), else FAULTLINE_STATE_DIR, else
the nearest folder from here up that has one running. Exit codes: 0 done,
1 failed, 2 a bad argument or configuration (nothing was contacted; for maintenance, also a
cluster or member the running stack does not have), 3 the stack is degraded (stack status).
Colors only on a terminal; NO_COLOR or FORCE_COLOR=0 turns them off.`,
  stack: `faultline stack up [--config FILE] | down [--no-wait] | status   (each: --json)

  up      starts PostgreSQL (embedded under .faultline/pg unless database.url or DATABASE_URL;
          run as root from a home folder of mode 0700, under ${RELOCATION_ROOT}),
          broker a and b, SP node 1 and 2 and the autoscaler pair, in order, each checked ready,
          then supervised: restarted with backoff when it dies or stops answering; a service
          exiting 2 (bad configuration) stops the stack (exit 2). One stack per folder; what a
          supervisor killed with -9 left running is stopped first. Prints the status table.
          Ctrl-C stops everything, members included.
          --config FILE   default: FAULTLINE_CONFIG, else infra/config/faultline.yaml
          --json          once up, the status as one JSON line instead of the table
  down    asks the running supervisor to stop the stack and waits until it has (up to 2 minutes;
          everything it started has stopped by then); --no-wait returns at once
  status  the running stack's state; exits 3 when degraded (a service not up, not exactly one
          active SP node, a broker down, a cluster holding its faults in a fault storm or for a
          silent detector), the reasons on stderr. Maintenance (faultline maintenance) is shown
          but is not degraded: it is intended`,
  console: `faultline console [--state-dir DIR] [--json]

  Prints the URL of the running stack's web console (console.host:console.port, loopback by
  default): the SP pair with roles, epoch and replication lag, both brokers, the services,
  clusters and members with state and age, a live timeline of faults and autoscaler actions,
  and any member's causal chain. Read-only. Exit 1 when the console is off (console.enabled).`,
  explain: `faultline explain MEMBER [--state-dir DIR] [--json]

  A member's causal chain from the autoscaler's registry, a line a step with its time and the
  time since the step before: its last stat (the agent's clock), the fault declared, the
  autoscaler's decision, the member terminated, the spawn of its replacement, the replacement
  active. A chain under way ends at its last step so far. Exit 1 when the registry does not
  know the member (never seen, or pruned).`,
  logs: `faultline logs [--service NAME] [--follow] [--json]

  Prints the per-service JSON-lines logs under logging.dir (.faultline/logs), merged by time.
  --service NAME   one service: sp-1, sp-2, broker-a, broker-b, autoscaler (both nodes), supervisor, member-<id>…
  --follow         keep printing new lines (Ctrl-C to stop)
  --json           the raw JSON lines`,
  config: `faultline config validate|show|schema|mosquitto [--config FILE]   (each: --json)

  validate  reads the configuration (--config FILE, else FAULTLINE_CONFIG, else
            infra/config/faultline.yaml) with the FAULTLINE_* variables applied; exit 0 when it
            is valid, 2 naming every bad key
  show      the configuration as the services resolve it, defaults filled in (passwords shown
            as "(set)"); --json for JSON
  schema    the JSON Schema of the file (committed as infra/config/faultline.schema.json, which
            the default faultline.yaml names for editors)
  mosquitto --node NAME --dir DIR
            writes mosquitto.conf, passwd and acl for broker node NAME into DIR (0700, files
            0600): the platform accounts with the configured passwords and their ACL, for a
            Mosquitto you run yourself (brokers.kind: external); start it with mosquitto -c`,
  chaos: `faultline chaos ACTION [TARGET] [--seconds N]

  kill-member [ID]        SIGKILL a member's process group (a random active member without ID)
  kill-agent [ID]         SIGKILL only its cartridge agent: the instance keeps running
  hang-member [ID]        SIGSTOP the member's process group
  kill-broker a|b         SIGKILL a broker; the supervisor restarts it
  kill-sp active|passive  SIGKILL an SP node; the supervisor restarts it, it rejoins as passive
  pause-sp active [--seconds N]   SIGSTOP the active SP node for N seconds (${PAUSE_SECONDS_MIN}–${PAUSE_SECONDS_MAX}, default 5);
                          paused past the supervisor's liveness check (10–15 s by default) it is killed and restarted

  ID is a member id (letters, digits, ".", "_", "-"); anything else is refused (exit 2)
  before the supervisor is contacted.`,
  maintenance: `faultline maintenance on|off CLUSTER [MEMBER] [--reason TEXT] | status   (each: --json, --state-dir DIR)

  on CLUSTER [MEMBER]   puts the cluster, or one live member of it, in maintenance: its faults
                        (a MemberFault, an absence, an instance found gone) are logged and shown
                        (held, cause maintenance) and not acted on; for a whole cluster the minimum
                        rule (no respawn) and the scaling rule (no spawn, no scale down) pause too.
                        --reason TEXT: why (one line, at most 500 characters). Again on the same
                        target: reason and who are updated, its start is kept
  off CLUSTER [MEMBER]  ends it: the faults held for it are verified through the Iaas (answering:
                        dropped; gone or not answering: terminated and replaced, once) and the
                        rules resume. Ending what is not in maintenance is not an error
  status                what is in maintenance: cluster, member, since, by whom, why

  The registry keeps it (autoscaler_maintenance); the acting autoscaler reads it at every monitor
  tick, so it takes effect within one tick (MaintenanceOn / MaintenanceOff on the timeline) and
  survives a restart or a takeover. stack status and the console show it; it does not make the
  stack degraded (it is intended). CLUSTER and MEMBER are ids (letters, digits, ".", "_", "-"):
  anything else is refused (exit 2) before the supervisor is contacted; a cluster not in the
  running stack's configuration, or a member it does not run, is refused by it (exit 2 as well).`,
};

type Options = NonNullable<Parameters<typeof parseArgs>[0]>['options'];

/** What every command takes besides its own options. */
const COMMON: Options = { help: { type: 'boolean', short: 'h' }, json: { type: 'boolean' } };

/**
 * The command's arguments, strictly: an unknown option, an option missing its
 * value or a value given to a flag is a usage error (exit 2), never ignored.
 */
function parse(args: string[], options: Options, positionals: number) {
  let parsed: ReturnType<typeof parseArgs<{ args: string[]; options: Options; allowPositionals: true; strict: true }>>;
  try {
    parsed = parseArgs({ args, options: { ...COMMON, ...options }, allowPositionals: true, strict: true });
  } catch (error) {
    // parseArgs' messages run over lines: one line here.
    throw new UsageError((error as Error).message.replace(/\s*\n\s*/g, ' '));
  }
  if (parsed.positionals.length > positionals) {
    const extra = parsed.positionals.slice(positionals).map((p) => JSON.stringify(p.slice(0, 64)));
    throw new UsageError(`unexpected argument${extra.length > 1 ? 's' : ''} ${extra.join(' ')}`);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  return { values, positionals: parsed.positionals, json: values.json === true, help: values.help === true };
}

/** The version of this command (its package's). */
function version(): string {
  const file = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'package.json');
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}

/** Text from elsewhere (the supervisor's answers), each of its lines safe for the terminal. */
function print(text: unknown): void {
  process.stdout.write(
    `${String(text)
      .split('\n')
      .map((line) => escapeControlChars(line))
      .join('\n')}\n`,
  );
}

/** An answer of the supervisor: as JSON with --json, else its text. */
function answer(value: unknown, json: boolean): void {
  if (json) print(JSON.stringify(typeof value === 'string' ? { message: value } : value, null, 2));
  else print(value);
}

/** Exit code of `stack status` for a stack that runs degraded (README "The CLI"). */
export const EXIT_DEGRADED = 3;

async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  if (command === undefined) {
    process.stdout.write(`${HELP.main}\n`);
    return 1;
  }
  if (command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(`${HELP.main}\n`);
    return 0;
  }
  if (command === '--version' || command === '-V') {
    process.stdout.write(`faultline ${version()}\n`);
    return 0;
  }
  const text = HELP[command];
  if (!text || command === 'main')
    throw new UsageError(`unknown command ${JSON.stringify(command.slice(0, 64))}; see faultline --help`);
  switch (command) {
    case 'stack': {
      const { values, positionals, json, help } = parse(
        args,
        { config: { type: 'string' }, 'no-wait': { type: 'boolean' }, 'state-dir': { type: 'string' } },
        1,
      );
      if (help) return usage(text);
      const [sub] = positionals;
      if (sub === 'up') {
        if (values['no-wait'] !== undefined) throw new UsageError(`--no-wait is an option of stack down only`);
        if (values['state-dir'] !== undefined)
          throw new UsageError(
            '--state-dir finds a running stack (stack status, stack down, chaos); stack up starts one here',
          );
        await stackUp({ configPath: (values.config as string | undefined) || undefined, json });
        return 0;
      }
      if (values.config !== undefined) throw new UsageError(`--config is an option of stack up only`);
      const runDir = runDirOf(stateDirOf(values['state-dir'] as string | undefined));
      if (sub === 'down') {
        const pid = readControlFile(runDir)?.pid;
        const said = await callControl(runDir, 'down');
        // The supervisor answers at once and stops the stack after: wait for it to have gone.
        const stopped = values['no-wait'] === true ? undefined : await waitStopped(pid);
        answer(json ? { message: said, ...(stopped ? { stoppedInMs: stopped.ms } : {}) } : said, json);
        if (stopped && !json) print(`stopped in ${(stopped.ms / 1000).toFixed(1)} s`);
        return 0;
      }
      if (values['no-wait'] !== undefined) throw new UsageError(`--no-wait is an option of stack down only`);
      if (sub === 'status') {
        const status = (await callControl(runDir, 'status')) as StackStatus;
        const reasons = degraded(status);
        print(json ? JSON.stringify({ ...status, degraded: reasons }, null, 2) : formatStatus(status));
        if (reasons.length > 0 && !json)
          process.stderr.write(`faultline: the stack is degraded: ${reasons.join('; ')}\n`);
        return reasons.length > 0 ? EXIT_DEGRADED : 0;
      }
      throw new UsageError(`unknown stack command ${sub ?? '(none)'}; see faultline stack --help`);
    }
    case 'console': {
      const { values, json, help } = parse(args, { 'state-dir': { type: 'string' } }, 0);
      if (help) return usage(text);
      const runDir = runDirOf(stateDirOf(values['state-dir'] as string | undefined));
      const { url, error } = (await callControl(runDir, 'console')) as { url: string | null; error?: string | null };
      if (url === null)
        throw new Error(
          error ? `the console could not start: ${error}` : 'the console is off in this stack (console.enabled: false)',
        );
      answer(json ? { url } : url, json);
      return 0;
    }
    case 'explain': {
      const { values, positionals, json, help } = parse(args, { 'state-dir': { type: 'string' } }, 1);
      if (help) return usage(text);
      const [memberId] = positionals;
      if (memberId === undefined) throw new UsageError('explain needs a member id; see faultline explain --help');
      if (!ID_PATTERN.test(memberId))
        throw new UsageError(`${JSON.stringify(memberId.slice(0, 64))} is not a member id`);
      const runDir = runDirOf(stateDirOf(values['state-dir'] as string | undefined));
      const chain = (await callControl(runDir, 'explain', { memberId })) as CausalChain | null;
      if (chain === null) throw new Error(`the registry knows no member ${memberId} (never seen, or pruned)`);
      print(json ? JSON.stringify(chain, null, 2) : formatChain(chain));
      return 0;
    }
    case 'config': {
      const { values, positionals, json, help } = parse(
        args,
        { config: { type: 'string' }, node: { type: 'string' }, dir: { type: 'string' } },
        1,
      );
      if (help) return usage(text);
      const [sub] = positionals;
      if (sub !== 'mosquitto' && (values.node !== undefined || values.dir !== undefined))
        throw new UsageError('--node and --dir are options of config mosquitto only');
      if (sub === 'schema') {
        print(JSON.stringify(configJsonSchema(), null, 2));
        return 0;
      }
      if (sub !== 'validate' && sub !== 'show' && sub !== 'mosquitto')
        throw new UsageError(`unknown config command ${sub ?? '(none)'}; see faultline config --help`);
      const file = path.resolve(
        (values.config as string | undefined) || process.env.FAULTLINE_CONFIG || 'infra/config/faultline.yaml',
      );
      const config = loadConfig({ path: file });
      if (sub === 'mosquitto') {
        const node = values.node as string | undefined;
        const written = await exportMosquittoConfig(config, { node, dir: values.dir as string | undefined });
        answer(json ? written : describeMosquittoExport(written), json);
        return 0;
      }
      // What `stack up` checks beyond the file: external brokers' passwords (an env variable may name them).
      if (sub === 'validate') requireExternalBrokerPasswords(config);
      if (sub === 'validate') answer(json ? { valid: true, file } : `valid: ${file}`, json);
      else print(json ? JSON.stringify(redacted(config), null, 2) : stringify(redacted(config)));
      return 0;
    }
    case 'logs': {
      const { values, json, help } = parse(args, { service: { type: 'string' }, follow: { type: 'boolean' } }, 0);
      if (help) return usage(text);
      const service = values.service as string | undefined;
      if (service !== undefined && !ID_PATTERN.test(service)) {
        throw new UsageError(`--service ${JSON.stringify(service.slice(0, 64))} is not a service name`);
      }
      const config = loadConfig();
      const controller = new AbortController();
      process.once('SIGINT', () => controller.abort());
      await showLogs({
        dir: path.resolve(config.logging.dir),
        service,
        follow: values.follow === true,
        json,
        colors: colorsWanted(process.stdout),
        clock: systemClock,
        write: (line) => process.stdout.write(`${line}\n`),
        signal: controller.signal,
      });
      return 0;
    }
    case 'chaos': {
      const { values, positionals, json, help } = parse(
        args,
        { seconds: { type: 'string' }, 'state-dir': { type: 'string' } },
        2,
      );
      if (help) return usage(text);
      const [action, target] = positionals;
      if (!action || !isChaosAction(action)) {
        throw new UsageError(
          `unknown chaos action ${JSON.stringify((action ?? '(none)').slice(0, 64))}; one of: ${CHAOS_ACTIONS.join(', ')}`,
        );
      }
      // Checked here, before the supervisor is contacted, and again by the supervisor.
      const request = parseChaosRequest({ action, target, seconds: values.seconds as string | undefined });
      const runDir = runDirOf(stateDirOf(values['state-dir'] as string | undefined));
      answer(await callControl(runDir, 'chaos', { ...request }), json);
      return 0;
    }
    case 'maintenance': {
      const { values, positionals, json, help } = parse(
        args,
        { reason: { type: 'string' }, 'state-dir': { type: 'string' } },
        3,
      );
      if (help) return usage(text);
      const [op, clusterId, memberId] = positionals;
      const who = op === 'on' ? { by: commandUser() } : {};
      const body = { op: op ?? '(none)', clusterId, memberId, reason: values.reason, ...who };
      // Checked here, before the supervisor is contacted, and again by the supervisor.
      parseMaintenanceRequest(body);
      const runDir = runDirOf(stateDirOf(values['state-dir'] as string | undefined));
      let result: MaintenanceAnswer;
      try {
        result = (await callControl(runDir, 'maintenance', body)) as MaintenanceAnswer;
      } catch (error) {
        // A cluster the running stack does not have (only it knows the configuration it runs): a bad argument too.
        if (error instanceof ControlError && error.code === 'FL_ERR_USAGE') throw new UsageError(error.message);
        throw error;
      }
      print(json ? JSON.stringify(result, null, 2) : formatMaintenance(result));
      return 0;
    }
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command.slice(0, 64))}; see faultline --help`);
  }
}

/** The configuration with every password replaced by "(set)": `config show` may end up in a ticket. */
function redacted(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redacted);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, v]) => [
      key,
      /password$/i.test(key) && typeof v === 'string' ? '(set)' : redacted(v),
    ]),
  );
}

function usage(text: string): number {
  process.stdout.write(`${text}\n`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    // Each line escaped on its own: a configuration error lists its keys a line each.
    const message = (error instanceof Error ? error.message : String(error))
      .split('\n')
      .map((line) => escapeControlChars(line))
      .join('\n');
    if (error instanceof ConfigError) {
      process.stderr.write(`${message}\n`);
      process.exit(2);
    }
    process.stderr.write(`faultline: ${message}\n`);
    // A service that exited 2 stopped the stack: a configuration error too.
    process.exit(error instanceof UsageError || error instanceof ServiceFailedError ? 2 : 1);
  },
);
