#!/usr/bin/env node
/**
 * The `faultline` command: `stack up|down|status`, `logs`, `chaos …`.
 * Errors are one clear line on stderr and a non-zero exit; a bad
 * configuration exits 2 naming the key.
 */
import path from 'node:path';
import { ConfigError, loadConfig, systemClock } from '@faultline/core';
import { CHAOS_ACTIONS, isChaosAction } from './chaos.js';
import { callControl } from './control.js';
import { UsageError } from './errors.js';
import { showLogs } from './logs.js';
import { RUN_DIR, stackUp } from './stack.js';
import { formatStatus, type StackStatus } from './status.js';

const HELP: Record<string, string> = {
  main: `faultline: run the Faultline stack and break it on purpose

Usage:
  faultline stack up [--config FILE]     start the full stack (npm run stack)
  faultline stack down                   stop a running stack, members included
  faultline stack status [--json]        SP roles and epoch, brokers, clusters, last autoscaler actions
  faultline logs [--service NAME] [--follow] [--json]
  faultline chaos ACTION [TARGET]        kill-member [ID], kill-agent [ID], hang-member [ID],
                                         kill-broker a|b, kill-sp active|passive,
                                         pause-sp active [--seconds N]
Every command takes --help.`,
  stack: `faultline stack up [--config FILE] | down | status [--json]

  up      starts PostgreSQL (embedded under .faultline/pg unless database.url or DATABASE_URL),
          broker a and b, SP node 1 and 2 and the autoscaler, in order, each checked ready;
          prints the status table. Ctrl-C stops everything, members included.
          --config FILE   default: FAULTLINE_CONFIG, else infra/config/faultline.yaml
  down    asks the running supervisor to stop the stack
  status  the running stack's state; --json for a machine-readable form`,
  logs: `faultline logs [--service NAME] [--follow] [--json]

  Prints the per-service JSON-lines logs under logging.dir (.faultline/logs), merged by time.
  --service NAME   one service: sp-1, sp-2, broker-a, broker-b, autoscaler, supervisor, agent-<member>…
  --follow         keep printing new lines (Ctrl-C to stop)
  --json           the raw JSON lines`,
  chaos: `faultline chaos ACTION [TARGET] [--seconds N]

  kill-member [ID]        SIGKILL a member's process group (a random active member without ID)
  kill-agent [ID]         SIGKILL only its cartridge agent: the instance keeps running
  hang-member [ID]        SIGSTOP the member's process group
  kill-broker a|b         SIGKILL a broker; the supervisor restarts it
  kill-sp active|passive  SIGKILL an SP node; the supervisor restarts it, it rejoins as passive
  pause-sp active [--seconds N]   SIGSTOP the active SP node for N seconds (default 5)`,
};

function flag(args: string[], name: string): boolean {
  return args.includes(name);
}

function option(args: string[], name: string): string | undefined {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : undefined;
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
        process.stdout.write(`${String(await callControl(RUN_DIR, 'down'))}\n`);
        return 0;
      }
      if (sub === 'status') {
        const status = (await callControl(RUN_DIR, 'status')) as StackStatus;
        process.stdout.write(`${flag(rest, '--json') ? JSON.stringify(status, null, 2) : formatStatus(status)}\n`);
        return 0;
      }
      throw new UsageError(`unknown stack command ${sub ?? '(none)'}; see faultline stack --help`);
    case 'logs': {
      const config = loadConfig();
      const controller = new AbortController();
      process.once('SIGINT', () => controller.abort());
      await showLogs({
        dir: path.resolve(config.logging.dir),
        service: option(args, '--service'),
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
        throw new UsageError(`unknown chaos action ${sub ?? '(none)'}; one of: ${CHAOS_ACTIONS.join(', ')}`);
      }
      const target = rest.find((a) => !a.startsWith('--') && a !== option(rest, '--seconds'));
      const seconds = option(rest, '--seconds');
      const result = await callControl(RUN_DIR, 'chaos', { action: sub, target, seconds });
      process.stdout.write(`${String(result)}\n`);
      return 0;
    }
    default:
      throw new UsageError(`unknown command ${command}; see faultline --help`);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`faultline: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
