#!/usr/bin/env node
/**
 * `npm run nemesis -- --minutes N --seed S [--broker-kind aedes|mosquitto] [--clusters 1|2] [--keep]`:
 * a seeded, randomized fault-injection run against a stack of its own, then
 * the checker. Exit 0: no violation; 1: violations; 2: a bad argument; 3: the
 * run failed; 130: interrupted. The stack is stopped on every path.
 */
import { ArgsError, parseArgs, USAGE } from './args.js';
import { randomSeed } from './prng.js';
import { killStackProcesses, runNemesis } from './run.js';

const out = (line: string) => process.stdout.write(`${line}\n`);

async function main(): Promise<number> {
  let args: ReturnType<typeof parseArgs>;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof ArgsError)) throw error;
    console.error(`nemesis: ${error.message}\n\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    out(USAGE);
    return 0;
  }
  const seed = args.seed ?? randomSeed();
  const controller = new AbortController();
  let interrupted = 0;
  const onSignal = (name: string) => {
    interrupted += 1;
    if (interrupted === 1) {
      out(`nemesis: ${name}: stopping the schedule, continuing what is paused and stopping the stack…`);
      controller.abort();
    } else {
      out('nemesis: still stopping the stack (it must not be left running); one moment');
    }
  };
  for (const name of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(name, () => onSignal(name));
  // The last resort: whatever exit path, nothing of a stack of ours keeps running.
  let dir: string | undefined;
  process.on('exit', () => {
    if (dir) killStackProcesses(dir);
  });
  try {
    const result = await runNemesis({
      minutes: args.minutes,
      seed,
      brokerKind: args.brokerKind,
      clusters: args.clusters,
      keep: args.keep,
      signal: controller.signal,
      write: (line) => {
        const m = /stack in (\S+)$/.exec(line);
        if (m) dir = m[1];
        out(line);
      },
    });
    out('');
    out(result.report);
    out('');
    if (result.kept)
      out(`nemesis: the stack's folder is kept: ${result.dir} (logs in .faultline/logs, nemesis-report.txt)`);
    out(`nemesis: seed ${seed}: ${result.violations.length} violation(s)${result.aborted ? ' (interrupted run)' : ''}`);
    if (result.aborted) return 130;
    return result.violations.length === 0 ? 0 : 1;
  } catch (error) {
    console.error(`nemesis: the run failed: ${(error as Error).stack ?? String(error)}`);
    if (dir) console.error(`nemesis: the stack's folder is kept: ${dir}`);
    return controller.signal.aborted ? 130 : 3;
  }
}

main().then(
  (code) => {
    process.exitCode = code;
    // Nothing should keep the process alive now; if a socket or a timer does, do not hang on it.
    setTimeout(() => process.exit(code), 5_000).unref();
  },
  (error: unknown) => {
    console.error(error);
    process.exitCode = 3;
  },
);
