#!/usr/bin/env node
/**
 * The `faultline` command: `stack up|down|status`, `logs`, `chaos …`.
 * Errors are one clear line on stderr and a non-zero exit; a bad
 * configuration or a bad argument exits 2 (naming the key or the argument),
 * before anything is contacted (and `stack up` when a platform service
 * exits 2, naming it and its reason). What it prints from elsewhere (the
 * supervisor's answers, error messages) has its control characters escaped.
 */
import path from 'node:path';
import { ConfigError, escapeControlChars, ID_PATTERN, loadConfig, RELOCATION_ROOT, systemClock } from '@faultline/core';
import { CHAOS_ACTIONS, isChaosAction, PAUSE_SECONDS_MAX, PAUSE_SECONDS_MIN, parseChaosRequest } from './chaos.js';
import { callControl } from './control.js';
import { ServiceFailedError, UsageError } from './errors.js';
import { showLogs } from './logs.js';
import { RUN_DIR, stackUp } from './stack.js';
import { formatStatus, type StackStatus } from './status.js';

const HELP: Record<string, string> = {
  main: `faultline: run the Faultline stack and break it on purpose

Usage:
  faultline stack up [--config FILE]     start the full stack (npm run stack)
  faultline stack down                   stop a running stack, members included
  faultline stack status [--json]        services (pid, state, restarts), SP roles and epoch, brokers,
                                         clusters, last autoscaler actions
  faultline logs [--service NAME] [--follow] [--json]
  faultline chaos ACTION [TARGET]        kill-member [ID], kill-agent [ID], hang-member [ID],
                                         kill-broker a|b, kill-sp active|passive,
                                         pause-sp active [--seconds N]
Every command takes --help.`,
  stack: `faultline stack up [--config FILE] | down | status [--json]

  up      starts PostgreSQL (embedded under .faultline/pg unless database.url or DATABASE_URL;
          run as root from a home folder of mode 0700, under ${RELOCATION_ROOT}),
          broker a and b, SP node 1 and 2 and the autoscaler pair, in order, each checked ready,
          then supervised: restarted with backoff when it dies or stops answering; a service
          exiting 2 (bad configuration) stops the stack (exit 2). One stack per folder; what a
          supervisor killed with -9 left running is stopped first. Prints the status table.
          Ctrl-C stops everything, members included.
          --config FILE   default: FAULTLINE_CONFIG, else infra/config/faultline.yaml
  down    asks the running supervisor to stop the stack
  status  the running stack's state; --json for a machine-readable form`,
  logs: `faultline logs [--service NAME] [--follow] [--json]

  Prints the per-service JSON-lines logs under logging.dir (.faultline/logs), merged by time.
  --service NAME   one service: sp-1, sp-2, broker-a, broker-b, autoscaler (both nodes), supervisor, agent-<member>…
  --follow         keep printing new lines (Ctrl-C to stop)
  --json           the raw JSON lines`,
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
};

function flag(args: string[], name: string): boolean {
  return args.includes(name);
}

function option(args: string[], name: string): string | undefined {
  const at = args.indexOf(name);
  if (at < 0) return undefined;
  const value = args[at + 1];
  if (value === undefined || value.startsWith('--')) throw new UsageError(`${name} needs a value`);
  return value;
}

/** The arguments that are neither options nor an option's value. */
function positional(args: string[], optionsWithValue: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (optionsWithValue.includes(arg)) i += 1;
    else if (!arg.startsWith('--')) out.push(arg);
  }
  return out;
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

async function main(argv: string[]): Promise<number> {
  const [command, sub, ...rest] = argv;
  const args = argv.slice(1);
  if (!command || command === '--help' || command === 'help') {
    process.stdout.write(`${HELP.main}\n`);
    return command ? 0 : 1;
  }
  if (flag(args, '--help')) {
    const text = HELP[command];
    if (!text) throw new UsageError(`unknown command ${command}; see faultline --help`);
    process.stdout.write(`${text}\n`);
    return 0;
  }
  switch (command) {
    case 'stack':
      if (sub === 'up') {
        await stackUp({ configPath: option(rest, '--config') || undefined });
        return 0;
      }
      if (sub === 'down') {
        print(await callControl(RUN_DIR, 'down'));
        return 0;
      }
      if (sub === 'status') {
        const status = (await callControl(RUN_DIR, 'status')) as StackStatus;
        print(flag(rest, '--json') ? JSON.stringify(status, null, 2) : formatStatus(status));
        return 0;
      }
      throw new UsageError(`unknown stack command ${sub ?? '(none)'}; see faultline stack --help`);
    case 'logs': {
      const service = option(args, '--service');
      if (service !== undefined && !ID_PATTERN.test(service)) {
        throw new UsageError(`--service ${JSON.stringify(service.slice(0, 64))} is not a service name`);
      }
      const config = loadConfig();
      const controller = new AbortController();
      process.once('SIGINT', () => controller.abort());
      await showLogs({
        dir: path.resolve(config.logging.dir),
        service,
        follow: flag(args, '--follow'),
        json: flag(args, '--json'),
        colors: Boolean(process.stdout.isTTY),
        clock: systemClock,
        write: (line) => process.stdout.write(`${line}\n`),
        signal: controller.signal,
      });
      return 0;
    }
    case 'chaos': {
      if (!sub || !isChaosAction(sub)) {
        throw new UsageError(
          `unknown chaos action ${JSON.stringify((sub ?? '(none)').slice(0, 64))}; one of: ${CHAOS_ACTIONS.join(', ')}`,
        );
      }
      const targets = positional(rest, ['--seconds']);
      if (targets.length > 1) throw new UsageError(`chaos ${sub} takes one TARGET; got ${targets.length}`);
      // Checked here, before the supervisor is contacted, and again by the supervisor.
      const request = parseChaosRequest({ action: sub, target: targets[0], seconds: option(rest, '--seconds') });
      print(await callControl(RUN_DIR, 'chaos', { ...request }));
      return 0;
    }
    default:
      throw new UsageError(`unknown command ${command}; see faultline --help`);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    const message = escapeControlChars(error instanceof Error ? error.message : String(error));
    if (error instanceof ConfigError) {
      process.stderr.write(`${message}\n`);
      process.exit(2);
    }
    process.stderr.write(`faultline: ${message}\n`);
    // A service that exited 2 stopped the stack: a configuration error too.
    process.exit(error instanceof UsageError || error instanceof ServiceFailedError ? 2 : 1);
  },
);
